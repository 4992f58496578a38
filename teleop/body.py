"""The operator <-> robot body model the calibration and the mapping share.

Why one module: the calibration estimates an operator's proportions with the SAME model the mapping
then inverts, and the simulated operator is built from it too, so "known poses -> known joint angles"
holds exactly in tests and approximately (anthropometry) on people.

Anthropometric ratios of stature (Drillis & Contini): head tracker (eye level) 0.936, shoulder joint
centres 0.818, pelvis tracker (belt) 0.55. Reference poses are the robot arm joint vectors the operator
imitates during calibration, data of the embodiment's arm IK model (`schemas.embodiments` `ArmIK.poses`;
the G1's: "ready" = q 0, upper arms down, elbows bent 90 deg; "t_pose" = arms straight out to the sides).
Robot-side functions take an embodiment name (None: `embodiments.DEFAULT`).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from converters.retarget.arm_ik import HAND_IN_WRIST, arm_chain, arm_fk
from schemas import embodiments

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
    name: {side: embodiments.get().ik.pose(name, side) for side in ("left", "right")}
    for name in embodiments.get().ik.poses}
"""The default embodiment's reference poses (pose -> side -> arm joints), as arrays."""

HAND_IN_WRIST_FRAME = HAND_IN_WRIST
"""Palmar hand frame (converters.retarget.hands.human_hand_frame) expressed in the wrist site frame."""


def robot_shoulder_center(embodiment: str | None = None) -> tuple[float, float, float]:
    """Midpoint of the two arm chains' first joints (G1: shoulder_pitch) in the torso frame (m)."""
    return _shoulder_center(embodiments.canonical(embodiment))


@lru_cache(maxsize=None)
def _shoulder_center(name: str) -> tuple[float, float, float]:
    pts = []
    with torch.no_grad():
        for s in ("left", "right"):
            chain = arm_chain(s, name)
            pts.append(chain.fk(torch.zeros(1, chain.dof, dtype=torch.float64))[0, 0, :3, 3].numpy())
    return tuple(float(v) for v in (pts[0] + pts[1]) / 2)


def robot_reference_wrists(reference: str, embodiment: str | None = None) -> dict[str, np.ndarray]:
    """The robot's wrist poses (torso frame) in a reference pose."""
    ik = embodiments.get(embodiment).ik
    return {s: arm_fk(s, ik.pose(reference, s)[None], embodiment)[0] for s in ("left", "right")}


_NP_ARMS: dict = {}


def wrist_fk(side: str, q: np.ndarray, embodiment: str | None = None) -> np.ndarray:
    """One arm configuration -> the robot's wrist pose (4, 4) in the torso frame (numpy fast path)."""
    from teleop.fastkin import NumpyChain  # noqa: PLC0415  (fastkin imports converters only)
    key = (side, embodiments.canonical(embodiment))
    if key not in _NP_ARMS:
        _NP_ARMS[key] = NumpyChain(arm_chain(side, key[1]))
    rots, pos = _NP_ARMS[key].fk(np.asarray(q, np.float64))
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rots[-1], pos[-1]
    return out


def operator_wrist_from_robot(target: np.ndarray, shoulder_world: np.ndarray, torso_rot: np.ndarray,
                              scale: float, embodiment: str | None = None) -> np.ndarray:
    """Inverse of the upper-body mapping: a robot wrist target (torso frame) -> the operator's wrist pose
    in world, given the operator's shoulder centre, torso orientation and scale (robot / operator)."""
    c = np.asarray(robot_shoulder_center(embodiment))
    out = np.eye(4)
    out[:3, :3] = torso_rot @ target[:3, :3]
    out[:3, 3] = shoulder_world + torso_rot @ (target[:3, 3] - c) / scale
    return out
