"""The last stage before a command leaves the mapper: hold, e-stop, rate limits, clamp — and say so in flags.

- A body part whose inputs are lost (tracker dropout, non-finite numbers) holds its last safe command;
  the frame is flagged `hold` (the mapper adds which site was lost, e.g. `left_wrist_lost`).
- E-stop latches (until `reset_estop()`): velocities go to zero, everything else holds the posture of the
  last command before the stop, the heading target stays; every frame is flagged `estop`.
- Arm and hand joints are rate-limited (a re-acquired tracker must not snap the arm): `rate_limited`.
- Finally every slot is clamped to the action limits: `clamped` when anything moved.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT, PSI0_ACTION

PARTS: dict[str, slice] = {
    "left_hand": PSI0_ACTION.slice("left_hand"), "right_hand": PSI0_ACTION.slice("right_hand"),
    "left_arm": PSI0_ACTION.slice("left_arm"), "right_arm": PSI0_ACTION.slice("right_arm"),
    "torso": slice(PSI0_ACTION.slice("lower_body").start, PSI0_ACTION.slice("lower_body").start + 4),
    "locomotion": slice(PSI0_ACTION.slice("lower_body").start + 4, PSI0_ACTION.slice("lower_body").stop),
}
"""Independently held parts of the action."""
_VEL = slice(PSI0_ACTION.slice("lower_body").start + LOWER_BODY_COMMAND.slice("velocity").start,
             PSI0_ACTION.slice("lower_body").start + LOWER_BODY_COMMAND.slice("velocity").stop)


def safe_default() -> np.ndarray:
    """Standing still, arms in the ready pose, hands at zero."""
    a = np.zeros(PSI0_ACTION.size)
    a[PARTS["torso"].start + 3] = NOMINAL_TORSO_HEIGHT
    return a


@dataclass(frozen=True)
class SafetyConfig:
    max_arm_speed: float = 3.0       # rad/s per joint
    max_hand_speed: float = 12.0     # rad/s per joint (a fast grasp is ~0.2 s)
    max_dt: float = 0.1


class Safety:
    def __init__(self, low: np.ndarray | None = None, high: np.ndarray | None = None,
                 config: SafetyConfig = SafetyConfig()):
        lo, hi = PSI0_ACTION.bounds()
        self.low = np.asarray(lo if low is None else low, np.float64)
        self.high = np.asarray(hi if high is None else high, np.float64)
        self.cfg = config
        self._rate = np.zeros(PSI0_ACTION.size)
        self._rate[PSI0_ACTION.slice("arms")] = config.max_arm_speed
        self._rate[PSI0_ACTION.slice("hands")] = config.max_hand_speed
        # the rate-limited slots as a slice when contiguous (basic indexing: views, no gather copies)
        idx = np.flatnonzero(self._rate > 0)
        contiguous = idx.size > 0 and np.array_equal(idx, np.arange(idx[0], idx[-1] + 1))
        self._joints: slice | np.ndarray = slice(int(idx[0]), int(idx[-1]) + 1) if contiguous else idx
        self._joint_rate = self._rate[self._joints].copy()
        self.reset()

    def reset(self) -> None:
        self.last = np.clip(safe_default(), self.low, self.high)
        self._t: float | None = None
        self.estopped = False

    def trigger_estop(self) -> None:
        self.estopped = True

    def reset_estop(self) -> None:
        self.estopped = False

    def apply(self, t: float, proposed: np.ndarray, ok: dict[str, bool]) -> tuple[np.ndarray, set[str]]:
        """Proposed PSI0_ACTION row + per-part validity -> safe action and flags."""
        flags: set[str] = set()
        dt = 0.0 if self._t is None else min(max(float(t) - self._t, 0.0), self.cfg.max_dt)
        first = self._t is None
        self._t = float(t)
        out = np.asarray(proposed, np.float64).copy()
        if self.estopped:
            out[: PARTS["torso"].stop] = self.last[: PARTS["torso"].stop]
            out[_VEL] = 0.0
            out[PARTS["locomotion"].stop - 1] = self.last[PARTS["locomotion"].stop - 1]
            flags.add("estop")
        else:
            # (per tick cost: the common case, every part valid and finite, is two numpy calls; np.clip's
            # Python wrapper is avoided below, minimum(maximum()) computes the same)
            if not (np.isfinite(out).all() and all(ok.get(part, True) for part in PARTS)):
                for part, sl in PARTS.items():
                    finite = bool(np.isfinite(out[sl]).all())
                    if not ok.get(part, True) or not finite:
                        if not finite and ok.get(part, True):
                            flags.add("nonfinite")
                        out[sl] = self.last[sl]
                        flags.add("hold")
            if not first:
                joints = self._joints
                step = self._joint_rate * dt
                want = out[joints]
                last = self.last[joints]
                limited = np.minimum(np.maximum(want - last, -step), step)
                limited += last
                if (np.abs(limited - want) > 1e-9).any():
                    flags.add("rate_limited")
                out[joints] = limited
        clipped = np.minimum(np.maximum(out, self.low), self.high)
        if (np.abs(clipped - out) > 1e-6).any():
            flags.add("clamped")
        self.last = clipped
        return clipped.copy(), flags


__all__ = ["Safety", "SafetyConfig", "PARTS", "safe_default"]
