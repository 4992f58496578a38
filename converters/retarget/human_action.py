"""The robot-free 48-D human action of the Psi0 reference (stage-1 pre-training).

Per hand (left, right): wrist xyz (3) + wrist rot6d (6: first two rotation-matrix columns) + five
fingertip xyz (thumb, index, middle, ring, little), in a camera frame (`schemas.HUMAN_ACTION_48`).

- Absolute chunks: every frame of the chunk expressed in the camera frame of the chunk's first frame.
- Delta chunks (`schemas.HUMAN_ACTION_48_DELTA`, reference `convert_to_delta_actions`): wrist and tips in
  the camera frame of the chunk's first frame, then frame-to-frame differences: Δxyz, Δroll-pitch-yaw of
  R_rel = R2 @ R1.T (scipy euler "xyz"), three zeros, Δtips.
- Resampling: source 30 Hz -> `rate` (default 10 Hz) by index stride; chunk indices past the end repeat
  the last frame (as the reference pads).

The wrist rotation is the palmar hand frame of the keypoints (hands.human_hand_frame) when no wrist
orientation stream is given.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from converters.retarget.hands import H_TIP, human_hand_frame
from schemas.rotations import rot6d

TIPS = [H_TIP[f] for f in ("thumb", "index", "middle", "ring", "little")]


@dataclass(frozen=True)
class HumanActionConfig:
    source_rate: float = 30.0
    rate: float = 10.0
    chunk: int = 16


def hand_poses(keypoints: np.ndarray, side: str) -> np.ndarray:
    """(T, 25, 3) keypoints -> (T, 4, 4) wrist poses (palmar hand frame at the wrist keypoint)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    rot = human_hand_frame(torch.as_tensor(kp), side).numpy()
    out = np.tile(np.eye(4), (kp.shape[0], 1, 1))
    out[:, :3, :3] = rot
    out[:, :3, 3] = kp[:, 0]
    return out


def _to_frame(ref: np.ndarray, cam: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (..., K, 3) given in camera frames `cam` (..., 4, 4 camera->world) -> frame `ref` (..., 4, 4)."""
    rel = np.linalg.inv(ref) @ cam                                  # (..., 4, 4) cam_t -> cam_ref
    return points @ np.swapaxes(rel[..., :3, :3], -1, -2) + rel[..., None, :3, 3]


def hand24(wrist: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """(..., 4, 4) wrist pose + (..., 5, 3) tips -> (..., 24)."""
    tips15 = tips.reshape(tips.shape[:-2] + (15,))
    return np.concatenate([wrist[..., :3, 3], rot6d(wrist[..., :3, :3]), tips15], axis=-1)


def sample_indices(length: int, cfg: HumanActionConfig, extra: int = 0,
                   every_frame: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Chunk starts (every resampled frame, or every source frame) and (N, chunk + extra) source indices,
    end-padded."""
    stride = cfg.source_rate / cfg.rate
    starts = np.arange(length) if every_frame else np.unique(np.round(np.arange(0, length, stride)).astype(np.int64))
    starts = starts[starts < length]
    offsets = np.round(np.arange(cfg.chunk + extra) * stride).astype(np.int64)
    return starts, np.minimum(starts[:, None] + offsets[None], length - 1)


def _gather(keypoints: dict[str, np.ndarray], camera: np.ndarray, idx: np.ndarray):
    """Wrist poses / tips of both hands at `idx` (N, K), expressed in the camera frame of idx[:, 0]."""
    ref = camera[idx[:, 0]][:, None]                                # (N, 1, 4, 4)
    cams = camera[idx]                                              # (N, K, 4, 4)
    out = {}
    for side in ("left", "right"):
        kp = np.asarray(keypoints[side], dtype=np.float64)
        poses = hand_poses(kp, side)[idx]                           # (N, K, 4, 4) in cam_t
        rel = np.linalg.inv(ref) @ cams
        wrist = rel @ poses
        tips = _to_frame(ref, cams, kp[idx][:, :, TIPS])
        out[side] = (wrist, tips)
    return out


def absolute_chunks(keypoints: dict[str, np.ndarray], camera: np.ndarray, cfg: HumanActionConfig = HumanActionConfig(),
                    every_frame: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """-> (starts (N,), chunks (N, chunk, 48)) in each chunk's first camera frame (HUMAN_ACTION_48)."""
    starts, idx = sample_indices(len(camera), cfg, every_frame=every_frame)
    parts = _gather(keypoints, np.asarray(camera, np.float64), idx)
    return starts, np.concatenate([hand24(*parts["left"]), hand24(*parts["right"])], axis=-1)


def delta_chunks(keypoints: dict[str, np.ndarray], camera: np.ndarray, cfg: HumanActionConfig = HumanActionConfig(),
                 every_frame: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """-> (starts (N,), chunks (N, chunk, 48)) of frame-to-frame differences (HUMAN_ACTION_48_DELTA)."""
    starts, idx = sample_indices(len(camera), cfg, extra=1, every_frame=every_frame)
    parts = _gather(keypoints, np.asarray(camera, np.float64), idx)
    halves = []
    for side in ("left", "right"):
        wrist, tips = parts[side]
        dpos = wrist[:, 1:, :3, 3] - wrist[:, :-1, :3, 3]
        r_rel = wrist[:, 1:, :3, :3] @ np.swapaxes(wrist[:, :-1, :3, :3], -1, -2)
        drpy = Rotation.from_matrix(r_rel.reshape(-1, 3, 3)).as_euler("xyz").reshape(dpos.shape)
        dtips = (tips[:, 1:] - tips[:, :-1]).reshape(dpos.shape[:2] + (15,))
        halves.append(np.concatenate([dpos, drpy, np.zeros_like(dpos), dtips], axis=-1))
    return starts, np.concatenate(halves, axis=-1)


def absolute_per_frame(keypoints: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 48) absolute action of each frame in its own camera frame (the chunk-start state)."""
    return np.concatenate([hand24(hand_poses(keypoints[s], s), np.asarray(keypoints[s], np.float64)[:, TIPS])
                           for s in ("left", "right")], axis=-1)
