"""Joint layouts of the embodiments we ingest, in the order the hardware / dataset stores them.

Limits (radians) are transcribed from Unitree's published robot descriptions:
- G1 29-DoF body: unitreerobotics/xr_teleoperate `assets/g1/g1_body29_hand14.urdf`.
- Dex3-1 hands: `assets/unitree_hand/unitree_dex3_{left,right}.urdf` (left/right mirror signs).
- Inspire hands: `assets/inspire_hand/inspire_hand_right.urdf` (angles; HE stores 0..1 closures
  that its converter maps to angles with `1.7 - q` / `1.2 - q` / `0.5 - q`).
- H1 (H1_2 SDK order, as Humanoid Everyday's H1 data): `teleop/robot_control/robot_arm.py`.
"""
from __future__ import annotations

from schemas.spaces import Space

SIDES = ("left", "right")


def _space(name: str, joints: list[tuple[str, float, float]], slices: dict[str, tuple[int, int]] | None = None) -> Space:
    return Space(
        name,
        tuple(j for j, _, _ in joints),
        slices or {},
        tuple(lo for _, lo, _ in joints),
        tuple(hi for _, _, hi in joints),
    )


# ---------------------------------------------------------------- Unitree G1, 29-DoF body
def _g1_leg(side: str) -> list[tuple[str, float, float]]:
    roll = (-0.5236, 2.9671) if side == "left" else (-2.9671, 0.5236)
    return [
        (f"{side}_hip_pitch", -2.5307, 2.8798),
        (f"{side}_hip_roll", *roll),
        (f"{side}_hip_yaw", -2.7576, 2.7576),
        (f"{side}_knee", -0.087267, 2.8798),
        (f"{side}_ankle_pitch", -0.87267, 0.5236),
        (f"{side}_ankle_roll", -0.2618, 0.2618),
    ]


def _g1_arm(side: str) -> list[tuple[str, float, float]]:
    roll = (-1.5882, 2.2515) if side == "left" else (-2.2515, 1.5882)
    return [
        (f"{side}_shoulder_pitch", -3.0892, 2.6704),
        (f"{side}_shoulder_roll", *roll),
        (f"{side}_shoulder_yaw", -2.618, 2.618),
        (f"{side}_elbow", -1.0472, 2.0944),
        (f"{side}_wrist_roll", -1.972222054, 1.972222054),
        (f"{side}_wrist_pitch", -1.614429558, 1.614429558),
        (f"{side}_wrist_yaw", -1.614429558, 1.614429558),
    ]


G1_WAIST = [("waist_yaw", -2.618, 2.618), ("waist_roll", -0.52, 0.52), ("waist_pitch", -0.52, 0.52)]

G1_BODY = _space(
    "g1_body29",
    _g1_leg("left") + _g1_leg("right") + G1_WAIST + _g1_arm("left") + _g1_arm("right"),
    {"left_leg": (0, 6), "right_leg": (6, 12), "legs": (0, 12), "waist": (12, 15),
     "left_arm": (15, 22), "right_arm": (22, 29), "arms": (15, 29)},
)
"""G1 29-DoF body in SDK motor order (legs, waist, arms)."""

G1_ARMS = _space("g1_arms14", _g1_arm("left") + _g1_arm("right"), {"left_arm": (0, 7), "right_arm": (7, 14)})
"""The 14 arm joints in the order Unitree teleop datasets store `arm_state` / `sol_q[15:29]`."""

G1_LEGS_WAIST = _space("g1_leg_state15", _g1_leg("left") + _g1_leg("right") + G1_WAIST,
                       {"left_leg": (0, 6), "right_leg": (6, 12), "waist": (12, 15)})
"""Humanoid Everyday G1 `leg_state` (15): legs then waist, SDK order."""


# ---------------------------------------------------------------- Dex3-1 hand (7 per hand)
def _dex3(side: str) -> list[tuple[str, float, float]]:
    sign = 1.0 if side == "left" else -1.0

    def rng(lo: float, hi: float) -> tuple[float, float]:
        a, b = sign * lo, sign * hi
        return (min(a, b), max(a, b))

    # URDF limits (left; the right file mirrors them). Unitree's Dex3-1 SDK page quotes narrower
    # ranges (thumb_2 0..100 deg, finger_0 -90..0 deg, finger_1 -100..0 deg); the URDF is what
    # the retargeting FK and IK use, so the space carries the URDF ranges.
    return [
        ("thumb_0", -1.04719755, 1.04719755),
        ("thumb_1", *rng(-0.72431163, 1.04719755)),
        ("thumb_2", *rng(0.0, 2.09439510)),
        ("middle_0", *rng(-1.83259571, 0.19198621)),
        ("middle_1", *rng(-2.09439510, 0.0)),
        ("index_0", *rng(-1.83259571, 0.19198621)),
        ("index_1", *rng(-2.09439510, 0.0)),
    ]


DEX3_LEFT = _space("dex3_left", _dex3("left"))
DEX3_RIGHT = _space("dex3_right", _dex3("right"))
"""Dex3-1 hardware order: thumb 0..2, middle 0..1, index 0..1 (= HE `hand_state` order)."""


# ---------------------------------------------------------------- Inspire hand (6 per hand)
INSPIRE_HAND = _space("inspire_hand", [
    ("pinky", 0.0, 1.7), ("ring", 0.0, 1.7), ("middle", 0.0, 1.7), ("index", 0.0, 1.7),
    ("thumb_bend", 0.0, 0.5), ("thumb_rotation", -0.1, 1.3),
])
"""Inspire hardware order, as proximal joint angles (rad)."""


# ---------------------------------------------------------------- Unitree H1 (H1_2 SDK order)
def _h1_leg(side: str) -> list[tuple[str, float, float]]:
    return [
        (f"{side}_hip_yaw", -0.43, 0.43), (f"{side}_hip_roll", -0.43, 0.43),
        (f"{side}_hip_pitch", -3.14, 2.53), (f"{side}_knee", -0.26, 2.05),
        (f"{side}_ankle_pitch", -0.897334, 0.523598), (f"{side}_ankle_roll", -0.261799, 0.261799),
    ]


def _h1_arm(side: str) -> list[tuple[str, float, float]]:
    return [
        (f"{side}_shoulder_pitch", -3.14, 1.57), (f"{side}_shoulder_roll", -0.38, 3.4),
        (f"{side}_shoulder_yaw", -3.01, 2.66), (f"{side}_elbow_pitch", -2.53, 1.6),
        (f"{side}_elbow_roll", -2.967, 2.967), (f"{side}_wrist_pitch", -0.471, 0.349),
        (f"{side}_wrist_yaw", -1.012, 1.012),
    ]


H1_LEGS_WAIST = _space("h1_leg_state13", _h1_leg("left") + _h1_leg("right") + [("waist_yaw", -2.35, 2.35)],
                       {"left_leg": (0, 6), "right_leg": (6, 12), "waist": (12, 13)})
H1_ARMS = _space("h1_arms14", _h1_arm("left") + _h1_arm("right"), {"left_arm": (0, 7), "right_arm": (7, 14)})


# ---------------------------------------------------------------- the human hand (EgoDex / ARKit)
FINGERS = ("Thumb", "IndexFinger", "MiddleFinger", "RingFinger", "LittleFinger")
_THUMB_JOINTS = ("Knuckle", "IntermediateBase", "IntermediateTip", "Tip")
_FINGER_JOINTS = ("Metacarpal", "Knuckle", "IntermediateBase", "IntermediateTip", "Tip")


def human_hand_joints(side: str) -> tuple[str, ...]:
    """The 25 EgoDex joints of one hand in topological order: wrist (`<side>Hand`), thumb 4, then
    index, middle, ring, little 5 each (metacarpal → tip). Tips sit at 4, 9, 14, 19, 24."""
    names = [f"{side}Hand"] + [f"{side}Thumb{j}" for j in _THUMB_JOINTS]
    for finger in FINGERS[1:]:
        names += [f"{side}{finger}{j}" for j in _FINGER_JOINTS]
    return tuple(names)


HUMAN_HAND_TIPS = (4, 9, 14, 19, 24)
HUMAN_BODY_JOINTS = ("hip",) + tuple(f"spine{i}" for i in range(1, 8)) + tuple(f"neck{i}" for i in range(1, 5)) + tuple(
    f"{side}{part}" for side in SIDES for part in ("Shoulder", "Arm", "Forearm"))
EGODEX_JOINTS: tuple[str, ...] = HUMAN_BODY_JOINTS + human_hand_joints("left") + human_hand_joints("right")
"""All 68 EgoDex joints (topological order; h5py lists them alphabetically)."""
assert len(EGODEX_JOINTS) == 68

MEDIAPIPE_LANDMARKS = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
# Index into human_hand_joints(side) for each MediaPipe landmark (finger metacarpals dropped).
MEDIAPIPE_FROM_HUMAN25 = (0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 19, 21, 22, 23, 24)


def xyz_space(name: str, points: tuple[str, ...]) -> Space:
    """Flattened (N, 3) point positions with per-axis names."""
    return Space(name, tuple(f"{p}.{a}" for p in points for a in "xyz"))


HUMAN_HAND_KEYPOINTS = {side: xyz_space(f"human_{side}_hand25", human_hand_joints(side)) for side in SIDES}
