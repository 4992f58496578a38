"""The gym-like environment: `reset(task, seed) -> obs`; `step(action) -> (obs, done, info)`.

Actions are PSI0_ACTION rows (hands 14 | arms 14 | 8-DoF lower-body command), clamped to the space's
bounds: hands and arms become PD position targets, the lower-body command goes to the system-0
controller (`sim.tracker`). Control at 50 Hz, physics at 500 Hz (10 substeps). Observations carry
the head camera image (rendered at `camera_hz`, the latest frame otherwise), PSI0_STATE, the
instruction, and the privileged vector (`sim.observation.PRIVILEGED`). `info` has `success`, the
executed lower-body command, which hand holds what, and whether the grasp assist is on.
"""
from __future__ import annotations

import atexit
import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT, PSI0_ACTION, PSI0_STATE
from schemas.embodiments import G1_BODY
from sim.grasp import GraspAssist, add_welds, closure_of, hand_posture
from sim.observation import privileged_vector
from sim.robot import SIDES, RobotConfig, RobotIndex, build_robot
from sim.scene import add_room, layout
from sim.tasks import TEMPLATES, TaskInstance, layout_for
from sim.timing import PartTimes
from sim.tracker import LEG_WAIST, LowerBodyController, LowerBodyObservation, StandInTracker

CONTROL_HZ = 50.0
PHYSICS_HZ = 500.0
READY_ARM = {"left": np.array([0.0, 0.3, 0.0, -0.4, 0.0, 0.0, 0.0]),
             "right": np.array([0.0, -0.3, 0.0, -0.4, 0.0, 0.0, 0.0])}
"""Arm joints at reset: upper arms hanging a little out, forearms raised forward, hands in
front at about 1 m, above anything on a table."""
_LOWER = PSI0_ACTION.slice("lower_body")
LOWER_IDX = {n: i for i, n in enumerate(LOWER_BODY_COMMAND.dims)}
PSI0_BODY_ARMS = G1_BODY.slice("arms")
"""The 14 arm joints inside G1_BODY: the same order as PSI0_ACTION's arms."""


@dataclass
class EnvConfig:
    camera: bool = True                 # render the head camera into observations
    width: int = 224
    height: int = 224
    camera_hz: float = 30.0
    grasp_assist: bool = False
    robot: RobotConfig = field(default_factory=RobotConfig)
    settle_s: float = 0.3               # physics before the first observation (objects come to rest)


def neutral_action() -> np.ndarray:
    """Ready arms, open hands, standing still at nominal height facing the start heading."""
    a = np.zeros(PSI0_ACTION.size)
    for side in SIDES:
        a[PSI0_ACTION.slice(f"{side}_hand")] = hand_posture(side, 0.0)
        a[PSI0_ACTION.slice(f"{side}_arm")] = READY_ARM[side]
    a[_LOWER.start + LOWER_IDX["torso_height"]] = NOMINAL_TORSO_HEIGHT
    return a


_LIVE_RENDERERS: "weakref.WeakSet[mujoco.Renderer]" = weakref.WeakSet()
_exit_hook_registered = False


def _close_live_renderers() -> None:
    """Close every renderer still open at interpreter exit.

    Why: MuJoCo's EGL backend registers `eglTerminate` with atexit when it makes its first context; a renderer
    still alive after that (an env never closed, a script that just ends) was freed during shutdown against a
    terminated display and printed two EGLError tracebacks. This hook is registered after MuJoCo's (see
    `_track`), so it runs before it, while the display is still up."""
    for renderer in list(_LIVE_RENDERERS):
        with contextlib.suppress(Exception):
            renderer.close()


def _track(renderer: mujoco.Renderer) -> mujoco.Renderer:
    global _exit_hook_registered
    _LIVE_RENDERERS.add(renderer)
    if not _exit_hook_registered:        # after the first Renderer: MuJoCo's own atexit hook exists by now
        atexit.register(_close_live_renderers)
        _exit_hook_registered = True
    return renderer


class SimEnv:
    """One MuJoCo world per episode; see the module doc."""

    def __init__(self, config: EnvConfig | None = None, tracker: LowerBodyController | None = None):
        self.cfg = config or EnvConfig()
        self.tracker = tracker or StandInTracker()
        if self.tracker.base_mode != self.cfg.robot.base:
            self.cfg.robot = RobotConfig(base=self.tracker.base_mode, meshes=self.cfg.robot.meshes)
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.timing = PartTimes()
        """Seconds spent per part since the last reset (physics, control, observe, render): `sim.timing`."""

    # ------------------------------------------------------------------ episode
    def reset(self, task: str, seed: int) -> dict[str, Any]:
        if task not in TEMPLATES:
            raise KeyError(f"unknown task {task!r}; choose from {sorted(TEMPLATES)}")
        self.close_renderers()
        template = TEMPLATES[task]
        rng = np.random.default_rng([seed, sum(task.encode())])
        spec = build_robot(self.cfg.robot)
        lay = layout(layout_for(task, seed))
        add_room(spec, lay)
        spec.visual.global_.offwidth = max(640, self.cfg.width)
        spec.visual.global_.offheight = max(480, self.cfg.height)
        self.task: TaskInstance = template.build(spec, rng, seed, lay.index)
        add_welds(spec, [o["name"] for o in self.task.objects])
        spec.worldbody.add_camera(name="overview", mode=mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY, targetbody="pelvis",
                                  pos=[-1.1, -1.5, 1.9])
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.idx = RobotIndex.of(self.model)
        self.dt = 1.0 / CONTROL_HZ
        self.substeps = int(round(PHYSICS_HZ / CONTROL_HZ))
        self.model.opt.timestep = self.dt / self.substeps
        self.assist = GraspAssist(self.model, [o["name"] for o in self.task.objects], self.idx.finger_geoms,
                                  self.cfg.grasp_assist)
        self.assist.reset(self.data)
        x, y, yaw = self.task.start
        d = self.data
        if self.idx.servo_base:
            d.qpos[self.idx.base_qpos] = [x, y, NOMINAL_TORSO_HEIGHT + 0.03, yaw, 0.0]
        a = neutral_action()
        a[_LOWER.start + LOWER_IDX["target_yaw"]] = yaw
        d.qpos[self.idx.body_qpos[PSI0_BODY_ARMS]] = a[PSI0_ACTION.slice("arms")]
        d.qpos[self.idx.hand_qpos] = a[PSI0_ACTION.slice("hands")]
        mujoco.mj_forward(self.model, d)
        self.tracker.reset(self._lower_obs())
        self.t = 0.0
        self.steps = 0
        self.prev_command = a[_LOWER].copy()
        self.prev_command[LOWER_IDX["target_yaw"]] = yaw
        self.executed = np.zeros(LOWER_BODY_COMMAND.size)
        self.success = False
        self._frame: np.ndarray | None = None
        self._next_frame_t = 0.0
        self.task_state: dict[str, Any] = {}
        template.on_reset(self)
        settle = int(round(self.cfg.settle_s * CONTROL_HZ))
        for _ in range(settle):
            self._apply(a)
        self.t, self.steps = 0.0, 0
        self.last_action = a.copy()
        self.timing.reset()
        return self.observe()

    def _apply(self, action: np.ndarray) -> None:
        t0 = self.timing.start()
        a = PSI0_ACTION.clip(np.asarray(action, np.float64))
        d, idx = self.data, self.idx
        d.ctrl[idx.hand_ctrl] = a[PSI0_ACTION.slice("hands")]
        d.ctrl[idx.body_ctrl[PSI0_BODY_ARMS]] = a[PSI0_ACTION.slice("arms")]
        targets = self.tracker.step(a[_LOWER], self._lower_obs())
        d.ctrl[idx.body_ctrl[LEG_WAIST]] = targets.leg_waist_q
        if targets.base_q is not None:
            d.ctrl[idx.base_ctrl] = targets.base_q
        self.executed = targets.executed
        self.timing.stop("control", t0)
        t0 = self.timing.start()
        mujoco.mj_step(self.model, d, nstep=self.substeps)
        self.timing.stop("physics", t0)
        t0 = self.timing.start()
        closure = {s: closure_of(s, a[PSI0_ACTION.slice(f"{s}_hand")]) for s in SIDES}
        self.assist.update(d, closure)
        self.t += self.dt
        self.steps += 1
        self.timing.stop("control", t0)

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], bool, dict[str, Any]]:
        action = np.asarray(action, np.float64)
        if action.shape != (PSI0_ACTION.size,):
            raise ValueError(f"action must be ({PSI0_ACTION.size},) PSI0_ACTION, got {action.shape}")
        if not np.isfinite(action).all():
            action = self.last_action          # a non-finite action holds the last one
        self.prev_command = self.last_action[_LOWER].copy()
        self._apply(action)
        t0 = self.timing.start()
        self.last_action = action.copy()
        template = TEMPLATES[self.task.template]
        template.on_step(self)
        self.success = bool(template.success(self))
        self.timing.stop("control", t0)
        timeout = self.t >= self.task.time_limit - 1e-9
        obs = self.observe()
        info = {"success": self.success, "timeout": timeout and not self.success, "t": self.t, "steps": self.steps,
                "executed_command": self.executed.copy(), "held": dict(self.assist.held),
                "grasp_assist": self.cfg.grasp_assist, "task": self.task.template, "seed": self.task.seed}
        return obs, bool(self.success or timeout), info

    # ------------------------------------------------------------------ observation
    def _lower_obs(self) -> LowerBodyObservation:
        d, idx = self.data, self.idx
        rpy = self.base_rpy()
        return LowerBodyObservation(t=getattr(self, "t", 0.0), dt=1.0 / CONTROL_HZ, body_q=d.qpos[idx.body_qpos].copy(),
                                    body_dq=d.qvel[idx.body_qvel].copy(), base_pos=d.xpos[idx.pelvis].copy(),
                                    base_rpy=rpy, base_ang_vel=d.cvel[idx.pelvis][:3].copy(),
                                    base_lin_vel=d.cvel[idx.pelvis][3:].copy())

    def base_rpy(self) -> np.ndarray:
        r = self.data.xmat[self.idx.pelvis].reshape(3, 3)
        return np.array([np.arctan2(r[2, 1], r[2, 2]), -np.arcsin(np.clip(r[2, 0], -1, 1)), np.arctan2(r[1, 0], r[0, 0])])

    def base_pose(self) -> np.ndarray:
        """(x, y, yaw) of the pelvis in the world."""
        p = self.data.xpos[self.idx.pelvis]
        return np.array([p[0], p[1], self.base_rpy()[2]])

    def state(self) -> np.ndarray:
        """PSI0_STATE: measured hands + arms, previous commanded torso rpy/height, zero padding."""
        s = np.zeros(PSI0_STATE.size, np.float32)
        d, idx = self.data, self.idx
        s[PSI0_STATE.slice("hands")] = d.qpos[idx.hand_qpos]
        s[PSI0_STATE.slice("arms")] = d.qpos[idx.body_qpos[PSI0_BODY_ARMS]]
        torso = PSI0_STATE.slice("torso")
        s[torso] = self.prev_command[0:4]
        return s

    def observe(self) -> dict[str, Any]:
        t0 = self.timing.start()
        obs: dict[str, Any] = {"t": self.t, "state": self.state(), "instruction": self.task.instruction,
                               "privileged": privileged_vector(self), "images": {}}
        self.timing.stop("observe", t0)
        if self.cfg.camera:
            if self._frame is None or self.t + 1e-9 >= self._next_frame_t:
                t0 = self.timing.start()
                self._frame = self.render("head", self.cfg.width, self.cfg.height)
                self.timing.stop("render", t0)
                self._next_frame_t += 1.0 / self.cfg.camera_hz
                while self._next_frame_t <= self.t:
                    self._next_frame_t += 1.0 / self.cfg.camera_hz
            obs["images"]["head"] = self._frame
        return obs

    # ------------------------------------------------------------------ rendering
    def render(self, camera: str = "head", width: int | None = None, height: int | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB from a named camera ("head" on the robot, "overview" following it)."""
        w, h = width or self.cfg.width, height or self.cfg.height
        r = self._renderers.get((w, h))
        if r is None:
            r = self._renderers[(w, h)] = _track(mujoco.Renderer(self.model, height=h, width=w))
        r.update_scene(self.data, camera=camera)
        return r.render()               # a new array every call: frames handed out earlier never change

    def close_renderers(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers = {}

    def close(self) -> None:
        self.close_renderers()

