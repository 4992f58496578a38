"""The human hand and body as EgoDex (ARKit) and MediaPipe lay them out: the retargeting's input side."""
from __future__ import annotations

from schemas.embodiments.spec import SIDES
from schemas.spaces import Space

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

_FINGER_NAMES = {"thumb": "Thumb", "index": "IndexFinger", "middle": "MiddleFinger", "ring": "RingFinger",
                 "little": "LittleFinger"}


def _joint_of_each_finger(thumb: str, finger: str) -> dict[str, int]:
    names = human_hand_joints("left")
    return {f: names.index(f"left{n}{thumb if f == 'thumb' else finger}") for f, n in _FINGER_NAMES.items()}


HUMAN_HAND_WRIST = 0
HUMAN_HAND_KNUCKLE = _joint_of_each_finger("IntermediateBase", "Knuckle")
"""Index of each finger's knuckle (MCP; thumb: its MCP, `ThumbIntermediateBase`) in `human_hand_joints`."""
HUMAN_HAND_MID = _joint_of_each_finger("IntermediateTip", "IntermediateBase")
"""Index of each finger's middle joint (PIP; thumb: IP)."""
HUMAN_HAND_TIP = _joint_of_each_finger("Tip", "Tip")
"""Index of each fingertip (thumb, index, middle, ring, little = HUMAN_HAND_TIPS)."""
assert tuple(HUMAN_HAND_TIP.values()) == HUMAN_HAND_TIPS
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
