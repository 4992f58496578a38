"""`teleop record --device mujoco`: a physically simulated episode in the MuJoCo benchmark (`sim/`),
recorded in the ordinary teleop format so `pipelines/teleop_ingest.py` turns it into shards.

The operator is the task's scripted expert (privileged state, `sim.experts`); the robot is the
simulated G1 + Dex3-1 (`MujocoRobot`, a RobotBridge); the camera is its head camera (`MujocoCamera`).
Time is virtual: the loop runs as fast as the simulation (ticks at 50 Hz of sim time), so recordings
are deterministic for a (task, seed) and a demo costs less than its duration on a fast machine.

What is recorded besides the usual streams: `robot_state.extra` holds the command the system-0
stand-in actually executed (`executed.<dim>`, after clamping and rate limits: the ground truth
derived labels can be checked against), the base pose, object poses (`object.<name>.<x|y|z>`) and
`success`; session.json's `device` says the operator, the task instance and whether the grasp
assist was on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT
from teleop.streams import BODY_SITES, HAND_SIDES, CameraFrame, OperatorInput, RobotCommand, RobotState


class MujocoWorld:
    """One simulated world shared by the input (expert), robot and camera faces."""

    def __init__(self, task: str = "lunchbag", seed: int = 0, grasp_assist: bool = True,
                 camera_size: tuple[int, int] = (160, 120)):
        from sim.env import EnvConfig, SimEnv  # noqa: PLC0415
        self.task, self.seed = task, int(seed)
        self.env = SimEnv(EnvConfig(camera=False, grasp_assist=grasp_assist, width=camera_size[0],
                                    height=camera_size[1]))
        self.expert: Any = None
        self.pending = None
        self.info: dict[str, Any] = {}

    def reset(self, seed: int | None = None) -> None:
        from sim.experts import ScriptedExpert  # noqa: PLC0415
        if seed is not None:
            self.seed = int(seed)
        self.env.reset(self.task, self.seed)
        self.expert = ScriptedExpert(self.env)
        self.pending = self.env.last_action.copy()
        self.info = {"success": False}

    @property
    def done(self) -> bool:
        return bool(self.info.get("success")) or self.env.t >= self.env.task.time_limit - 1e-9

    def describe(self) -> dict[str, Any]:
        t = self.env.task
        return {"kind": "mujoco", "operator": "scripted-expert", "task": self.task, "seed": self.seed,
                "layout": t.layout, "instruction": t.instruction, "time_limit_s": t.time_limit,
                "grasp_assist": self.env.cfg.grasp_assist, "tracker": type(self.env.tracker).__name__}


class ExpertInput:
    """InputDevice face: the scripted expert is the operator. Its 'tracker' poses are the simulated
    robot's head camera and hand grasp sites (world frame), so the inputs stream shows what it did."""
    name = "mujoco"

    def __init__(self, world: MujocoWorld):
        self.world = world

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return self.world.describe()

    def poll(self, now: float) -> OperatorInput:
        env = self.world.env
        d, idx = env.data, env.idx
        poses = {s: np.eye(4) for s in BODY_SITES}
        cam = env.model.camera("head").id
        poses["head"][:3, :3], poses["head"][:3, 3] = d.cam_xmat[cam].reshape(3, 3), d.cam_xpos[cam]
        poses["pelvis"][:3, :3], poses["pelvis"][:3, 3] = d.xmat[idx.pelvis].reshape(3, 3), d.xpos[idx.pelvis]
        for side in HAND_SIDES:
            site = idx.grasp_sites[side]
            poses[f"{side}_wrist"][:3, :3] = d.site_xmat[site].reshape(3, 3)
            poses[f"{side}_wrist"][:3, 3] = d.site_xpos[site]
        valid = {s: s in ("head", "pelvis", "left_wrist", "right_wrist") for s in BODY_SITES}
        return OperatorInput(t=float(now), poses=poses, pose_valid=valid,
                             hand_keypoints={h: np.zeros((21, 3)) for h in HAND_SIDES},
                             hand_valid={h: False for h in HAND_SIDES}, axes=np.zeros(4), buttons=frozenset())


class ExpertMapper:
    """Mapper face: the expert's PSI0_ACTION row becomes the command (no human-body mapping)."""

    def __init__(self, world: MujocoWorld):
        self.world = world

    def step(self, inp: OperatorInput) -> RobotCommand:
        action = self.world.expert.act()
        return RobotCommand(inp.t, np.asarray(action, np.float32), frozenset({"expert"}))


class MujocoRobot:
    """RobotBridge face: `send` queues the command, `state(now)` advances physics by one control tick."""
    name = "mujoco"

    def __init__(self, world: MujocoWorld):
        self.world = world
        self._last: RobotState | None = None

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, command: RobotCommand) -> None:
        self.world.pending = np.asarray(command.action, np.float64)

    def peek(self) -> RobotState | None:
        return self._last

    def state(self, now: float) -> RobotState:
        w = self.world
        env = w.env
        _, _, w.info = env.step(w.pending)
        d, idx = env.data, env.idx
        base = env.base_pose()
        extra: dict[str, float] = {"base_x": float(base[0]), "base_y": float(base[1]), "base_yaw": float(base[2]),
                                   "success": float(w.info["success"]), "sim_t": float(env.t)}
        for name, value in zip(LOWER_BODY_COMMAND.dims, w.info["executed_command"]):
            extra[f"executed.{name}"] = float(value)
        for obj in env.task.objects:
            p = d.xpos[env.model.body(obj["name"]).id]
            for axis, v in zip("xyz", p):
                extra[f"object.{obj['name']}.{axis}"] = float(v)
        from sim.observation import PRIVILEGED, privileged_vector  # noqa: PLC0415
        for name, value in zip(PRIVILEGED.dims, privileged_vector(env)):
            extra[f"privileged.{name}"] = float(value)       # the policy's privileged observation (docs/eval.md)
        from sim.tracker import PELVIS_ABOVE_TORSO_HEIGHT  # noqa: PLC0415
        self._last = RobotState(t=float(now), body_q=d.qpos[idx.body_qpos].copy(), body_dq=d.qvel[idx.body_qvel].copy(),
                                hand_q=d.qpos[idx.hand_qpos].copy(), imu_rpy=env.base_rpy(),
                                base_height=float(d.xpos[idx.pelvis][2] - PELVIS_ABOVE_TORSO_HEIGHT), extra=extra)
        return self._last


class MujocoCamera:
    """Camera face: the robot's head camera, rendered at `rate_hz` of simulated time."""

    def __init__(self, world: MujocoWorld, rate_hz: float = 30.0, width: int = 160, height: int = 120,
                 name: str = "egocentric"):
        self.world, self.rate_hz, self.width, self.height, self.name = world, float(rate_hz), width, height, name
        self._next: float | None = None

    def open(self) -> None:
        self._next = None

    def close(self) -> None:
        pass

    def grab(self, now: float) -> CameraFrame | None:
        if self._next is None:
            self._next = float(now)
        if now + 1e-9 < self._next:
            return None
        while self._next <= now + 1e-9:
            self._next += 1.0 / self.rate_hz
        return CameraFrame(float(now), self.name, self.world.env.render("head", self.width, self.height))


@dataclass
class MujocoRecordOptions:
    task: str
    out: str = "recordings"
    episodes: int = 1
    duration: float | None = None          # None: until success or the task's time limit
    seed: int = 0
    operator: str = "scripted-expert"
    rate_hz: float = 50.0
    camera_rate_hz: float = 30.0
    camera_size: tuple[int, int] = (160, 120)
    session_name: str | None = None
    grasp_assist: bool = True


def record(opts: MujocoRecordOptions) -> dict[str, Any]:
    """Record `opts.episodes` simulated episodes (seeds seed, seed+1, ...) as one teleop session."""
    from teleop.loop import ControlLoop  # noqa: PLC0415
    from teleop.recording import Recorder, SessionMeta  # noqa: PLC0415
    from teleop.session import session_dir  # noqa: PLC0415
    if abs(opts.rate_hz - 50.0) > 1e-9:
        raise ValueError("the simulator's control rate is 50 Hz (--rate 50)")
    world = MujocoWorld(opts.task, opts.seed, opts.grasp_assist, opts.camera_size)
    world.reset(opts.seed)
    device, mapper, robot = ExpertInput(world), ExpertMapper(world), MujocoRobot(world)
    camera = MujocoCamera(world, opts.camera_rate_hz, *opts.camera_size)
    directory = session_dir(Path(opts.out), opts.task, opts.session_name)
    meta = SessionMeta(task=opts.task, robot="g1-dex3", operator=opts.operator, device=world.describe(),
                       cameras={camera.name: {"rate_hz": camera.rate_hz, "width": camera.width, "height": camera.height}},
                       calibration={}, control_rate_hz=opts.rate_hz,
                       extra={"sim": {"virtual_clock": True, "physics_hz": 500, "grasp_assist": opts.grasp_assist,
                                      "executed_command": "robot_state.extra executed.<dim>",
                                      "privileged_dims": list(_privileged_dims())}})
    recorder = Recorder(directory, meta)
    loop = ControlLoop(device, mapper, robot, [camera], recorder, opts.rate_hz)
    dt = 1.0 / opts.rate_hz
    now = 0.0
    episodes = []
    try:
        for k in range(opts.episodes):
            if k:
                world.reset(opts.seed + k)
                camera.open()
            recorder.start_episode(now)
            recorder.event(now, "note", world.describe())
            start = now
            while True:
                loop.tick(now)
                recorder.record_tick(now, now, dt, 0.0, 0)
                now += dt
                if world.done or (opts.duration is not None and now - start >= opts.duration - 1e-9):
                    break
            success = bool(world.info.get("success"))
            info = recorder.stop_episode(now, "success" if success else "failure")
            episodes.append({**info, "seed": world.seed, "success": success, "sim_seconds": round(now - start, 3)})
            now += 1.0
    finally:
        recorder.close()
        world.env.close()
    return {"session": str(directory), "episodes": episodes, "device": "mujoco", "grasp_assist": opts.grasp_assist}


def _privileged_dims() -> tuple[str, ...]:
    from sim.observation import PRIVILEGED  # noqa: PLC0415
    return PRIVILEGED.dims


__all__ = ["MujocoWorld", "ExpertInput", "ExpertMapper", "MujocoRobot", "MujocoCamera", "MujocoRecordOptions", "record"]
