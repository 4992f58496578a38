"""The split between system-1's whole-body action and the robot's controllers.

A PSI0_ACTION row is: Dex3-1 hands (14) + G1 arms (14) go to the joint PD controllers as position
targets; the last 8 dims are the lower-body command for the RL tracker (system-0, AMO). Both are
clamped to their limits here, the last line of defence before hardware.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, PSI0_ACTION


@dataclass(frozen=True)
class WholeBodyTargets:
    upper_body_q: np.ndarray      # (28,) hands 14 + arms 14, joint position targets (rad)
    lower_body_command: np.ndarray  # (8,) AMO command: torso rpy, height, vx, vy, yaw rate, target yaw
    clamped: bool


def split_action(action: np.ndarray) -> WholeBodyTargets:
    """Clamp a 36-D action to PSI0_ACTION's limits and split it for the two controllers."""
    a = np.asarray(action, np.float64)
    if a.shape != (PSI0_ACTION.size,):
        raise ValueError(f"expected a ({PSI0_ACTION.size},) PSI0_ACTION row, got {a.shape}")
    low, high = np.asarray(PSI0_ACTION.low, np.float64), np.asarray(PSI0_ACTION.high, np.float64)
    clipped = np.clip(a, low, high)
    lower = PSI0_ACTION.slice("lower_body")
    upper = PSI0_ACTION.slice("upper_body")
    assert lower.stop - lower.start == LOWER_BODY_COMMAND.size
    return WholeBodyTargets(upper_body_q=clipped[upper].astype(np.float32),
                            lower_body_command=clipped[lower].astype(np.float32),
                            clamped=bool((clipped != a).any()))
