"""Whole-body mapping: one `OperatorInput` -> one `RobotCommand` (PSI0_ACTION, 36-D), per control tick.

The split of the reference system: upper body by IK (wrists -> G1 arms, `teleop.upper_body`), hands by
retargeting (`teleop.hands`), lower body as the 8-DoF command for the RL tracker (`teleop.locomotion`),
then `teleop.safety` (hold on tracker loss, e-stop latch, rate limits, clamp). Flags on each command say
what happened: `<site>_lost` (head, pelvis, left_wrist, right_wrist), `<side>_hand_lost`, `hold`, `estop`,
`clamped`, `rate_limited`, `<side>_arm_unreachable` (IK residual above the limit), `nonfinite`.

Robots: `g1-dex3` (G1 arms + Dex3-1 hands, PSI0_ACTION as is) and `h1-inspire` (Inspire hands: 6 angles
+ 1 zero pad per hand slot). The project has kinematics only for the G1 arm, so `h1-inspire` arm slots
are G1-arm IK solutions too — good for the hand pipeline and the recorder, not for driving a real H1 arm.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from schemas.actions import PSI0_ACTION
from schemas.embodiments import INSPIRE_HAND
from teleop.calibration import Calibration
from teleop.filters import OneEuro, OneEuroConfig, PoseFilter
from teleop.hands import HandMapper, HandMapperConfig
from teleop.locomotion import LocomotionConfig, LocomotionMapper
from teleop.safety import PARTS, Safety, SafetyConfig
from teleop.streams import HAND_SIDES, OperatorInput, RobotCommand
from teleop.upper_body import UpperBodyConfig, UpperBodyMapper

_SITES = ("head", "pelvis", "left_wrist", "right_wrist")
ESTOP_BUTTON = "estop"
"""Semantic button name; drivers map their physical e-stop button (and the recorder its key) to it."""


@dataclass(frozen=True)
class RobotSpec:
    name: str
    hands: str                      # teleop.hands kind
    description: str


ROBOTS: dict[str, RobotSpec] = {
    "g1-dex3": RobotSpec("g1-dex3", "dex3", "Unitree G1 (29 DoF) with Dex3-1 hands"),
    "h1-inspire": RobotSpec("h1-inspire", "inspire", "Unitree H1 with Inspire hands (arm slots from G1-arm IK)"),
}


def action_bounds(robot: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-slot limits of the 36-D action for `robot`."""
    low, high = (b.astype(np.float64) for b in PSI0_ACTION.bounds())
    if ROBOTS[robot].hands == "inspire":
        ilo, ihi = INSPIRE_HAND.bounds()
        for side in HAND_SIDES:
            sl = PSI0_ACTION.slice(f"{side}_hand")
            low[sl], high[sl] = np.r_[ilo, 0.0], np.r_[ihi, 0.0]
    return low, high


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

    def __init__(self, robot: str = "g1-dex3", calibration: Calibration | None = None,
                 config: MapperConfig = MapperConfig()):
        if robot not in ROBOTS:
            raise ValueError(f"unknown robot {robot!r}; choose from {sorted(ROBOTS)}")
        self.robot = robot
        self.calibration = calibration or Calibration()
        self.config = config
        self.upper = UpperBodyMapper(self.calibration, config.upper)
        self.hands = HandMapper(ROBOTS[robot].hands, self.calibration, config.hands)
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
        valid = {s: bool(inp.pose_valid.get(s, False)) and s in inp.poses and bool(np.isfinite(inp.poses[s]).all())
                 for s in _SITES}
        flags.update(f"{s}_lost" for s, ok in valid.items() if not ok)
        poses = self.calibration.apply({s: inp.poses[s] for s in _SITES if valid[s]})
        for s in _SITES:
            if valid[s]:
                poses[s] = self._filtered(s, inp.t, poses[s], self.pose_filters[s])
            else:
                self._was_valid[s] = False
        action = np.full(PSI0_ACTION.size, np.nan)
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


__all__ = ["WholeBodyMapper", "MapperConfig", "ROBOTS", "RobotSpec", "ESTOP_BUTTON", "action_bounds"]
