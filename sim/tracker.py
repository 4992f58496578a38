"""System-0 in simulation: the 8-DoF lower-body command -> lower-body joint targets, every control tick.

`LowerBodyController` is the interface a learned lower-body policy (AMO's I/O contract: 50 Hz, PD
targets for the 12 leg + 3 waist joints from proprioception and the command) plugs into. Its
`base_mode` says which robot it needs: "free" (floating base, feet on the floor: a real balance
policy) or "servo" (virtual base joints).

`StandInTracker` is the documented stand-in (docs/sim.md). What it idealises:
- balance and locomotion are perfect: the pelvis is servoed along the commanded planar velocity
  (body frame), heading and height by stiff virtual joints; feet do not bear weight or slip;
- velocity changes are bounded (acceleration limits below) and commands are clamped to AMO's
  ranges, so it cannot do what AMO could not be asked to do, but it never falls or drifts;
- legs are posed analytically (two-link squat + a cosmetic gait swing); torso roll/pitch/yaw go to
  the waist joints, pitch beyond the waist's ±0.52 rad to a virtual pelvis pitch.
It reports the command it actually executed (after clamping and rate limits) every tick, which the
recorder stores as ground truth next to the commanded one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT
from schemas.embodiments import G1_BODY

LEGS = G1_BODY.slice("legs")
WAIST = G1_BODY.slice("waist")
LEG_WAIST = slice(LEGS.start, WAIST.stop)
N_LEG_WAIST = WAIST.stop - LEGS.start

_CMD = {name: i for i, name in enumerate(LOWER_BODY_COMMAND.dims)}
PELVIS_ABOVE_TORSO_HEIGHT = 0.03
"""Pelvis height = commanded torso height + this (m): at the nominal 0.75 the knees are slightly bent."""
# G1 leg geometry (mjlab g1.xml): pelvis -> hip pitch axis 0.1027 m down; hip -> knee 0.335 m; knee ->
# ankle 0.300 m; ankle -> sole 0.053 m.
_HIP_DROP, _THIGH, _SHANK, _FOOT = 0.1027, 0.335, 0.300, 0.053


@dataclass(frozen=True)
class LowerBodyObservation:
    """What a lower-body controller sees each tick (world frame unless said otherwise)."""
    t: float
    dt: float
    body_q: np.ndarray            # (29,) G1_BODY order
    body_dq: np.ndarray
    base_pos: np.ndarray          # (3,) pelvis position
    base_rpy: np.ndarray          # (3,) pelvis roll, pitch, yaw
    base_ang_vel: np.ndarray      # (3,) pelvis angular velocity, pelvis frame (the IMU gyro)
    base_lin_vel: np.ndarray      # (3,) pelvis linear velocity, world frame


@dataclass(frozen=True)
class LowerBodyTargets:
    leg_waist_q: np.ndarray       # (15,) PD targets, G1_BODY legs + waist order
    base_q: np.ndarray | None     # servo mode: (5,) targets for sim.robot.BASE_JOINTS; free mode: None
    executed: np.ndarray          # (8,) the command as executed (LOWER_BODY_COMMAND order)


class LowerBodyController(Protocol):
    """System-0: called once per control tick with the clamped 8-DoF command."""
    base_mode: str

    def reset(self, obs: LowerBodyObservation) -> None: ...
    def step(self, command: np.ndarray, obs: LowerBodyObservation) -> LowerBodyTargets: ...


def wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


_COMMAND_LOW, _COMMAND_HIGH = LOWER_BODY_COMMAND.bounds()
_WAIST_LOW, _WAIST_HIGH = (np.asarray(b, np.float64)[WAIST] for b in G1_BODY.bounds())


def clamp_command(command: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(command, np.float64), _COMMAND_LOW, _COMMAND_HIGH)


def squat_legs(pelvis_height: float) -> tuple[float, float, float]:
    """(hip pitch, knee, ankle pitch) that put flat feet on the floor for a pelvis at this height."""
    reach = np.clip(pelvis_height - _HIP_DROP - _FOOT, 0.2, _THIGH + _SHANK - 1e-3)
    cos_knee = (_THIGH ** 2 + _SHANK ** 2 - reach ** 2) / (2 * _THIGH * _SHANK)
    knee = np.pi - np.arccos(np.clip(cos_knee, -1.0, 1.0))
    hip = -np.arcsin(np.clip(_SHANK * np.sin(knee) / reach, -1.0, 1.0))      # thigh lean forward
    ankle = -(knee + hip)                                                 # shank back to vertical foot
    return float(hip), float(knee), float(ankle)


@dataclass
class StandInLimits:
    accel: float = 1.0            # m/s^2, planar
    yaw_accel: float = 3.0        # rad/s^2
    yaw_rate: float = 1.0         # rad/s, incl. heading correction
    heading_gain: float = 2.0     # 1/s, target-yaw error -> yaw rate
    height_rate: float = 0.4      # m/s
    torso_rate: float = 1.0       # rad/s
    gait_hz: float = 1.3


class StandInTracker:
    """The idealised tracker described in the module doc (servo base)."""
    base_mode = "servo"

    def __init__(self, limits: StandInLimits = StandInLimits()):
        self.lim = limits
        self.reset(None)

    def reset(self, obs: LowerBodyObservation | None) -> None:
        self.pose = np.zeros(3) if obs is None else np.array([obs.base_pos[0], obs.base_pos[1], obs.base_rpy[2]])
        self.vel = np.zeros(3)            # vx, vy (body frame), yaw rate
        self.height = NOMINAL_TORSO_HEIGHT
        self.rpy = np.zeros(3)
        self.gait = 0.0

    def step(self, command: np.ndarray, obs: LowerBodyObservation) -> LowerBodyTargets:
        c = clamp_command(command)
        dt, lim = obs.dt, self.lim
        heading_err = wrap(c[_CMD["target_yaw"]] - self.pose[2])
        want = np.array([c[_CMD["vx"]], c[_CMD["vy"]],
                         np.clip(c[_CMD["yaw_rate"]] + lim.heading_gain * heading_err, -lim.yaw_rate, lim.yaw_rate)])
        step = np.array([lim.accel, lim.accel, lim.yaw_accel]) * dt
        self.vel += np.clip(want - self.vel, -step, step)
        cy, sy = np.cos(self.pose[2]), np.sin(self.pose[2])
        self.pose += dt * np.array([cy * self.vel[0] - sy * self.vel[1], sy * self.vel[0] + cy * self.vel[1], self.vel[2]])
        self.height += np.clip(c[_CMD["torso_height"]] - self.height, -lim.height_rate * dt, lim.height_rate * dt)
        rpy_cmd = c[[_CMD["torso_roll"], _CMD["torso_pitch"], _CMD["torso_yaw"]]]
        self.rpy += np.clip(rpy_cmd - self.rpy, -lim.torso_rate * dt, lim.torso_rate * dt)

        roll, pitch, yaw = self.rpy
        waist = np.clip([yaw, roll, pitch], _WAIST_LOW, _WAIST_HIGH)
        pelvis_pitch = pitch - waist[2]
        pelvis_z = self.height + PELVIS_ABOVE_TORSO_HEIGHT
        hip, knee, ankle = squat_legs(pelvis_z)
        speed = min(1.0, float(np.hypot(self.vel[0] / 0.5, self.vel[1] / 0.4) + abs(self.vel[2]) / 0.5))
        if speed > 0.05:
            self.gait = (self.gait + 2 * np.pi * lim.gait_hz * dt) % (2 * np.pi)
        q = np.zeros(N_LEG_WAIST)
        for o, sgn in ((0, 1.0), (6, -1.0)):
            swing = sgn * np.sin(self.gait) * speed
            q[o + 0] = hip - pelvis_pitch - 0.3 * swing
            q[o + 3] = knee + 0.4 * max(0.0, swing)
            q[o + 4] = ankle + 0.1 * swing
        q[WAIST.start - LEGS.start:] = waist
        executed = np.array([roll, pitch, yaw, self.height, self.vel[0], self.vel[1], self.vel[2], self.pose[2]])
        base = np.array([self.pose[0], self.pose[1], pelvis_z, self.pose[2], pelvis_pitch])
        return LowerBodyTargets(q, base, executed)
