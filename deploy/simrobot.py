"""The simulator as the robot a served policy drives: observations in the checkpoint's schema, the RTC
engine at the dataset rate on top of the simulator's 50 Hz control, and one closed-loop episode.

Rates: a policy trained on 30 fps shards emits 30 Hz actions; the simulator (like AMO) runs control at
50 Hz. The engine ticks at the dataset rate on the simulator's clock and each 50 Hz step applies the
action in effect (zero-order hold, as the teleop converter sampled the 50 Hz commands at 30 fps).

Observation modes (the checkpoint's `state_key` decides):
- `observation.state`: PSI0_STATE (measured hands + arms, previous commanded torso) + the head camera,
  what a real G1 gives: the image mode, meant for GPUs.
- `observation.state_privileged`: the same state followed by `sim.observation.PRIVILEGED` (object poses
  and the task target in the robot's base frame, which hand holds something, task progress): the
  privileged mode for CPU proofs (docs/eval.md). The camera is still sent (the model has a VLM) but a
  small tiny-model policy can solve the task from the state alone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from deploy.bundle import ObservationSchema, camera_short_name
from deploy.metrics import jerk_rms
from deploy.rtc import ChunkPolicy, InferenceRunner, RTCConfig, RTCEngine
from schemas.actions import PSI0_ACTION, PSI0_STATE
from schemas.names import STATE, STATE_PRIVILEGED

SIM_CAMERAS = {"egocentric": "head", "head": "head"}
"""Dataset camera name -> simulator camera (the teleop recorder names the head camera `egocentric`)."""
PRIVILEGED_PREFIX = "privileged."


def privileged_state_names() -> tuple[str, ...]:
    """Dimension names of `observation.state_privileged` as the teleop converter writes them."""
    from sim.observation import PRIVILEGED  # noqa: PLC0415
    return PSI0_STATE.dims + tuple(PRIVILEGED_PREFIX + d for d in PRIVILEGED.dims)


def rtc_config(schema: ObservationSchema, latency_s: float, use_prefix: bool = True,
               execute_horizon: int | None = None) -> RTCConfig:
    """The engine settings for a checkpoint: its chunk length and max_delay, replanning after half a chunk
    (the reference's minimum execution horizon: 15 of 30), the expected latency as the first delay guess."""
    return RTCConfig(control_hz=schema.fps, horizon=schema.horizon, action_dim=schema.action_dim,
                     execute_horizon=execute_horizon or max(1, schema.horizon // 2), max_delay=schema.max_delay,
                     initial_latency_s=latency_s, use_prefix=use_prefix)


class SimObservations:
    """Builds schema-conforming observation maps from a SimEnv (state by `state_key`, cameras rendered
    on demand at the schema's image size)."""

    def __init__(self, schema: ObservationSchema):
        self.schema = schema
        if schema.state_key == STATE:
            names = PSI0_STATE.dims
        elif schema.state_key == STATE_PRIVILEGED:
            names = privileged_state_names()
        else:
            raise ValueError(f"the simulator cannot build {schema.state_key!r} (it builds {STATE}, {STATE_PRIVILEGED})")
        if tuple(names) != schema.state_names:
            raise ValueError(f"checkpoint's {schema.state_key} names differ from the simulator's "
                             f"({len(schema.state_names)} vs {len(names)} dims)")
        for cam in schema.cameras:
            if camera_short_name(cam) not in SIM_CAMERAS:
                raise ValueError(f"the simulator has no camera for {cam!r} (has {sorted(SIM_CAMERAS)})")
        self.names = tuple(names)
        self.renders = 0

    def state(self, env: Any) -> np.ndarray:
        s = env.state()
        if self.schema.state_key == STATE_PRIVILEGED:
            from sim.observation import privileged_vector  # noqa: PLC0415
            s = np.concatenate([s, privileged_vector(env)])
        return np.asarray(s, np.float32)

    def __call__(self, env: Any) -> dict[str, Any]:
        # render as the demos were recorded; the server resizes to the model's input like training did
        h, w = self.schema.camera_size or self.schema.image_size or (120, 160)
        images = {}
        for cam in self.schema.cameras:
            images[cam] = env.render(SIM_CAMERAS[camera_short_name(cam)], w, h)
            self.renders += 1
        return {"state": self.state(env), "state_names": list(self.names), "images": images,
                "instruction": env.task.instruction}


@dataclass
class EpisodeLog:
    """What one closed-loop episode did (the JSONL record is `record()`)."""

    task: str
    seed: int
    policy: str
    success: bool = False
    steps: int = 0
    sim_s: float = 0.0
    wall_s: float = 0.0
    grasp_assist: bool = False
    rtc: bool | None = None
    latency_ms: float | None = None
    executed: list[np.ndarray] = field(default_factory=list)    # at the policy's rate
    rate_hz: float = 50.0
    engine: dict[str, Any] | None = None
    video: str | None = None
    curves: str | None = None
    first_success_t: float | None = None      # when the predicate first held (it must then hold SUCCESS_HOLD_S)

    def record(self) -> dict[str, Any]:
        arms = PSI0_ACTION.slice("arms")
        acts = np.asarray(self.executed) if self.executed else np.zeros((0, PSI0_ACTION.size))
        e = self.engine or {}
        return {"task": self.task, "seed": self.seed, "policy": self.policy, "success": bool(self.success),
                "steps": self.steps, "sim_s": round(self.sim_s, 3), "wall_s": round(self.wall_s, 3),
                "grasp_assist": self.grasp_assist, "rtc": self.rtc, "latency_ms": self.latency_ms,
                "chunk_switch_jump": e.get("boundary_jump_mean"),
                "jerk": jerk_rms(acts[:, arms], self.rate_hz) if len(acts) else None,
                "latency_ms_p50": e.get("latency_ms_p50"), "latency_ms_p99": e.get("latency_ms_p99"),
                "late": e.get("late"), "underruns": e.get("underruns"), "dropped": e.get("dropped"),
                "chunks": e.get("chunks"), "first_success_t": self.first_success_t, "video": self.video,
                "curves": self.curves}


FrameHook = Callable[[Any], None]
SUCCESS_HOLD_S = 0.5
"""An episode succeeds when the task's predicate has held this long without a break: a box knocked into
the air crosses a lift predicate for an instant (a random policy does it), a lifted box stays there."""


class Outcome:
    """Ends an episode: the predicate held for `hold_s` (success), the task's time limit, or `max_sim_s`."""

    def __init__(self, env: Any, hold_s: float = SUCCESS_HOLD_S, max_sim_s: float | None = None):
        self.env, self.hold_s, self.max_sim_s = env, hold_s, max_sim_s
        self.since: float | None = None
        self.success = False
        self.first_success_t: float | None = None

    def update(self, info: dict[str, Any]) -> bool:
        """After each simulator step; True when the episode is over."""
        t = self.env.t
        if info["success"]:
            self.since = t if self.since is None else self.since
            self.first_success_t = t if self.first_success_t is None else self.first_success_t
            if t - self.since >= self.hold_s - 1e-9:
                self.success = True
                return True
        else:
            self.since = None
        limit = self.env.task.time_limit if self.max_sim_s is None else min(self.env.task.time_limit, self.max_sim_s)
        return t >= limit - 1e-9


def run_chunk_episode(env: Any, task: str, seed: int, policy: ChunkPolicy, schema: ObservationSchema,
                      cfg: RTCConfig, runner: InferenceRunner, name: str = "policy",
                      on_step: FrameHook | None = None, real_time: bool = False,
                      max_sim_s: float | None = None, hold_s: float = SUCCESS_HOLD_S) -> EpisodeLog:
    """One episode: RTC engine (ticking at the schema's rate on the simulator clock) -> 50 Hz simulator.
    `real_time` paces the simulator to the wall clock (a remote server's latency is then real);
    `max_sim_s` ends the episode early (a failure unless it succeeded by then); success = the predicate held
    `hold_s` (Outcome)."""
    observe = SimObservations(schema)
    t_wall = time.monotonic()
    env.reset(task, seed)
    engine = RTCEngine(policy, cfg, runner=runner)
    log = EpisodeLog(task, seed, name, grasp_assist=env.cfg.grasp_assist, rtc=cfg.use_prefix,
                     latency_ms=cfg.initial_latency_s * 1e3, rate_hz=cfg.control_hz)
    try:
        engine.start(lambda: observe(env))
        outcome = Outcome(env, hold_s, max_sim_s)
        k, action = 0, None
        t0 = time.monotonic()
        while True:
            while k / cfg.control_hz <= env.t + 1e-9:
                action = engine.tick(lambda: observe(env))
                log.executed.append(np.asarray(action, np.float32))
                k += 1
            if real_time:
                wait = env.t - (time.monotonic() - t0)
                if wait > 0:
                    time.sleep(wait)
            _, _, info = env.step(np.asarray(action, np.float64))
            if on_step is not None:
                on_step(env)
            if outcome.update(info):
                break
    finally:
        engine.close()
    log.success, log.steps, log.sim_s = outcome.success, env.steps, env.t
    log.first_success_t = outcome.first_success_t
    log.engine = engine.stats.summary()
    log.wall_s = time.monotonic() - t_wall
    return log


def run_scripted_episode(env: Any, task: str, seed: int, kind: str, on_step: FrameHook | None = None,
                         max_sim_s: float | None = None, hold_s: float = SUCCESS_HOLD_S) -> EpisodeLog:
    """The task's scripted expert ("expert", privileged, 50 Hz) or "zero" (hold the reset pose)."""
    from sim.experts import ScriptedExpert  # noqa: PLC0415
    t_wall = time.monotonic()
    env.reset(task, seed)
    expert = ScriptedExpert(env) if kind == "expert" else None
    hold = env.last_action.copy()
    log = EpisodeLog(task, seed, kind, grasp_assist=env.cfg.grasp_assist, rate_hz=50.0)
    outcome = Outcome(env, hold_s, max_sim_s)
    while True:
        action = expert.act() if expert is not None else hold
        log.executed.append(np.asarray(action, np.float32))
        _, _, info = env.step(action)
        if on_step is not None:
            on_step(env)
        if outcome.update(info):
            break
    log.success, log.steps, log.sim_s = outcome.success, env.steps, env.t
    log.first_success_t = outcome.first_success_t
    log.wall_s = time.monotonic() - t_wall
    return log
