"""The ONE place `sim/` reads robot tables from the rest of the project.

The MuJoCo hands are built from the embodiment's hand table (`schemas.embodiments`: joint origins, axes,
limits, fingertip points), the palm mount from its arm chain, the actuator order from its joint spaces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.actions import PSI0_ACTION
from schemas import embodiments
from schemas.embodiments import G1_BODY


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


def hand_table(side: str, embodiment: str = "g1_dex3") -> HandTable:
    """The embodiment's hand kinematics for one side, in PSI0_ACTION's hand order (checked against schemas)."""
    emb = embodiments.get(embodiment)
    hand = emb.hand.side(side)
    chain = hand.chain
    joints = tuple(HandJoint(j.name, j.parent, j.origin(), tuple(j.axis), j.lower, j.upper)
                   for j in chain.joints if j.axis is not None and j.mimic is None)
    if tuple(j.name for j in joints) != hand.joints.dims:
        raise ValueError(f"{emb.name} {side} hand joint order {[j.name for j in joints]} != {hand.joints.dims}")
    tips = {f: (chain.points[f"{f}_tip"][0], np.asarray(chain.points[f"{f}_tip"][1], np.float64))
            for f in ("thumb", "index", "middle")}
    arm_ik = emb.ik
    if arm_ik is None:
        raise ValueError(f"{emb.name}: no arm chain to mount the hand on")
    palm = np.asarray(arm_ik.chains[side].points["palm"][1], np.float64)    # `{side}_hand_palm_joint` offset
    return HandTable(side, joints, tips, palm)


def body_joint_order() -> tuple[str, ...]:
    """G1 29-DoF body joints in SDK order (legs, waist, arms); MuJoCo names add `_joint`."""
    return G1_BODY.dims


def action_layout() -> dict[str, slice]:
    """Where hands, arms and the lower-body command sit in a PSI0_ACTION row."""
    return {k: PSI0_ACTION.slice(k) for k in ("left_hand", "right_hand", "left_arm", "right_arm", "lower_body")}
