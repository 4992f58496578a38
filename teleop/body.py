"""The operator <-> robot body model the calibration and the mapping share.

Why one module: the calibration estimates an operator's proportions with the SAME model the mapping
then inverts, and the simulated operator is built from it too, so "known poses -> known joint angles"
holds exactly in tests and approximately (anthropometry) on people.

Anthropometric ratios of stature (Drillis & Contini): head tracker (eye level) 0.936, shoulder joint
centres 0.818, pelvis tracker (belt) 0.55. Reference poses are G1 arm joint vectors the operator
imitates during calibration: "ready" (q = 0: upper arms down, elbows bent 90 deg, forearms forward,
palms facing each other; the G1's elbow cannot straighten fully, so arms-down is not reachable) and
"t_pose" (arms straight out to the sides).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from converters.retarget.arm_ik import HAND_IN_WRIST, arm_chain, arm_fk

HEAD_RATIO = 0.936
SHOULDER_RATIO = 0.818
PELVIS_RATIO = 0.55
ARM_RATIO = 0.332
"""Shoulder joint -> wrist (upper arm + forearm) as a fraction of stature."""
G1_ARM_LENGTH = 0.37
"""G1 shoulder_pitch -> wrist_yaw_link along the straight arm (m), from the arm chain's link offsets."""
FOOT_TRACKER_HEIGHT = 0.08
"""Ankle trackers sit this far above the floor."""

REFERENCE_POSES: dict[str, dict[str, np.ndarray]] = {
    "ready": {"left": np.zeros(7), "right": np.zeros(7)},
    "t_pose": {"left": np.array([0.0, np.pi / 2, 0.0, np.pi / 2, 0.0, 0.0, 0.0]),
               "right": np.array([0.0, -np.pi / 2, 0.0, np.pi / 2, 0.0, 0.0, 0.0])},
}

HAND_IN_WRIST_FRAME = HAND_IN_WRIST
"""Palmar hand frame (converters.retarget.hands.human_hand_frame) expressed in the wrist site frame."""


@lru_cache(maxsize=None)
def robot_shoulder_center() -> tuple[float, float, float]:
    """Midpoint of the two G1 shoulder_pitch joints in the torso_link frame (m)."""
    with torch.no_grad():
        pts = [arm_chain(s).fk(torch.zeros(1, 7, dtype=torch.float64))[0, 0, :3, 3].numpy() for s in ("left", "right")]
    return tuple(float(v) for v in (pts[0] + pts[1]) / 2)


def robot_reference_wrists(reference: str) -> dict[str, np.ndarray]:
    """G1 wrist_yaw_link poses (torso frame) in a reference pose."""
    if reference not in REFERENCE_POSES:
        raise ValueError(f"unknown reference pose {reference!r}; choose from {sorted(REFERENCE_POSES)}")
    return {s: arm_fk(s, REFERENCE_POSES[reference][s][None])[0] for s in ("left", "right")}


_NP_ARMS: dict = {}


def wrist_fk(side: str, q: np.ndarray) -> np.ndarray:
    """One (7,) arm configuration -> G1 wrist_yaw_link pose (4, 4) in the torso frame (numpy fast path)."""
    from teleop.fastkin import NumpyChain  # noqa: PLC0415  (fastkin imports converters only)
    if side not in _NP_ARMS:
        _NP_ARMS[side] = NumpyChain(arm_chain(side))
    rots, pos = _NP_ARMS[side].fk(np.asarray(q, np.float64))
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rots[-1], pos[-1]
    return out


def operator_wrist_from_robot(target: np.ndarray, shoulder_world: np.ndarray, torso_rot: np.ndarray,
                              scale: float) -> np.ndarray:
    """Inverse of the upper-body mapping: a robot wrist target (torso frame) -> the operator's wrist pose
    in world, given the operator's shoulder centre, torso orientation and scale (robot / operator)."""
    c = np.asarray(robot_shoulder_center())
    out = np.eye(4)
    out[:3, :3] = torso_rot @ target[:3, :3]
    out[:3, 3] = shoulder_world + torso_rot @ (target[:3, 3] - c) / scale
    return out
