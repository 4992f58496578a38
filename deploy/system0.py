"""The split between system-1's whole-body action and the robot's controllers.

A PSI0_ACTION row is: the hand blocks + the arm joints go to the joint PD controllers as position
targets; the lower-body slots are the command for the RL tracker (system-0, AMO). Both are clamped to
the robot's limits here (its embodiment's action space: Dex3-1 or Inspire hand slots, its arm limits),
the last line of defence before hardware.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas import embodiments
from schemas.actions import LOWER_BODY_COMMAND, PSI0_ACTION


@dataclass(frozen=True)
class WholeBodyTargets:
    upper_body_q: np.ndarray      # PSI0_ACTION "upper_body" (hands + arms), joint position targets (rad)
    lower_body_command: np.ndarray  # LOWER_BODY_COMMAND: torso rpy, height, vx, vy, yaw rate, target yaw
    clamped: bool


def split_action(action: np.ndarray, robot: str | None = None) -> WholeBodyTargets:
    """Clamp an action row to `robot`'s limits (an embodiment name; None: the default, G1 + Dex3-1, whose
    limits are PSI0_ACTION's) and split it for the two controllers."""
    a = np.asarray(action, np.float64)
    if a.shape != (PSI0_ACTION.size,):
        raise ValueError(f"expected a ({PSI0_ACTION.size},) PSI0_ACTION row, got {a.shape}")
    low, high = (np.asarray(b, np.float64) for b in embodiments.get(robot).action_space().bounds())
    clipped = np.clip(a, low, high)
    lower = PSI0_ACTION.slice("lower_body")
    upper = PSI0_ACTION.slice("upper_body")
    assert lower.stop - lower.start == LOWER_BODY_COMMAND.size
    return WholeBodyTargets(upper_body_q=clipped[upper].astype(np.float32),
                            lower_body_command=clipped[lower].astype(np.float32),
                            clamped=bool((clipped != a).any()))
