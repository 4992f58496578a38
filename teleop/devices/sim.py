"""Simulated devices that drive every test: an operator performing a task, a kinematic G1, a camera.

`SimOperator` is a pure function of (seed, time since its first poll): the same `now` values give the
same bytes, whatever the call pattern. Its body is built from `teleop.body` (the model calibration and
mapping invert), its arms move through G1-reachable joint keyframes (scaled up to the operator's
size), trackers are mounted at arbitrary seeded rotations (calibration must remove them), and it has
tracker noise, slow drift and occasional dropouts (stale pose, `pose_valid` False for a few ticks).

`SimRobot` is a kinematic G1 body (`SIM_BODY`, whatever the embodiment: its hands are the action's hand
blocks as commanded): every joint tracks its command with a first-order lag; legs and waist follow
the 8-DoF lower-body command plausibly (squat by knee/hip/ankle, gait oscillation while walking, waist
takes the torso rpy); the base integrates velocity and heading. Its state records the lower-body command
it executed, the truth derived lower-body labels are checked against: `extra` `executed.torso_roll/pitch/yaw`
(the lagged torso rpy), `base_height` (torso height), `extra` `vx`, `vy`, `yaw_rate` and `base_yaw`
(velocity in the heading frame and the heading); nothing twice, so a recorded row stays small.

`SimCamera` renders a small egocentric RGB view of the robot's arms, hands and a lunch bag.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from schemas import embodiments
from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT, PSI0_ACTION, PSI0_HANDS
from schemas.embodiments import G1_BODY
from teleop.body import (ARM_RATIO, FOOT_TRACKER_HEIGHT, G1_ARM_LENGTH, HAND_IN_WRIST_FRAME, HEAD_RATIO, PELVIS_RATIO, REFERENCE_POSES,
                         SHOULDER_RATIO, operator_wrist_from_robot, wrist_fk)
from teleop.devices.hand_model import hand21
from teleop.geometry import exp_so3, min_jerk, pose, rot_z, rpy, wrap_angle
from teleop.streams import BODY_SITES, HAND_SIDES, CameraFrame, OperatorInput, RobotCommand, RobotState

# ------------------------------------------------------------------------------------------ task scripts
_READY = REFERENCE_POSES["ready"]


def _arm(side: str, pitch: float, roll: float, yaw: float, elbow: float, w_roll=0.0, w_pitch=0.0, w_yaw=0.0) -> np.ndarray:
    """G1 arm joints with abduction/rotation mirrored for the right arm."""
    s = 1.0 if side == "left" else -1.0
    return np.array([pitch, s * roll, s * yaw, elbow, s * w_roll, w_pitch, s * w_yaw])


@dataclass(frozen=True)
class Phase:
    """Over `duration` seconds, the named channels move (min-jerk) from where they are to `targets`."""
    name: str
    duration: float
    targets: dict = field(default_factory=dict)


CHANNELS = {"left_arm": _READY["left"], "right_arm": _READY["right"], "left_close": 0.15, "right_close": 0.15,
            "squat": 0.0, "lean": 0.0, "head_yaw": 0.0, "axes": np.zeros(4)}
"""Script channels and their initial values. squat: pelvis drop (m); lean: torso pitch (rad)."""

CALIBRATION_PHASE = "calibrate"

TASK_SCRIPTS: dict[str, list[Phase]] = {
    "lunchbag": [
        Phase(CALIBRATION_PHASE, 2.0),
        Phase("walk", 0.6, {"axes": np.array([0.0, 0.7, 0.0, 0.0])}),
        Phase("walk", 2.4),
        Phase("turn", 0.6, {"axes": np.array([0.0, 0.0, 0.6, 0.0])}),
        Phase("turn", 1.4),
        Phase("turn", 0.5, {"axes": np.zeros(4)}),
        Phase("squat", 1.5, {"squat": 0.22, "lean": 0.25}),
        Phase("reach", 1.5, {"right_arm": _arm("right", -0.55, 0.1, 0.1, 0.7, w_pitch=0.3), "right_close": 0.0,
                             "head_yaw": -0.1}),
        Phase("grasp", 0.8, {"right_close": 0.9}),
        Phase("lift", 1.2, {"right_arm": _arm("right", -0.9, 0.15, 0.0, 0.1, w_pitch=0.1)}),
        Phase("stand", 1.5, {"squat": 0.0, "lean": 0.0, "head_yaw": 0.0}),
        Phase("turn", 0.6, {"axes": np.array([0.0, 0.0, -0.6, 0.0])}),
        Phase("turn", 1.4),
        Phase("walk", 0.6, {"axes": np.array([0.1, 0.6, 0.0, 0.0])}),
        Phase("walk", 1.9),
        Phase("walk", 0.5, {"axes": np.zeros(4)}),
        Phase("place", 1.5, {"right_arm": _arm("right", -0.5, 0.2, 0.0, 0.6), "left_arm": _arm("left", -0.3, 0.2, 0.2, 0.3),
                             "left_close": 0.5}),
        Phase("release", 0.7, {"right_close": 0.05, "left_close": 0.15}),
        Phase("return", 1.5, {"right_arm": _READY["right"], "left_arm": _READY["left"], "right_close": 0.15}),
    ],
    "pick_place": [
        Phase(CALIBRATION_PHASE, 2.0),
        Phase("reach", 1.5, {"left_arm": _arm("left", -0.5, 0.1, 0.0, 0.6), "right_arm": _arm("right", -0.5, 0.1, 0.0, 0.6),
                             "left_close": 0.0, "right_close": 0.0}),
        Phase("grasp", 0.8, {"left_close": 0.85, "right_close": 0.85}),
        Phase("lift", 1.2, {"left_arm": _arm("left", -0.9, 0.1, 0.0, 0.2), "right_arm": _arm("right", -0.9, 0.1, 0.0, 0.2)}),
        Phase("squat", 1.5, {"squat": 0.15, "lean": 0.15}),
        Phase("stand", 1.5, {"squat": 0.0, "lean": 0.0}),
        Phase("release", 0.8, {"left_close": 0.1, "right_close": 0.1}),
        Phase("return", 1.5, {"left_arm": _READY["left"], "right_arm": _READY["right"]}),
    ],
}
"""Task name -> script. Unknown task names run `pick_place` (describe() says so)."""


class Script:
    """Channel values as a smooth function of script time (looping after the calibration phase)."""

    def __init__(self, phases: list[Phase]):
        self.phases = phases
        self.starts: list[float] = []
        self.begin_values: list[dict] = []
        values = {k: np.array(v, dtype=np.float64) for k, v in CHANNELS.items()}
        t = 0.0
        for ph in phases:
            unknown = set(ph.targets) - set(CHANNELS)
            if unknown:
                raise ValueError(f"phase {ph.name}: unknown channels {sorted(unknown)}")
            self.starts.append(t)
            self.begin_values.append({k: v.copy() for k, v in values.items()})
            for k, v in ph.targets.items():
                values[k] = np.array(v, dtype=np.float64)
            t += ph.duration
        self.end_values = values
        self.duration = t
        self.loop_start = phases[0].duration if phases[0].name == CALIBRATION_PHASE else 0.0

    def _locate(self, t: float) -> tuple[int, float]:
        if t >= self.duration:                 # loop the task part, keep the initial calibration once
            span = self.duration - self.loop_start
            t = self.loop_start + (t - self.loop_start) % span
        i = int(np.searchsorted(self.starts, t, side="right")) - 1
        return max(i, 0), t

    def phase(self, t: float) -> str:
        return self.phases[self._locate(t)[0]].name

    def sample(self, t: float) -> dict[str, np.ndarray]:
        i, t = self._locate(max(t, 0.0))
        ph = self.phases[i]
        s = min_jerk((t - self.starts[i]) / ph.duration) if ph.duration > 0 else 1.0
        begin = self.begin_values[i]
        out = dict(begin)
        for k, target in ph.targets.items():
            out[k] = begin[k] + s * (np.asarray(target) - begin[k])
        return out


# ------------------------------------------------------------------------------------------ operator
@dataclass(frozen=True)
class OperatorBody:
    stature: float
    origin: np.ndarray              # (x, y) where the operator stands
    yaw: float                      # facing direction in tracking space
    floor: float                    # floor height in tracking space
    mounts: dict                    # site -> 3x3 tracker mounting rotation


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


class SimOperator:
    """InputDevice: a simulated operator performing `task`, deterministic in (seed, now - first now)."""

    def __init__(self, task: str = "lunchbag", seed: int = 0, rate: float = 90.0, *, noise: float = 1.0,
                 dropout_rate: float = 0.04, dropout_ticks: tuple[int, int] = (2, 12), t0: float | None = None,
                 name: str = "sim"):
        self.name = name
        self.task = task
        self.script_name = task if task in TASK_SCRIPTS else "pick_place"
        self.script = Script(TASK_SCRIPTS[self.script_name])
        self.seed = int(seed)
        self.rate = float(rate)
        self.noise = float(noise)
        self.dropout_rate = float(dropout_rate)      # dropouts per second per tracked stream
        self.dropout_ticks = dropout_ticks
        self.t0 = t0
        rng = np.random.default_rng([self.seed, 1])
        stature = float(rng.uniform(1.58, 1.92))
        self.body = OperatorBody(
            stature=stature,
            origin=rng.uniform(-0.5, 0.5, size=2),
            yaw=float(rng.uniform(-np.pi, np.pi)),
            floor=float(rng.uniform(-0.05, 0.05)),
            mounts={s: _random_rotation(rng) for s in BODY_SITES},
        )
        self._dropouts: dict[int, dict[str, list[tuple[float, float]]]] = {}
        self._open = False

    # -- protocol
    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def describe(self) -> dict:
        return {"name": self.name, "kind": "sim", "task": self.task, "script": self.script_name, "seed": self.seed,
                "rate_hz": self.rate, "stature_m": round(self.body.stature, 4), "noise": self.noise,
                "dropout_rate_hz": self.dropout_rate, "sites": list(BODY_SITES)}

    def phase_at(self, now: float) -> str:
        return self.script.phase(self._time(now))

    def calibration_duration(self) -> float:
        """Seconds at the start the operator holds the `ready` reference pose."""
        return self.script.phases[0].duration if self.script.phases[0].name == CALIBRATION_PHASE else 0.0

    def _time(self, now: float) -> float:
        if self.t0 is None:
            self.t0 = float(now)
        return float(now) - self.t0

    # -- kinematic truth
    def truth(self, t: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, dict]:
        """Noise-free site poses (operator's own body frames), hand keypoints, axes, channels at script time t."""
        ch = self.script.sample(t)
        b = self.body
        h = b.stature
        r_head = rot_z(b.yaw)
        torso = r_head @ rpy(0.0, float(ch["lean"]), 0.0)
        ground = np.array([b.origin[0], b.origin[1], b.floor])
        pelvis_p = ground + np.array([0.0, 0.0, PELVIS_RATIO * h - float(ch["squat"])])
        shoulder = pelvis_p + torso @ np.array([0.0, 0.0, (SHOULDER_RATIO - PELVIS_RATIO) * h])
        head_p = shoulder + torso @ np.array([0.0, 0.0, (HEAD_RATIO - SHOULDER_RATIO) * h])
        poses = {"pelvis": pose(r_head, pelvis_p), "head": pose(torso @ rot_z(float(ch["head_yaw"])), head_p)}
        scale = self.arm_scale()
        keypoints = {}
        for side in HAND_SIDES:
            target = wrist_fk(side, ch[f"{side}_arm"])
            wrist = operator_wrist_from_robot(target, shoulder, torso, scale)
            poses[f"{side}_wrist"] = wrist
            kp = hand21(float(ch[f"{side}_close"]), side, h)
            keypoints[side] = wrist[:3, 3] + kp @ (wrist[:3, :3] @ HAND_IN_WRIST_FRAME).T
        for side, dy in (("left_foot", 0.11), ("right_foot", -0.11)):
            p = ground + r_head @ np.array([0.0, dy, FOOT_TRACKER_HEIGHT])
            poses[side] = pose(r_head, p)
        return poses, keypoints, np.asarray(ch["axes"], dtype=np.float64), ch

    def arm_scale(self) -> float:
        """Robot / operator arm scale this body implies (what calibration should recover)."""
        return G1_ARM_LENGTH / (ARM_RATIO * self.body.stature)

    # -- sensing
    def _dropout_windows(self, block: int) -> dict[str, list[tuple[float, float]]]:
        if block not in self._dropouts:
            rng = np.random.default_rng([self.seed, 2, block])
            out: dict[str, list[tuple[float, float]]] = {}
            for stream in list(BODY_SITES) + [f"{s}_hand" for s in HAND_SIDES]:
                n = rng.poisson(self.dropout_rate * 10.0)
                starts = rng.uniform(block * 10.0, (block + 1) * 10.0, size=n)
                ticks = rng.integers(self.dropout_ticks[0], self.dropout_ticks[1] + 1, size=n)
                out[stream] = sorted((float(s), float(s + k / self.rate)) for s, k in zip(starts, ticks))
            self._dropouts[block] = out
            if len(self._dropouts) > 64:
                self._dropouts.pop(min(self._dropouts))
        return self._dropouts[block]

    def _lost_since(self, stream: str, t: float) -> float | None:
        """Start of the dropout covering t (None if tracked). Windows may straddle a block boundary."""
        block = int(np.floor(t / 10.0))
        for b in (block, block - 1):
            if b < 0:
                continue
            for start, end in self._dropout_windows(b)[stream]:
                if start <= t < end:
                    return start
        return None

    def _sense(self, t: float) -> tuple[dict, dict, np.ndarray]:
        poses, keypoints, axes, _ = self.truth(t)
        rng = np.random.default_rng([self.seed, 3, int(round(t * 1e6))])
        sensed = {}
        for i, site in enumerate(BODY_SITES):
            p = poses[site].copy()
            drift = 0.003 * np.sin(0.37 * t + np.arange(3) * 1.7 + i)
            p[:3, 3] += self.noise * (rng.normal(scale=0.0015, size=3) + drift)
            p[:3, :3] = p[:3, :3] @ exp_so3(self.noise * rng.normal(scale=0.006, size=3))
            p[:3, :3] = p[:3, :3] @ self.body.mounts[site].T      # what the tracker itself reports
            sensed[site] = p
        kps = {s: keypoints[s] + self.noise * rng.normal(scale=0.002, size=(21, 3)) for s in HAND_SIDES}
        axes = np.clip(axes + self.noise * rng.normal(scale=0.01, size=4), -1.0, 1.0)
        return sensed, kps, axes

    def poll(self, now: float) -> OperatorInput:
        t = self._time(now)
        sensed, kps, axes = self._sense(t)
        valid, hand_valid = {}, {}
        for site in BODY_SITES:
            since = self._lost_since(site, t)
            valid[site] = since is None
            if since is not None:                      # trackers report their last pose while lost
                sensed[site] = self._sense(since - 1.0 / self.rate)[0][site]
        for side in HAND_SIDES:
            since = self._lost_since(f"{side}_hand", t)
            hand_valid[side] = since is None
            if since is not None:
                kps[side] = self._sense(since - 1.0 / self.rate)[1][side]
        return OperatorInput(t=float(now), poses=sensed, pose_valid=valid, hand_keypoints=kps, hand_valid=hand_valid,
                             axes=axes, buttons=frozenset())


# ------------------------------------------------------------------------------------------ robot
_LEG = 0.3           # G1 thigh and shank length (m), approximately
_STAND_KNEE = 0.4    # knee bend at nominal height
SIM_BODY = G1_BODY
"""The simulated body (`RobotState.body_q` layout): a G1, 29 joints in SDK order."""
_ARM = PSI0_ACTION.slice("arms")
_UPPER = PSI0_ACTION.slice("upper_body")          # hands + arms: lagged joint targets
_HANDS = PSI0_ACTION.slice("hands")
_LOWER = PSI0_ACTION.slice("lower_body")
_RPYH = slice(_LOWER.start + LOWER_BODY_COMMAND.slice("torso_rpy").start,
              _LOWER.start + LOWER_BODY_COMMAND.slice("torso_height").stop)
_LB = {d: _LOWER.start + LOWER_BODY_COMMAND.index(d) for d in LOWER_BODY_COMMAND.dims}
_TORSO_RPY = LOWER_BODY_COMMAND.dims[LOWER_BODY_COMMAND.slice("torso_rpy")]
"""The executed dims a state reports under `executed.` (the others are in it already)."""
_LEG_START = {side: SIM_BODY.slice(f"{side}_leg").start for side in ("left", "right")}
_WAIST = SIM_BODY.slice("waist")
_BODY_ARMS = SIM_BODY.slice("arms")


class SimRobot:
    """RobotBridge: kinematic G1 with first-order joint lag, legs/waist driven by the lower-body command."""

    def __init__(self, robot: str = embodiments.DEFAULT, tau: float = 0.06, base_tau: float = 0.3, name: str = "sim"):
        self.name = name
        self.embodiment = embodiments.get(robot)       # which hands the action's hand blocks drive
        self.robot = self.embodiment.name
        self.tau = tau
        self.base_tau = base_tau
        self._lo, self._hi = SIM_BODY.bounds()
        self._lock = threading.RLock()                # the camera thread reads state while the loop sends
        self.reset()

    def reset(self) -> None:
        self._t: float | None = None
        self._cmd = np.zeros(PSI0_ACTION.size)
        self._cmd[_LB["torso_height"]] = NOMINAL_TORSO_HEIGHT
        self._upper = self._cmd[_UPPER].copy()        # lagged hands + arms
        self._rpyh = np.array([0.0, 0.0, 0.0, NOMINAL_TORSO_HEIGHT])
        self._vel = np.zeros(3)                       # vx, vy (body frame), yaw rate
        self._base = np.zeros(3)                      # x, y, yaw
        self._gait = 0.0
        self._body_q = self._legs_waist_q()
        self._body_dq = np.zeros(SIM_BODY.size)
        self.commands_received = 0
        self._last: RobotState | None = None

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, command: RobotCommand) -> None:
        a = np.asarray(command.action, dtype=np.float64)
        if np.isfinite(a).all():
            with self._lock:
                self._cmd = a.copy()
                self.commands_received += 1

    def _legs_waist_q(self) -> np.ndarray:
        q = np.zeros(SIM_BODY.size)
        roll, pitch, yaw, height = self._rpyh
        d0 = 2 * _LEG * np.cos(_STAND_KNEE / 2)
        d = np.clip(d0 + (height - NOMINAL_TORSO_HEIGHT), 0.25, 2 * _LEG - 1e-3)
        knee = 2 * np.arccos(d / (2 * _LEG))
        waist = np.array([yaw, np.clip(roll, -0.52, 0.52), np.clip(pitch, -0.52, 0.52)])
        extra_pitch = pitch - waist[2]                 # lean beyond the waist's range comes from the hips
        speed = min(1.0, float(np.hypot(self._vel[0] / 0.5, self._vel[1] / 0.4) + abs(self._vel[2]) / 0.5))
        swing = np.sin(self._gait)
        for side, sgn in (("left", 1.0), ("right", -1.0)):
            o = _LEG_START[side]
            phase = sgn * swing
            q[o + 0] = -knee / 2 - extra_pitch - 0.35 * speed * phase          # hip pitch
            q[o + 1] = 0.15 * sgn * self._vel[1] / 0.4 * max(0.0, phase)      # hip roll
            q[o + 2] = 0.15 * self._vel[2] / 0.5 * phase                      # hip yaw
            q[o + 3] = knee + 0.5 * speed * max(0.0, phase)                   # knee (swing leg lifts)
            q[o + 4] = -knee / 2 + 0.1 * speed * phase                        # ankle pitch keeps the foot flat
            q[o + 5] = 0.0
        q[_WAIST] = waist
        return q

    def _step(self, dt: float) -> None:
        a = self._cmd
        k = 1.0 - np.exp(-dt / self.tau)
        self._upper += k * (a[_UPPER] - self._upper)
        self._rpyh += k * (a[_RPYH] - self._rpyh)
        kb = 1.0 - np.exp(-dt / self.base_tau)
        yaw_target = a[_LB["target_yaw"]]
        heading_rate = np.clip(a[_LB["yaw_rate"]] + 2.0 * float(wrap_angle(yaw_target - self._base[2])), -1.0, 1.0)
        self._vel += kb * (np.array([a[_LB["vx"]], a[_LB["vy"]], heading_rate]) - self._vel)
        c, s = np.cos(self._base[2]), np.sin(self._base[2])
        self._base += dt * np.array([c * self._vel[0] - s * self._vel[1], s * self._vel[0] + c * self._vel[1], self._vel[2]])
        self._base[2] = float(wrap_angle(self._base[2]))
        moving = abs(self._vel[0]) > 0.05 or abs(self._vel[1]) > 0.05 or abs(self._vel[2]) > 0.1
        self._gait = (self._gait + 2 * np.pi * 1.3 * dt) % (2 * np.pi) if moving else self._gait * (1 - kb)
        q = self._legs_waist_q()
        q[_BODY_ARMS] = self._upper[_ARM]
        q = np.clip(q, self._lo, self._hi)
        self._body_dq = (q - self._body_q) / dt
        self._body_q = q

    def state(self, now: float) -> RobotState:
        with self._lock:
            self._last = self._state(now)
            return self._last

    def peek(self) -> RobotState | None:
        """The state last read by the control loop, without advancing the simulation (for observers
        such as the camera thread, so they cannot change what the loop records)."""
        with self._lock:
            return self._last

    def _state(self, now: float) -> RobotState:
        if self._t is None:
            self._t = float(now)
        elif now > self._t:
            remaining = float(now) - self._t
            n = max(1, int(np.ceil(remaining / 0.005)))
            for _ in range(n):
                self._step(remaining / n)
            self._t = float(now)
        speed_pitch = 0.05 * self._vel[0]
        imu = np.array([0.02 * np.sin(self._gait) * (abs(self._vel[1]) + abs(self._vel[0])), speed_pitch, self._base[2]])
        hand = self._upper[_HANDS].copy()
        return RobotState(t=float(now), body_q=self._body_q.copy(), body_dq=self._body_dq.copy(), hand_q=hand,
                          imu_rpy=imu, base_height=float(self._rpyh[3]),
                          extra={"base_x": float(self._base[0]), "base_y": float(self._base[1]),
                                 "base_yaw": float(self._base[2]), "vx": float(self._vel[0]), "vy": float(self._vel[1]),
                                 "yaw_rate": float(self._vel[2]),
                                 **{f"executed.{d}": float(v) for d, v in zip(_TORSO_RPY, self._rpyh[:3])}})


# ------------------------------------------------------------------------------------------ camera
_HEAD_IN_TORSO = np.array([0.06, 0.0, 0.45])
_CAM_PITCH = 0.9
_BAG_WORLD = np.array([0.55, -0.15, -0.45])      # relative to the robot's start pose (torso frame), on a table


class SimCamera:
    """Camera: a head camera's view of the SimRobot's arms, hands and a lunch bag, at its own rate."""

    def __init__(self, robot: SimRobot | None = None, name: str = "egocentric", rate_hz: float = 30.0,
                 width: int = 160, height: int = 120, seed: int = 0):
        self.name = name
        self.rate_hz = float(rate_hz)
        self.robot = robot
        self.width, self.height = int(width), int(height)
        self.seed = int(seed)
        self._next: float | None = None
        self._index = 0
        f = 0.6 * self.width
        self._k = np.array([[f, 0, self.width / 2], [0, f, self.height / 2], [0, 0, 1.0]])
        # torso (x fwd, y left, z up) -> camera (x right, y down, z fwd), camera pitched down
        r_cam = rpy(0.0, _CAM_PITCH, 0.0)
        cv = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
        self._torso_to_cam = cv @ r_cam.T

    def open(self) -> None:
        self._next = None

    def close(self) -> None:
        pass

    def _project(self, pts: np.ndarray) -> np.ndarray:
        cam = (pts - _HEAD_IN_TORSO) @ self._torso_to_cam.T
        z = np.maximum(cam[:, 2:3], 1e-3)
        return (cam[:, :2] / z) * np.array([self._k[0, 0], self._k[1, 1]]) + self._k[:2, 2]

    def render(self, state: RobotState | None) -> np.ndarray:
        import cv2   # noqa: PLC0415  (opencv is a core dependency; imported here to keep module import light)
        h, w = self.height, self.width
        img = np.zeros((h, w, 3), np.uint8)
        img[: h // 3] = (70, 80, 95)                      # wall
        img[h // 3:] = (120, 100, 80)                     # table top
        rng = np.random.default_rng([self.seed, 4, self._index])
        if state is not None:
            base = np.array([state.extra.get("base_x", 0.0), state.extra.get("base_y", 0.0)])
            yaw = state.extra.get("base_yaw", 0.0)
            c, s = np.cos(-yaw), np.sin(-yaw)
            rel = _BAG_WORLD[:2] - base
            bag = np.array([c * rel[0] - s * rel[1], s * rel[0] + c * rel[1], _BAG_WORLD[2] + (state.base_height - NOMINAL_TORSO_HEIGHT) * -1])
            if bag[0] > 0.1:
                corners = bag + np.array([[-0.08, -0.12, 0], [0.08, -0.12, 0], [0.08, 0.12, 0], [-0.08, 0.12, 0]])
                poly = self._project(corners).astype(np.int32)
                cv2.fillConvexPoly(img, poly, (40, 120, 200))
            for side in ("left", "right"):
                frames = _arm_points(side, state.body_q[SIM_BODY.slice(f"{side}_arm")])
                px = self._project(frames).astype(np.int32)
                for a, b in zip(px[:-1], px[1:]):
                    cv2.line(img, tuple(int(v) for v in a), tuple(int(v) for v in b), (220, 220, 220), 2)
                hand = state.hand_q[PSI0_HANDS.slice(f"{side}_hand")]
                closure = float(np.clip(np.abs(hand).mean() / 1.2, 0.0, 1.0))
                radius = int(round(3 + 4 * (1 - closure)))
                color = (230, 180, 60) if side == "left" else (60, 200, 90)
                cv2.circle(img, tuple(int(v) for v in px[-1]), radius, color, -1)
        noise = rng.integers(-4, 5, size=img.shape, dtype=np.int16)
        return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    def grab(self, now: float) -> CameraFrame | None:
        """A frame when one is due at this camera's rate (frame k at t0 + k / rate), else None."""
        if self._next is None:
            self._next = float(now)
        if now + 1e-9 < self._next:
            return None
        state = None
        if self.robot is not None:
            state = self.robot.peek()
            if state is None:                          # nothing read yet: the loop has not started
                state = self.robot.state(now)
        img = self.render(state)
        self._index += 1
        period = 1.0 / self.rate_hz
        self._next += period * max(1, int(np.floor((now - self._next) / period)) + 1)
        return CameraFrame(t=float(now), camera=self.name, image=img)


def _arm_points(side: str, q: np.ndarray) -> np.ndarray:
    """Shoulder, elbow, wrist positions (torso frame) for drawing."""
    from teleop.upper_body import numpy_arm  # noqa: PLC0415
    _, pos = numpy_arm(side).fk(np.asarray(q, np.float64))
    return pos[[0, 3, 6]]


__all__ = ["SimOperator", "SimRobot", "SimCamera", "SIM_BODY", "TASK_SCRIPTS", "Phase", "Script", "CALIBRATION_PHASE",
           "REFERENCE_POSES"]
