"""Small rigid-body helpers shared by devices and mapping (numpy, float64, 4x4 homogeneous poses).

Conventions (as `teleop.streams`): world z up, metres; roll/pitch/yaw are fixed-axis x, y, z
(R = Rz(yaw) @ Ry(pitch) @ Rx(roll), the URDF convention of `converters.retarget.kinematics`).
"""
from __future__ import annotations

import numpy as np

from schemas.embodiments.spec import rpy_matrix


def pose(rot: np.ndarray | None = None, pos=(0.0, 0.0, 0.0)) -> np.ndarray:
    out = np.eye(4)
    if rot is not None:
        out[:3, :3] = rot
    out[:3, 3] = pos
    return out


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    return rpy_matrix(roll, pitch, yaw)


def matrix_rpy(r: np.ndarray) -> np.ndarray:
    """Inverse of `rpy` (roll, pitch, yaw), pitch in [-pi/2, pi/2]."""
    pitch = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    roll = np.arctan2(r[2, 1], r[2, 2])
    yaw = np.arctan2(r[1, 0], r[0, 0])
    return np.array([roll, pitch, yaw])


def heading(r: np.ndarray) -> float:
    """Yaw of a frame's x axis projected on the ground plane (robust to roll/pitch)."""
    return float(np.arctan2(r[1, 0], r[0, 0]))


def sign(x: float) -> float:
    """np.sign for one Python float (0 -> 0, nan -> nan): the per-tick mapping maths runs on floats."""
    return 1.0 if x > 0 else -1.0 if x < 0 else x * 0.0


def wrap_angle(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def exp_so3(v: np.ndarray) -> np.ndarray:
    """Rotation vector -> rotation matrix (Rodrigues)."""
    theta = float(np.linalg.norm(v))
    if theta < 1e-12:
        return np.eye(3)
    k = np.asarray(v) / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def mean_rotation(rots: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of (N, 3, 3) rotations (projection of the arithmetic mean onto SO(3))."""
    u, _, vt = np.linalg.svd(np.mean(rots, axis=0))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def inv_pose(t: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    r = t[:3, :3]
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ t[:3, 3]
    return out


def min_jerk(s: float) -> float:
    """Quintic 0->1 blend with zero velocity and acceleration at both ends (how people move)."""
    s = min(max(s, 0.0), 1.0)
    return s * s * s * (10 - 15 * s + 6 * s * s)
