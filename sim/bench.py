"""Speed of the closed loop: physics (500 Hz) + control (50 Hz, the scripted expert's IK included) + one
224x224 head camera at 30 Hz, timed against simulated time (realtime factor = sim s / wall s)."""
from __future__ import annotations

import os
import time

import mujoco
import numpy as np


def bench(task: str = "pick_place_right", seconds: float = 10.0, seed: int = 0) -> dict:
    from sim.env import EnvConfig, SimEnv  # noqa: PLC0415
    from sim.experts import ScriptedExpert  # noqa: PLC0415
    env = SimEnv(EnvConfig(camera=True, width=224, height=224, camera_hz=30.0, grasp_assist=True))
    env.reset(task, seed)
    expert = ScriptedExpert(env)
    steps = int(round(seconds * 50))
    frames = 0
    start = time.perf_counter()
    last = None
    for _ in range(steps):
        obs, done, _ = env.step(expert.act())
        if obs["images"]["head"] is not last:
            frames += 1
            last = obs["images"]["head"]
    wall = time.perf_counter() - start
    # the same seconds of physics alone (no control, no camera)
    n_phys = int(round(seconds / env.model.opt.timestep))
    t0 = time.perf_counter()
    for _ in range(n_phys):
        mujoco.mj_step(env.model, env.data)
    physics = time.perf_counter() - t0
    # one camera frame
    t0 = time.perf_counter()
    for _ in range(20):
        env.render("head", 224, 224)
    render_ms = (time.perf_counter() - t0) / 20 * 1e3
    env.close()
    return {"task": task, "sim_seconds": seconds, "wall_seconds": round(wall, 3),
            "realtime_factor": round(seconds / wall, 3), "physics_only_realtime_factor": round(seconds / physics, 2),
            "camera_frames": frames, "render_224_ms": round(render_ms, 2), "physics_hz": 500, "control_hz": 50,
            "camera_hz": 30, "cpus": os.cpu_count(), "mujoco_gl": os.environ.get("MUJOCO_GL", ""),
            "load_avg_1min": round(os.getloadavg()[0], 2), "grasp_assist": True,
            "note": "control includes the scripted expert's IK; load_avg shows how busy the machine was"}
