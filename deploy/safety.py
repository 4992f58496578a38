"""What the robot does when the policy server goes away: hold, then damp, never a jump; and e-stop.

States (`Supervisor.state`):
- RUNNING: the RTC engine's action passes through unchanged.
- HOLD (link lost): the last executed action is held; only the lower-body velocity commands (vx, vy,
  yaw rate) move, towards 0 at a bounded deceleration, so the robot stops walking without a step change.
- DAMP (HOLD lasted `hold_s`): over `damp_ramp_s` the joint targets blend from the held ones to the
  measured joint positions and the position gain scale goes 1 -> 0 (the bridge multiplies Kp by it: the
  robot ends in Unitree's damping mode, Kd only). The targets move no faster than `max_target_rate`
  (rad/s): a held target far from where the joint is (a blocked arm) would otherwise sweep across that
  distance within the ramp - a jump with the gains still up.
- ESTOP (operator): gains to 0 at once and targets = measured (no position error, so no torque step from
  the targets); velocities 0; latched until `reset()`.
A lost link does not recover by itself: resuming a policy after the world moved on is an operator decision
(restart `psi0 robot`).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, PSI0_ACTION

_LOWER = PSI0_ACTION.slice("lower_body")
_UPPER = PSI0_ACTION.slice("upper_body")
VELOCITY_DIMS = np.array([_LOWER.start + LOWER_BODY_COMMAND.index(d) for d in ("vx", "vy", "yaw_rate")])


class LinkState(str, Enum):
    RUNNING = "running"
    HOLD = "hold"
    DAMP = "damp"
    ESTOP = "estop"


@dataclass(frozen=True)
class SafetyConfig:
    hold_s: float = 0.5            # keep the last action this long after the link is lost
    damp_ramp_s: float = 1.0       # then blend targets to measured / gains to 0 over this long
    decel: float = 1.0             # m/s^2 (rad/s^2 for yaw rate): velocity commands -> 0 at this rate
    max_target_rate: float = 1.0   # rad/s: DAMP moves joint targets towards the measured joints no faster


@dataclass(frozen=True)
class SafeCommand:
    action: np.ndarray             # PSI0_ACTION row to execute
    kp_scale: float                # 1: the policy's gains; 0: damping only
    state: LinkState


class Supervisor:
    """Call exactly one of `ok(action)` / `lost(measured_upper)` / `estop(measured_upper)` per control tick."""

    def __init__(self, cfg: SafetyConfig = SafetyConfig(), control_hz: float = 30.0):
        self.cfg, self.dt = cfg, 1.0 / control_hz
        self.state = LinkState.RUNNING
        self._held: np.ndarray | None = None
        self._damp_upper: np.ndarray | None = None   # the upper-body targets DAMP last sent
        self._since = 0.0             # seconds in HOLD / DAMP
        self.transitions: list[tuple[int, str]] = []
        self._tick = 0

    def _enter(self, state: LinkState) -> None:
        if state != self.state:
            self.state = state
            self.transitions.append((self._tick, state.value))

    def ok(self, action: np.ndarray) -> SafeCommand:
        if self.state != LinkState.RUNNING:
            raise RuntimeError(f"supervisor is in {self.state.value}: restart the robot client to resume")
        self._held = np.asarray(action, np.float64).copy()
        self._tick += 1
        return SafeCommand(self._held.copy(), 1.0, self.state)

    def lost(self, measured_upper: np.ndarray) -> SafeCommand:
        """The link is down this tick (or has been): HOLD, then DAMP."""
        if self._held is None:
            raise RuntimeError("link lost before the first action: nothing to hold (the robot never moved)")
        if self.state == LinkState.ESTOP:
            return self.estop(measured_upper)
        if self.state == LinkState.RUNNING:
            self._enter(LinkState.HOLD)
            self._since = 0.0
        self._since += self.dt
        self._tick += 1
        self._ramp_velocities()
        if self._since <= self.cfg.hold_s:
            return SafeCommand(self._held.copy(), 1.0, self.state)
        self._enter(LinkState.DAMP)
        alpha = min(1.0, (self._since - self.cfg.hold_s) / max(self.cfg.damp_ramp_s, self.dt))
        last = self._held[_UPPER] if self._damp_upper is None else self._damp_upper
        blend = (1 - alpha) * self._held[_UPPER] + alpha * np.asarray(measured_upper, np.float64)
        step = self.cfg.max_target_rate * self.dt
        self._damp_upper = last + np.clip(blend - last, -step, step)
        action = self._held.copy()
        action[_UPPER] = self._damp_upper
        return SafeCommand(action, 1.0 - alpha, self.state)

    def estop(self, measured_upper: np.ndarray) -> SafeCommand:
        self._enter(LinkState.ESTOP)
        self._tick += 1
        action = (self._held if self._held is not None else np.zeros(PSI0_ACTION.size)).copy()
        action[_UPPER] = np.asarray(measured_upper, np.float64)
        action[VELOCITY_DIMS] = 0.0
        self._held = action
        return SafeCommand(action.copy(), 0.0, self.state)

    def reset(self) -> None:
        """Operator cleared the e-stop / restarted: back to RUNNING (the next `ok` sets the action)."""
        self._enter(LinkState.RUNNING)
        self._since = 0.0
        self._damp_upper = None

    def _ramp_velocities(self) -> None:
        step = self.cfg.decel * self.dt
        v = self._held[VELOCITY_DIMS]
        self._held[VELOCITY_DIMS] = np.sign(v) * np.maximum(np.abs(v) - step, 0.0)
