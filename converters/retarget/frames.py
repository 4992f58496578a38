"""The frames human and robot data meet in (numpy only, so readers can use them without torch).

- `palm_frame`: the palmar hand frame of 25-point hand keypoints (x: wrist -> between the index and
  middle knuckles, z: palm normal pointing palmar, y = z x x). It is THE wrist rotation of the 48-D
  human-hand action (`schemas.HUMAN_ACTION_48`) for every source: EgoDex keypoints, and robot hands
  rendered in the human layout by their forward kinematics. `converters.retarget.hands.human_hand_frame`
  is the same rule in torch (for autograd retargeting); tests check they agree.
- `Calibration`: the head camera (OpenCV axes) -> robot torso transform and the human -> robot scale the
  retargeting uses; the robot side of the 48-D action is expressed in this camera too.
- `HAND_IN_WRIST`: the palmar hand frame in the G1 wrist_yaw_link at zero wrist joints (arm IK targets).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.embodiments import HUMAN_HAND_KNUCKLE, HUMAN_HAND_WRIST
from schemas.embodiments.spec import rpy_matrix

CV_TO_TORSO = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""OpenCV camera axes (x right, y down, z forward) -> torso axes (x forward, y left, z up)."""

HAND_IN_WRIST = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""Human hand frame (x: wrist -> middle knuckle, y: towards the index side, z = x cross y) expressed in
the G1 wrist_yaw_link frame when the wrist joints are at zero: fingers along the forearm (+x), index
side up (+z)."""


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def palm_frame(keypoints: np.ndarray, side: str) -> np.ndarray:
    """(..., 25, 3) keypoints -> (..., 3, 3) palmar hand frame (columns x, y, z) of a `side` hand."""
    kp = np.asarray(keypoints, np.float64)
    sign = 1.0 if side == "left" else -1.0
    wrist = kp[..., HUMAN_HAND_WRIST, :]
    index, middle, little = (kp[..., HUMAN_HAND_KNUCKLE[f], :] for f in ("index", "middle", "little"))
    x = _unit((index + middle) / 2 - wrist)
    n = sign * np.cross(x, index - little)
    z = _unit(n - np.sum(n * x, axis=-1, keepdims=True) * x)
    return np.stack([x, np.cross(z, x), z], axis=-1)


@dataclass(frozen=True)
class Calibration:
    """Camera (head) frame -> robot torso frame, plus a human -> robot scale.

    p_torso = head_position + scale * R_tilt @ CV_TO_TORSO @ p_cam. Defaults: the head camera sits
    0.45 m above and 0.06 m ahead of torso_link (G1 head), looking down by `pitch_down` rad, and a
    human arm (~0.6 m shoulder-wrist) maps to the G1 arm (~0.4 m) with scale 0.7.
    """

    head_position: tuple[float, float, float] = (0.06, 0.0, 0.45)
    pitch_down: float = 0.6
    scale: float = 0.7
    hand_in_wrist: tuple[tuple[float, ...], ...] = tuple(map(tuple, HAND_IN_WRIST))

    def rotation(self) -> np.ndarray:
        """Camera axes -> torso axes."""
        return rpy_matrix(0.0, self.pitch_down, 0.0) @ CV_TO_TORSO

    def camera_in_torso(self) -> np.ndarray:
        """4x4 pose of the head camera in the torso frame (robot metres, no human scale)."""
        out = np.eye(4)
        out[:3, :3] = self.rotation()
        out[:3, 3] = self.head_position
        return out

    def camera_to_torso(self, poses: np.ndarray) -> np.ndarray:
        """(..., 4, 4) hand poses in the camera frame -> wrist target poses in the torso frame."""
        r = self.rotation()
        out = np.array(poses, dtype=np.float64, copy=True)
        out[..., :3, 3] = np.asarray(self.head_position) + self.scale * (poses[..., :3, 3] @ r.T)
        out[..., :3, :3] = r @ poses[..., :3, :3] @ np.asarray(self.hand_in_wrist).T
        return out
