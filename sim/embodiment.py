"""The ONE place `sim/` reads robot tables from the rest of the project.

The MuJoCo hands are built from the project's Dex3-1 kinematic table (joint origins, axes, limits,
fingertip points), the actuator order from `schemas.embodiments`. Those tables are moving into
`schemas/embodiments/`; when they do, only `hand_table` and `body_joint_order` change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.actions import PSI0_ACTION
from schemas.embodiments import DEX3_LEFT, DEX3_RIGHT, G1_BODY


@dataclass(frozen=True)
class HandJoint:
    name: str                          # hardware name, e.g. "thumb_0"
    parent: int                        # index into the table's joints; -1 = the palm
    origin: np.ndarray                 # (4, 4) joint frame in the parent frame
    axis: tuple[float, float, float]
    lower: float
    upper: float


@dataclass(frozen=True)
class HandTable:
    side: str
    joints: tuple[HandJoint, ...]      # actuated, in hardware (= PSI0_ACTION) order
    tips: dict[str, tuple[int, np.ndarray]]   # "thumb"/"index"/"middle" -> (joint index, offset in its frame)
    palm_in_wrist: np.ndarray          # (3,) palm origin in the G1 wrist_yaw_link frame


def hand_table(side: str) -> HandTable:
    """Dex3-1 kinematics for one hand, in PSI0_ACTION's hand order (checked against schemas)."""
    from converters.retarget.kinematics import dex3  # noqa: PLC0415 - torch import only when a robot is built
    chain = dex3(side)
    space = DEX3_LEFT if side == "left" else DEX3_RIGHT
    joints = []
    for j in chain.joints:
        if j.axis is None or j.mimic is not None:
            continue
        joints.append(HandJoint(j.name, j.parent, np.asarray(j.origin, np.float64), tuple(j.axis), j.lower, j.upper))
    if tuple(j.name for j in joints) != space.dims:
        raise ValueError(f"dex3({side}) joint order {[j.name for j in joints]} != schemas {space.dims}")
    tips = {f: (chain.points[f"{f}_tip"][0], np.asarray(chain.points[f"{f}_tip"][1], np.float64))
            for f in ("thumb", "index", "middle")}
    s = 1.0 if side == "left" else -1.0
    # `{side}_hand_palm_joint` of unitree_ros g1_29dof_with_hand: palm at (0.0415, +-0.003, 0) in wrist_yaw_link
    return HandTable(side, tuple(joints), tips, np.array([0.0415, s * 0.003, 0.0]))


def body_joint_order() -> tuple[str, ...]:
    """G1 29-DoF body joints in SDK order (legs, waist, arms); MuJoCo names add `_joint`."""
    return G1_BODY.dims


def action_layout() -> dict[str, slice]:
    """Where hands, arms and the lower-body command sit in a PSI0_ACTION row."""
    return {k: PSI0_ACTION.slice(k) for k in ("left_hand", "right_hand", "left_arm", "right_arm", "lower_body")}
