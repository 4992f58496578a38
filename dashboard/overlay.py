"""EgoDex hand keypoints projected into the shard's video frames, for the canvas overlay.

The EgoDex reader stores `human.<side>_hand.keypoints` already in the *current* frame's camera frame
(inv(T_world_camera[t]) @ T_world_joint[t], OpenCV axes), so projecting needs only the pinhole
intrinsics: the episode meta's `camera_intrinsic` is calibrated for the source video
(`video_width` x `video_height`) and is scaled per axis to the shard's (resized, possibly
re-aspected) video. `human.camera.pose` would be needed only for world-frame points."""
from __future__ import annotations

from typing import Any

import numpy as np

from schemas.embodiments import SIDES

KEYPOINT_KEY = "human.{side}_hand.keypoints"
# 25-joint topology (schemas.embodiments.human_hand_joints): wrist, thumb 1-4, then 5 per finger.
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4)] + [
    e for base in (5, 10, 15, 20) for e in [(0, base)] + [(base + k, base + k + 1) for k in range(4)]]


def project(points: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame points -> (..., 2) pixels; points at or behind the camera -> NaN."""
    p = np.asarray(points, dtype=np.float64)
    z = p[..., 2:3]
    return (p[..., :2] / np.where(z > 1e-6, z, np.nan)) @ k[:2, :2].T + k[:2, 2]


def scaled_intrinsics(k: np.ndarray, native: tuple[float, float], actual: tuple[float, float]) -> np.ndarray:
    return np.diag([actual[0] / native[0], actual[1] / native[1], 1.0]) @ np.asarray(k, dtype=np.float64)


def hand_overlay(data: dict[str, list], extra: dict[str, Any], size: tuple[int, int]) -> dict[str, Any] | None:
    """{width, height, edges, hands: {side: (T, 25*2) pixel lists, NaN -> None}} or None when the episode
    has no keypoints or intrinsics. `size` is the shard video's (width, height)."""
    if not all(KEYPOINT_KEY.format(side=s) in data for s in SIDES):
        return None
    k = extra.get("camera_intrinsic")
    native = (extra.get("video_width"), extra.get("video_height"))
    if k is None or not all(native) or not all(size):
        return None
    kk = scaled_intrinsics(np.asarray(k, np.float64), (float(native[0]), float(native[1])), size)
    hands = {}
    for side in SIDES:
        kp = np.asarray(data[KEYPOINT_KEY.format(side=side)], dtype=np.float64).reshape(-1, 25, 3)
        uv = np.round(project(kp, kk), 1).reshape(len(kp), 50)
        hands[side] = [[None if not np.isfinite(v) else float(v) for v in row] for row in uv]
    return {"width": size[0], "height": size[1], "edges": HAND_EDGES, "hands": hands,
            "intrinsics": kk.tolist()}
