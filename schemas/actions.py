"""The action and state spaces the model trains on.

- `PSI0_ACTION` (36): Dex3-1 hands 14, G1 arms 14, then the 8-DoF lower-body command for the
  system-0 tracker (AMO): torso roll, pitch, yaw, torso height, vx, vy, yaw rate, target yaw.
  (Ψ₀ reference layout, verified in its LeRobot converter and deploy client.)
- `PSI0_STATE` (36): hands 14 + arms 14 + previous torso rpy 3 + previous height 1, padded to 36.
- `HUMAN_ACTION_48`: per hand (left, right): wrist xyz, wrist rot6d (first two rotation-matrix
  columns), five fingertip xyz, all in a camera frame — the robot-free stage-1 representation.
- `LOWER_BODY_COMMAND` (8) with the velocity/height/torso limits of the AMO tracker.
"""
from __future__ import annotations

from schemas.embodiments import DEX3_LEFT, DEX3_RIGHT, G1_ARMS, SIDES
from schemas.spaces import Space, concat, padded

NOMINAL_TORSO_HEIGHT = 0.75
"""AMO's nominal base height (m); its height command is an offset from this."""

LOWER_BODY_COMMAND = Space(
    "lower_body_command8",
    ("torso_roll", "torso_pitch", "torso_yaw", "torso_height", "vx", "vy", "yaw_rate", "target_yaw"),
    {"torso_rpy": (0, 3), "torso_height": (3, 4), "velocity": (4, 7), "heading": (7, 8)},
    # AMO demo ranges: roll ±0.7, pitch -0.52..1.57, yaw ±1.57, height 0.75 + [-0.5, 0.8],
    # vx ±0.5, vy ±0.4; yaw rate bounded by the teleop joystick's fastest setting (±0.5 rad/s).
    low=(-0.7, -0.52, -1.57, NOMINAL_TORSO_HEIGHT - 0.5, -0.5, -0.4, -0.5, -3.14159265),
    high=(0.7, 1.57, 1.57, NOMINAL_TORSO_HEIGHT + 0.8, 0.5, 0.4, 0.5, 3.14159265),
)

PSI0_HANDS = concat("dex3_hands14", [("left_hand", DEX3_LEFT), ("right_hand", DEX3_RIGHT)])

PSI0_ACTION = concat("psi0_action36", [
    ("left_hand", DEX3_LEFT), ("right_hand", DEX3_RIGHT),
    ("left_arm", Space("arm7", G1_ARMS.dims[0:7], {}, G1_ARMS.low[0:7], G1_ARMS.high[0:7])),
    ("right_arm", Space("arm7", G1_ARMS.dims[7:14], {}, G1_ARMS.low[7:14], G1_ARMS.high[7:14])),
    ("lower_body", LOWER_BODY_COMMAND),
])
PSI0_ACTION.slices.update({"hands": (0, 14), "arms": (14, 28), "upper_body": (0, 28)})
assert PSI0_ACTION.size == 36 and PSI0_ACTION.slice("lower_body") == slice(28, 36)

_PREV_TORSO = Space("prev_torso4", ("prev_torso_roll", "prev_torso_pitch", "prev_torso_yaw", "prev_torso_height"),
                    {}, (-0.7, -0.52, -1.57, NOMINAL_TORSO_HEIGHT - 0.5), (0.7, 1.57, 1.57, NOMINAL_TORSO_HEIGHT + 0.8))
_STATE32 = concat("psi0_state32", [
    ("left_hand", DEX3_LEFT), ("right_hand", DEX3_RIGHT),
    ("left_arm", Space("arm7", G1_ARMS.dims[0:7], {}, G1_ARMS.low[0:7], G1_ARMS.high[0:7])),
    ("right_arm", Space("arm7", G1_ARMS.dims[7:14], {}, G1_ARMS.low[7:14], G1_ARMS.high[7:14])),
    ("torso", _PREV_TORSO),
])
PSI0_STATE = padded(_STATE32, 36, "psi0_state36")
PSI0_STATE.slices.update({"hands": (0, 14), "arms": (14, 28)})
PSI0_STATE_USED = 32

_FINGERTIPS = ("thumb", "index", "middle", "ring", "little")


def _human_hand24(side: str) -> Space:
    dims = [f"wrist.{a}" for a in "xyz"] + [f"wrist.rot6d_{i}" for i in range(6)]
    dims += [f"{tip}_tip.{a}" for tip in _FINGERTIPS for a in "xyz"]
    return Space(f"human_{side}_hand24", tuple(dims), {"wrist_pos": (0, 3), "wrist_rot": (3, 9), "tips": (9, 24)})


HUMAN_ACTION_48 = concat("human_action48", [(f"{side}_hand", _human_hand24(side)) for side in SIDES])
"""Absolute variant: camera frame of the chunk's first frame."""


def _human_hand24_delta(side: str) -> Space:
    dims = [f"wrist.d{a}" for a in "xyz"] + [f"wrist.d{r}" for r in ("roll", "pitch", "yaw")]
    dims += [f"wrist.zero_{i}" for i in range(3)]
    dims += [f"{tip}_tip.d{a}" for tip in _FINGERTIPS for a in "xyz"]
    return Space(f"human_{side}_hand24_delta", tuple(dims), {"wrist_pos": (0, 3), "wrist_rot": (3, 6), "tips": (9, 24)})


HUMAN_ACTION_48_DELTA = concat("human_action48_delta", [(f"{side}_hand", _human_hand24_delta(side)) for side in SIDES])
"""Delta variant (Ψ₀ pre-training): per hand Δxyz, Δroll-pitch-yaw, 3 zeros, Δfingertips."""


BATCH_PAD_DIM = max(PSI0_ACTION.size, PSI0_STATE.size, HUMAN_ACTION_48.size)
"""Width every action / state row is zero-padded to in a training batch (masks mark the real dims), so one
batch can mix the human 48-D and the robot 36-D spaces."""
