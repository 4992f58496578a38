"""Tracking-space conventions of the XR runtimes -> our world frame (z up, x forward, y left, metres).

OpenVR and OpenXR both use a right-handed, y-up frame with -z forward. A pose (R, p) there becomes
(C R, C p) here, with C mapping their axes onto ours; the tracker's own body frame is kept (calibration
removes how each tracker is mounted).
"""
from __future__ import annotations

import numpy as np

Y_UP_TO_Z_UP = np.array([[0.0, 0.0, -1.0],     # forward (ours x) = -z (theirs)
                         [-1.0, 0.0, 0.0],     # left (ours y)    = -x (theirs)
                         [0.0, 1.0, 0.0]])     # up (ours z)      = +y (theirs)


def y_up_pose_to_world(pose_y_up: np.ndarray) -> np.ndarray:
    """(4, 4) pose in a y-up runtime frame -> (4, 4) pose in the z-up world frame."""
    out = np.eye(4)
    out[:3, :3] = Y_UP_TO_Z_UP @ pose_y_up[:3, :3]
    out[:3, 3] = Y_UP_TO_Z_UP @ pose_y_up[:3, 3]
    return out


def y_up_points_to_world(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ Y_UP_TO_Z_UP.T


def quat_xyzw_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    n = np.sqrt(x * x + y * y + z * z + w * w)
    if n < 1e-12:
        return np.eye(3)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
