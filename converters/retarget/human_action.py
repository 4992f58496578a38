"""The robot-free 48-D human action of the Psi0 reference (stage-1 pre-training), from hand keypoints.

Per hand (left, right): wrist xyz (3) + wrist rot6d (6: first two rotation-matrix columns) + five
fingertip xyz (thumb, index, middle, ring, little), in a camera frame (`schemas.HUMAN_ACTION_48`).

The wrist rotation is the palmar hand frame of the keypoints (`frames.palm_frame`): ONE convention for
EgoDex state, action and tokens, and for robots (`robot_hand48` renders robot hands in the same
25-point layout). EgoDex also stores ARKit's own wrist transform, whose axes follow Apple's hand
skeleton; it is not used, because a robot hand has no such frame and the palmar frame is what the
retargeting aligns robot wrists to.

- Absolute chunks: every frame of the chunk expressed in the camera frame of the chunk's first frame.
- Delta chunks (`schemas.HUMAN_ACTION_48_DELTA`): `converters.tokenize.hand48` (the stage-1 token space).
numpy only (no torch): the EgoDex reader builds its state with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converters.retarget.frames import palm_frame
from converters.tokenize import hand48
from schemas.embodiments import HUMAN_HAND_TIP, HUMAN_HAND_WRIST, SIDES
from schemas.rotations import rot6d

TIPS = list(HUMAN_HAND_TIP.values())


@dataclass(frozen=True)
class HumanActionConfig:
    source_rate: float = 30.0
    rate: float = 10.0
    chunk: int = 16

    def chunking(self) -> hand48.ChunkConfig:
        return hand48.ChunkConfig(self.source_rate, self.rate, self.chunk)


def hand_poses(keypoints: np.ndarray, side: str) -> np.ndarray:
    """(T, 25, 3) keypoints -> (T, 4, 4) wrist poses (palmar hand frame at the wrist keypoint)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    out = np.tile(np.eye(4), (kp.shape[0], 1, 1))
    out[:, :3, :3] = palm_frame(kp, side)
    out[:, :3, 3] = kp[:, HUMAN_HAND_WRIST]
    return out


def hand24(wrist: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """(..., 4, 4) wrist pose + (..., 5, 3) tips -> (..., 24)."""
    tips15 = tips.reshape(tips.shape[:-2] + (15,))
    return np.concatenate([wrist[..., :3, 3], rot6d(wrist[..., :3, :3]), tips15], axis=-1)


def sample_indices(length: int, cfg: HumanActionConfig, extra: int = 0,
                   every_frame: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Chunk starts (every resampled frame, or every source frame) and (N, chunk + extra) source indices,
    end-padded."""
    return hand48.sample_indices(length, cfg.chunking(), extra, every_frame)


def _parts(keypoints: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {s: (hand_poses(keypoints[s], s), np.asarray(keypoints[s], np.float64)[:, TIPS]) for s in SIDES}


def absolute_chunks(keypoints: dict[str, np.ndarray], camera: np.ndarray, cfg: HumanActionConfig = HumanActionConfig(),
                    every_frame: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """-> (starts (N,), chunks (N, chunk, 48)) in each chunk's first camera frame (HUMAN_ACTION_48)."""
    camera = np.asarray(camera, np.float64)
    starts, idx = sample_indices(len(camera), cfg, every_frame=every_frame)
    rel = np.linalg.inv(camera[idx[:, 0]])[:, None] @ camera[idx]
    halves = []
    for side, (wrist, tips) in _parts(keypoints).items():
        w = rel @ wrist[idx]
        p = tips[idx] @ np.swapaxes(rel[..., :3, :3], -1, -2) + rel[..., None, :3, 3]
        halves.append(hand24(w, p))
    return starts, np.concatenate(halves, axis=-1)


def delta_chunks(keypoints: dict[str, np.ndarray], camera: np.ndarray, cfg: HumanActionConfig = HumanActionConfig(),
                 every_frame: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """-> (starts (N,), chunks (N, chunk, 48)) of frame-to-frame differences (HUMAN_ACTION_48_DELTA)."""
    return hand48.delta_chunks_from_poses(_parts(keypoints), np.asarray(camera, np.float64), cfg.chunking(),
                                          every_frame=every_frame)


def absolute_per_frame(keypoints: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 48) absolute action of each frame in its own camera frame (the chunk-start state)."""
    parts = _parts(keypoints)
    return np.concatenate([hand24(*parts[s]) for s in SIDES], axis=-1)
