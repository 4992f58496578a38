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

from dataclasses import dataclass

import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT
from teleop.calibration import Calibration
from teleop.geometry import wrap_angle

_LOW, _HIGH = (b.astype(np.float64) for b in LOWER_BODY_COMMAND.bounds())
_VEL = LOWER_BODY_COMMAND.slice("velocity")                  # vx, vy, yaw rate
_YAW_RATE = LOWER_BODY_COMMAND.index("yaw_rate")
_TARGET_YAW = LOWER_BODY_COMMAND.index("target_yaw")


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


def deadzone(x: np.ndarray | float, dz: float) -> np.ndarray:
    """Zero inside |x| < dz, then linear to +-1 at full travel (no jump at the edge)."""
    x = np.clip(np.asarray(x, np.float64), -1.0, 1.0)
    return np.sign(x) * np.clip((np.abs(x) - dz) / (1.0 - dz), 0.0, 1.0)


def _toward(cur: np.ndarray, target: np.ndarray, max_step: np.ndarray) -> np.ndarray:
    return cur + np.clip(target - cur, -max_step, max_step)


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

    def velocity_targets(self, axes: np.ndarray) -> np.ndarray:
        a = deadzone(axes, self.cfg.deadzone)
        return np.array([a[1] * self.cfg.vx_max, -a[0] * self.cfg.vy_max, -a[2] * self.cfg.yaw_rate_max])

    def height_target(self, pelvis_z: float) -> float:
        drop = pelvis_z - self.cal.floor_height - self.cal.standing_pelvis_height
        drop = np.sign(drop) * max(0.0, abs(drop) - self.cfg.height_deadband)
        return float(NOMINAL_TORSO_HEIGHT + self.height_gain * drop)

    def step(self, t: float, axes: np.ndarray | None, pelvis_z: float | None, torso: np.ndarray | None,
             stop: bool = False) -> np.ndarray:
        """One tick -> LOWER_BODY_COMMAND row. None inputs hold their part; `stop` drives velocities to zero at once."""
        dt = 0.0 if self._t is None else float(np.clip(t - self._t, 0.0, self.cfg.max_dt))
        self._t = float(t)
        cmd = self.command.copy()
        self.clamped = False
        if torso is not None:
            target = np.clip(torso, _LOW[0:3], _HIGH[0:3])
            self.clamped |= bool(np.any(target != torso))
            cmd[0:3] = _toward(cmd[0:3], target, np.full(3, self.cfg.torso_rate * dt))
        if pelvis_z is not None:
            wanted = self.height_target(pelvis_z)
            target_h = float(np.clip(wanted, _LOW[3], _HIGH[3]))
            self.clamped |= target_h != wanted
            cmd[3] = float(_toward(cmd[3:4], np.array([target_h]), np.array([self.cfg.height_rate * dt]))[0])
        if stop:
            cmd[_VEL] = 0.0
        else:
            vel = self.velocity_targets(np.zeros(4) if axes is None else axes)
            vel = np.clip(vel, _LOW[_VEL], _HIGH[_VEL])
            cmd[_VEL] = _toward(cmd[_VEL], vel, np.asarray(self.cfg.accel) * dt)
        cmd[_TARGET_YAW] = float(wrap_angle(cmd[_TARGET_YAW] + cmd[_YAW_RATE] * dt))
        self.command = np.clip(cmd, _LOW, _HIGH)
        return self.command.copy()


__all__ = ["LocomotionConfig", "LocomotionMapper", "deadzone"]
