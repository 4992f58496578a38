"""Whole-body mapping: one `OperatorInput` -> one `RobotCommand` (a PSI0_ACTION row), per control tick.

The split of the reference system: upper body by IK (wrists -> G1 arms, `teleop.upper_body`), hands by
retargeting (`teleop.hands`), lower body as the 8-DoF command for the RL tracker (`teleop.locomotion`),
then `teleop.safety` (hold on tracker loss, e-stop latch, rate limits, clamp). Flags on each command say
what happened: `<site>_lost` (head, pelvis, left_wrist, right_wrist), `<side>_hand_lost`, `hold`, `estop`,
`clamped`, `rate_limited`, `<side>_arm_unreachable` (IK residual above the limit), `nonfinite`.

Robots are `schemas.embodiments` configurations (`embodiments.names()`: `g1_dex3`, `g1_inspire`,
`h1_inspire`, ...; hyphenated spellings accepted). Each brings its arm IK chains and rest pose, its hand
chains and the slot map of its hands into the action (Dex3-1 as is; Inspire thumb -> little + 1 zero pad
per hand block), and its action limits. `h1_inspire` declares the G1 arm as a stand-in IK model (the
project has no H1 arm kinematics): good for the hand pipeline and the recorder, not for a real H1 arm.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from schemas import embodiments
from schemas.actions import PSI0_ACTION
from teleop.calibration import Calibration
from teleop.filters import OneEuro, OneEuroConfig, PoseFilter
from teleop.hands import HandMapper, HandMapperConfig
from teleop.locomotion import LocomotionConfig, LocomotionMapper
from teleop.safety import PARTS, Safety, SafetyConfig
from teleop.streams import HAND_SIDES, OperatorInput, RobotCommand
from teleop.upper_body import UpperBodyConfig, UpperBodyMapper

_SITES = ("head", "pelvis", "left_wrist", "right_wrist")
_NAN_ACTION = np.full(PSI0_ACTION.size, np.nan)
"""The proposed action before any part is mapped (copied each tick: np.full costs ~10x a copy)."""

ESTOP_BUTTON = "estop"
"""Semantic button name; drivers map their physical e-stop button (and the recorder its key) to it."""


def _all_finite(x: np.ndarray) -> bool:
    """np.isfinite(x).all() for a small array (a 4x4 pose): on its floats, ~2.5x faster than the numpy calls."""
    try:
        return all(map(math.isfinite, x.ravel().tolist()))
    except (AttributeError, TypeError):
        return bool(np.isfinite(x).all())


def action_bounds(robot: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-slot limits of the action for `robot` (an embodiment name; None: the default), float64."""
    low, high = embodiments.get(robot).action_space().bounds()
    return low.astype(np.float64), high.astype(np.float64)


@dataclass(frozen=True)
class MapperConfig:
    upper: UpperBodyConfig = field(default_factory=UpperBodyConfig)
    hands: HandMapperConfig = field(default_factory=HandMapperConfig)
    locomotion: LocomotionConfig = field(default_factory=LocomotionConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    estop_buttons: frozenset[str] = frozenset({ESTOP_BUTTON})
    filter_inputs: bool = True                     # One-Euro on tracker poses and hand keypoints
    position_filter: OneEuroConfig = OneEuroConfig(min_cutoff=1.5, beta=4.0)
    rotation_filter: OneEuroConfig = OneEuroConfig(min_cutoff=1.5, beta=1.0)
    keypoint_filter: OneEuroConfig = OneEuroConfig(min_cutoff=2.0, beta=5.0)


class WholeBodyMapper:
    """Stateful per-tick mapper (warm starts, rate limits, held commands, e-stop latch)."""

    def __init__(self, robot: str = embodiments.DEFAULT, calibration: Calibration | None = None,
                 config: MapperConfig = MapperConfig()):
        self.embodiment = embodiments.get(robot)          # ValueError names the choices
        self.robot = self.embodiment.name
        self.calibration = calibration or Calibration()
        self.config = config
        self.upper = UpperBodyMapper(self.calibration, config.upper, self.embodiment)
        self.hands = HandMapper(self.embodiment, self.calibration, config.hands)
        self.locomotion = LocomotionMapper(self.calibration, config.locomotion)
        self.safety = Safety(*action_bounds(robot), config=config.safety)
        self.pose_filters = {s: PoseFilter(config.position_filter, config.rotation_filter) for s in _SITES}
        self.hand_filters = {s: OneEuro(config.keypoint_filter) for s in HAND_SIDES}
        self._was_valid: dict[str, bool] = {}
        self.latencies: deque[float] = deque(maxlen=100_000)
        self.info: dict[str, float] = {}

    def reset(self) -> None:
        """Forget warm starts, held commands and the e-stop (a new session)."""
        self.upper.reset()
        self.hands.reset()
        self.locomotion.reset()
        self.safety.reset()
        for f in list(self.pose_filters.values()) + list(self.hand_filters.values()):
            f.reset()
        self._was_valid = {}

    def _filtered(self, key: str, t: float, x: np.ndarray, filt) -> np.ndarray:
        """Filter a valid sample; a stream coming back from a dropout restarts its filter (no stale memory)."""
        if not self._was_valid.get(key, False):
            filt.reset()
        self._was_valid[key] = True
        return filt(t, x) if self.config.filter_inputs else x

    def estop(self) -> None:
        self.safety.trigger_estop()

    def reset_estop(self) -> None:
        self.safety.reset_estop()

    @property
    def estopped(self) -> bool:
        return self.safety.estopped

    def step(self, inp: OperatorInput) -> RobotCommand:
        start = time.perf_counter()
        flags: set[str] = set()
        if inp.buttons & self.config.estop_buttons:
            self.safety.trigger_estop()
        valid = {s: bool(inp.pose_valid.get(s, False)) and s in inp.poses and _all_finite(inp.poses[s])
                 for s in _SITES}
        flags.update(f"{s}_lost" for s, ok in valid.items() if not ok)
        poses = self.calibration.apply({s: inp.poses[s] for s in _SITES if valid[s]})
        for s in _SITES:
            if valid[s]:
                poses[s] = self._filtered(s, inp.t, poses[s], self.pose_filters[s])
            else:
                self._was_valid[s] = False
        action = _NAN_ACTION.copy()
        ok = {part: True for part in PARTS}
        stopped = self.safety.estopped

        # lower body (gives the torso frame the arms are mapped in)
        torso_meas = self.upper.measure_torso(poses, valid)
        pelvis_z = float(poses["pelvis"][2, 3]) if valid["pelvis"] else None
        lower = self.locomotion.step(inp.t, inp.axes, pelvis_z, torso_meas, stop=stopped)
        if self.locomotion.clamped:
            flags.add("clamped")
        ok["torso"] = valid["pelvis"] and valid["head"]
        action[PARTS["torso"]] = lower[:4]
        action[PARTS["locomotion"]] = lower[4:]

        if not stopped:
            arms = self.upper.step(poses, valid, lower[:3])
            for side in HAND_SIDES:
                q = arms.arm_q[side]
                ok[f"{side}_arm"] = q is not None
                if q is not None:
                    action[PARTS[f"{side}_arm"]] = q
                    self.info[f"{side}_arm.position_error"] = arms.position_error[side]
                    self.info[f"{side}_arm.rotation_error"] = arms.rotation_error[side]
                    if arms.position_error[side] > self.config.upper.unreachable_error:
                        flags.add(f"{side}_arm_unreachable")
            for side in HAND_SIDES:
                kp = inp.hand_keypoints.get(side)
                hand_ok = bool(inp.hand_valid.get(side, False)) and kp is not None and bool(np.isfinite(kp).all())
                ok[f"{side}_hand"] = hand_ok
                if not hand_ok:
                    flags.add(f"{side}_hand_lost")
                    self._was_valid[f"{side}_hand"] = False
                    continue
                kp = self._filtered(f"{side}_hand", inp.t, kp, self.hand_filters[side])
                q, err = self.hands.step_side(side, kp)
                action[PARTS[f"{side}_hand"]] = q
                self.info[f"{side}_hand.tip_error"] = err
        safe, safety_flags = self.safety.apply(inp.t, action, ok)
        flags |= safety_flags
        self.latencies.append(time.perf_counter() - start)
        return RobotCommand(t=inp.t, action=safe.astype(np.float32), flags=frozenset(flags))

    def latency_stats(self) -> dict[str, float]:
        """p50 / p99 / max per-step latency in ms over the steps so far."""
        if not self.latencies:
            return {"n": 0}
        ms = np.asarray(self.latencies) * 1e3
        return {"n": int(ms.size), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max())}


__all__ = ["WholeBodyMapper", "MapperConfig", "ESTOP_BUTTON", "action_bounds"]
