"""Gamepad + trackers -> the 8-DoF lower-body command for the system-0 tracker (AMO).

`LOWER_BODY_COMMAND` order: torso roll, pitch, yaw, torso height, vx, vy, yaw rate, target yaw.
- velocities from the sticks: left stick forward -> +vx, left stick right -> -vy (robot y is left),
  right stick right -> -yaw rate (turn right); a deadzone with the remaining travel rescaled to [0, 1];
- target yaw = the integral of the (rate-limited) yaw rate, wrapped to (-pi, pi] (how Ψ₀ feeds AMO's
  heading input);
- torso height = nominal + gain * (pelvis height above floor - standing pelvis height): the operator
  squats, the robot squats (gain defaults to robot nominal height / operator standing pelvis height);
  a small deadband ignores the pelvis bobbing of normal standing;
- torso roll/pitch/yaw come from the upper-body module (head vs pelvis);
then everything is limited to the schema range and rate-limited (acceleration for velocities, speed for
torso and height), so neither a tracker glitch nor a stick slam becomes a step command.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT
from teleop.calibration import Calibration
from teleop.geometry import sign

_LOW, _HIGH = (b.astype(np.float64) for b in LOWER_BODY_COMMAND.bounds())
_VEL = LOWER_BODY_COMMAND.slice("velocity")                  # vx, vy, yaw rate
_YAW_RATE = LOWER_BODY_COMMAND.index("yaw_rate")
_TARGET_YAW = LOWER_BODY_COMMAND.index("target_yaw")
_LOW_F, _HIGH_F = _LOW.tolist(), _HIGH.tolist()
_VEL_IDX = list(range(LOWER_BODY_COMMAND.size))[_VEL]


@dataclass(frozen=True)
class LocomotionConfig:
    deadzone: float = 0.12
    vx_max: float = 0.5
    vy_max: float = 0.4
    yaw_rate_max: float = 0.5
    accel: tuple[float, float, float] = (1.0, 1.0, 2.0)     # vx, vy (m/s^2), yaw rate (rad/s^2)
    torso_rate: float = 1.0                                  # rad/s for roll, pitch, yaw
    height_rate: float = 0.4                                 # m/s
    height_gain: float | None = None                         # None: nominal / standing pelvis height
    height_deadband: float = 0.02                            # m of pelvis motion ignored
    max_dt: float = 0.1                                      # longer gaps integrate as this (a stalled loop)


def deadzone(x: float, dz: float) -> float:
    """Zero inside |x| < dz, then linear to +-1 at full travel (no jump at the edge). On one Python float:
    the per-tick path maps three stick axes."""
    x = min(max(x, -1.0), 1.0)
    return sign(x) * min(max((abs(x) - dz) / (1.0 - dz), 0.0), 1.0)


class LocomotionMapper:
    def __init__(self, calibration: Calibration, config: LocomotionConfig = LocomotionConfig()):
        self.cal = calibration
        self.cfg = config
        self.height_gain = config.height_gain if config.height_gain is not None else \
            NOMINAL_TORSO_HEIGHT / max(calibration.standing_pelvis_height, 0.3)
        self.reset()

    def reset(self) -> None:
        self.command = np.array([0.0, 0.0, 0.0, NOMINAL_TORSO_HEIGHT, 0.0, 0.0, 0.0, 0.0])
        self._t: float | None = None
        self.clamped = False          # this tick's operator input asked for more than the limits allow

    def velocity_targets(self, axes: np.ndarray | None) -> np.ndarray:
        """(vx, vy, yaw rate) the stick asks for (deadzoned; zeros without a stick)."""
        return np.array(self._velocity_floats(axes))

    def _velocity_floats(self, axes: np.ndarray | None) -> list[float]:
        """`velocity_targets` as Python floats (the per-tick path)."""
        a = [0.0] * 3 if axes is None else [deadzone(v, self.cfg.deadzone) for v in np.asarray(axes, np.float64).tolist()[:3]]
        return [a[1] * self.cfg.vx_max, -a[0] * self.cfg.vy_max, -a[2] * self.cfg.yaw_rate_max]

    def height_target(self, pelvis_z: float) -> float:
        drop = float(pelvis_z) - self.cal.floor_height - self.cal.standing_pelvis_height
        drop = sign(drop) * max(0.0, abs(drop) - self.cfg.height_deadband)
        return float(NOMINAL_TORSO_HEIGHT + self.height_gain * drop)

    def step(self, t: float, axes: np.ndarray | None, pelvis_z: float | None, torso: np.ndarray | None,
             stop: bool = False) -> np.ndarray:
        """One tick -> LOWER_BODY_COMMAND row. None inputs hold their part; `stop` drives velocities to zero at once.

        (8 numbers: the arithmetic runs on Python floats, the numpy version spent ~0.1 ms a tick on call
        overhead.)"""
        dt = 0.0 if self._t is None else min(max(float(t) - self._t, 0.0), self.cfg.max_dt)
        self._t = float(t)
        cmd = self.command.tolist()
        self.clamped = False
        if torso is not None:
            step = self.cfg.torso_rate * dt
            for i, want in enumerate(np.asarray(torso, np.float64).tolist()[:3]):
                target = min(max(want, _LOW_F[i]), _HIGH_F[i])
                self.clamped |= target != want
                cmd[i] += min(max(target - cmd[i], -step), step)
        if pelvis_z is not None:
            wanted = self.height_target(pelvis_z)
            target_h = min(max(wanted, _LOW_F[3]), _HIGH_F[3])
            self.clamped |= target_h != wanted
            step = self.cfg.height_rate * dt
            cmd[3] += min(max(target_h - cmd[3], -step), step)
        if stop:
            for i in _VEL_IDX:
                cmd[i] = 0.0
        else:
            vel = self._velocity_floats(axes)
            for k, i in enumerate(_VEL_IDX):
                target = min(max(vel[k], _LOW_F[i]), _HIGH_F[i])
                step = self.cfg.accel[k] * dt
                cmd[i] += min(max(target - cmd[i], -step), step)
        cmd[_TARGET_YAW] = (cmd[_TARGET_YAW] + cmd[_YAW_RATE] * dt + math.pi) % (2 * math.pi) - math.pi
        self.command = np.array([min(max(v, lo), hi) for v, lo, hi in zip(cmd, _LOW_F, _HIGH_F)])
        return self.command.copy()


__all__ = ["LocomotionConfig", "LocomotionMapper", "deadzone"]
