"""The stage-1 token space: 10 Hz deltas of the 48-D human-hand action, the same for every source.

Input per frame: `schemas.HUMAN_ACTION_48` rows (per hand wrist xyz, wrist rot6d, five fingertip xyz)
in that frame's head camera frame, and where that camera is in the world (4x4 camera-to-world) when
it moves: EgoDex's headset pose, a robot's odometry pose composed with its torso-fixed camera, or
nothing (a camera that does not move). Output: `schemas.HUMAN_ACTION_48_DELTA` chunks, the Ψ₀
pre-training representation (`convert_to_delta_actions`): every step of the chunk is expressed in the
camera frame of the chunk's FIRST frame, then frame-to-frame differences - Δxyz, Δroll-pitch-yaw of
R_rel = R2 @ R1.T (scipy euler "xyz"), three zeros, Δfingertips. Resampling source fps -> `rate` by
index stride; chunk indices past the episode end repeat the last frame.

numpy + scipy only: the ingest job, `psi0 tokenizer fit`, the training loader and the dashboard all
build chunks with this one function, so a token means one thing wherever it is computed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from schemas.actions import HUMAN_ACTION_48, HUMAN_ACTION_48_DELTA
from schemas.embodiments import SIDES

SPACE = "human48_delta"
"""Name of the token space these chunks are in (recorded in catalogs and run.json)."""
RATE = 10.0
"""Hz of the deltas (the reference: every 3rd frame of 30 Hz EgoDex)."""

ROLES = ("hand48", "camera_pose")
"""What a source's columns can mean for this space (`Source.token_inputs` maps role -> column):
hand48 (T, 48) HUMAN_ACTION_48 in the current camera frame; camera_pose (T, 16) camera-to-world, row
major (absent: a camera that does not move). Chunks depend on nothing else, so anything holding the
columns (a shard, the training loader, the dashboard) rebuilds the same chunks."""


@dataclass(frozen=True)
class ChunkConfig:
    source_rate: float = 30.0
    rate: float = RATE
    chunk: int = 1


def sample_indices(length: int, cfg: ChunkConfig, extra: int = 0, every_frame: bool = True
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Chunk starts (every source frame, or every resampled frame) and (N, chunk + extra) source indices,
    end-padded by repeating the last frame."""
    stride = cfg.source_rate / cfg.rate
    starts = np.arange(length) if every_frame else np.unique(np.round(np.arange(0, length, stride)).astype(np.int64))
    starts = starts[starts < length]
    offsets = np.round(np.arange(cfg.chunk + extra) * stride).astype(np.int64)
    return starts, np.minimum(starts[:, None] + offsets[None], length - 1)


def rotation_from_rot6d(r6: np.ndarray) -> np.ndarray:
    """(..., 6) first two rotation columns -> (..., 3, 3), Gram-Schmidt (exact for a stored rotation up to
    its float32 rounding)."""
    a, b = np.asarray(r6[..., :3], np.float64), np.asarray(r6[..., 3:6], np.float64)
    x = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b - np.sum(x * b, axis=-1, keepdims=True) * x
    y = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def pose_matrix(position: np.ndarray, rpy: np.ndarray) -> np.ndarray:
    """(T, 3) position + (T, 3) roll/pitch/yaw (Rz Ry Rx) -> (T, 4, 4)."""
    out = np.tile(np.eye(4), (len(position), 1, 1))
    out[:, :3, :3] = Rotation.from_euler("ZYX", np.asarray(rpy, np.float64)[:, ::-1]).as_matrix()
    out[:, :3, 3] = position
    return out


def split_hand48(h48: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(T, 48) -> per side (wrist poses (T, 4, 4), fingertips (T, 5, 3)), in each row's camera frame."""
    h48 = np.asarray(h48, np.float64)
    t = h48.shape[0]
    out = {}
    for side in SIDES:
        wrist = np.tile(np.eye(4), (t, 1, 1))
        wrist[:, :3, 3] = h48[:, HUMAN_ACTION_48.slice(f"{side}_hand.wrist_pos")]
        wrist[:, :3, :3] = rotation_from_rot6d(h48[:, HUMAN_ACTION_48.slice(f"{side}_hand.wrist_rot")])
        out[side] = (wrist, h48[:, HUMAN_ACTION_48.slice(f"{side}_hand.tips")].reshape(t, -1, 3))
    return out


def _in_first_frame(camera: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    """(N, K, 4, 4): camera of step k -> camera of step 0, per chunk (None: the camera does not move)."""
    if camera is None:
        return None
    return np.linalg.inv(camera[idx[:, 0]])[:, None] @ camera[idx]


def delta_chunks_from_poses(parts: dict[str, tuple[np.ndarray, np.ndarray]], camera: np.ndarray | None,
                            cfg: ChunkConfig, every_frame: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per side (wrist poses (T, 4, 4), tips (T, 5, 3)) in each frame's camera + camera-to-world (T, 4, 4)
    or None -> (starts (N,), HUMAN_ACTION_48_DELTA chunks (N, chunk, 48))."""
    length = len(next(iter(parts.values()))[0])
    starts, idx = sample_indices(length, cfg, extra=1, every_frame=every_frame)
    rel = _in_first_frame(None if camera is None else np.asarray(camera, np.float64), idx)
    halves = []
    for side in SIDES:
        wrist, tips = parts[side]
        w, p = wrist[idx], tips[idx]                                   # (N, K, 4, 4), (N, K, 5, 3)
        if rel is not None:
            w = rel @ w
            p = p @ np.swapaxes(rel[..., :3, :3], -1, -2) + rel[..., None, :3, 3]
        dpos = w[:, 1:, :3, 3] - w[:, :-1, :3, 3]
        r_rel = w[:, 1:, :3, :3] @ np.swapaxes(w[:, :-1, :3, :3], -1, -2)
        drpy = Rotation.from_matrix(r_rel.reshape(-1, 3, 3)).as_euler("xyz").reshape(dpos.shape)
        dtips = (p[:, 1:] - p[:, :-1]).reshape(dpos.shape[:2] + (-1,))
        halves.append(np.concatenate([dpos, drpy, np.zeros_like(dpos), dtips], axis=-1))
    out = np.concatenate(halves, axis=-1)
    assert out.shape[-1] == HUMAN_ACTION_48_DELTA.size
    return starts, out


def chunks(columns: Mapping[str, np.ndarray], fps: float, horizon: int, rate: float = RATE) -> np.ndarray:
    """(T, horizon, 48) HUMAN_ACTION_48_DELTA chunk starting at every frame, from role columns (see ROLES)."""
    h48 = np.asarray(columns["hand48"], np.float64)
    camera = None
    if columns.get("camera_pose") is not None:
        camera = np.asarray(columns["camera_pose"], np.float64).reshape(len(h48), 4, 4)
    return delta_chunks_from_poses(split_hand48(h48), camera, ChunkConfig(float(fps), float(rate), int(horizon)))[1]
