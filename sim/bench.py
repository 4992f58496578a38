"""Speed of the closed loop: physics (500 Hz) + control (50 Hz, the scripted expert's IK included) + one
224x224 head camera at 30 Hz, timed against simulated time (realtime factor = sim s / wall s).

Besides the wall-clock factor it reports, per part, the wall and the CPU milliseconds spent per
simulated second (`sim.timing`): on a shared machine the wall figures grow with the load, the CPU
figures stay near what an idle machine measures, and `cpu_realtime_factor` (sim s / process CPU s)
is the idle-equivalent factor of one episode on one core (plus the renderer's threads).
"""
from __future__ import annotations

import os
import time

import mujoco

from sim.timing import PartTimes


def bench(task: str = "pick_place_right", seconds: float = 10.0, seed: int = 0) -> dict:
    from sim.env import CONTROL_HZ, PHYSICS_HZ, EnvConfig, SimEnv  # noqa: PLC0415
    from sim.experts import ScriptedExpert  # noqa: PLC0415
    camera_hz = 30.0
    env = SimEnv(EnvConfig(camera=True, width=224, height=224, camera_hz=camera_hz, grasp_assist=True))
    obs = env.reset(task, seed)
    expert = ScriptedExpert(env)
    policy = PartTimes()
    steps = int(round(seconds * CONTROL_HZ))
    frames = 0                          # new frames rendered during the steps (the reset's frame is not one)
    last = obs["images"]["head"]
    load_before = os.getloadavg()[0]
    start = PartTimes.start()
    for _ in range(steps):
        t0 = policy.start()
        action = expert.act()
        policy.stop("policy", t0)
        obs, done, _ = env.step(action)
        if obs["images"]["head"] is not last:
            frames += 1
            last = obs["images"]["head"]
    wall = time.perf_counter() - start[0]
    cpu = time.process_time() - start[1]
    sim_s = env.t
    parts = env.timing.per_sim_second(sim_s)
    parts.update(policy.per_sim_second(sim_s))
    # the same seconds of physics alone (no control, no camera), from where the episode ended
    n_phys = int(round(seconds * PHYSICS_HZ))
    t0 = PartTimes.start()
    for _ in range(n_phys):
        mujoco.mj_step(env.model, env.data)
    physics_wall, physics_cpu = time.perf_counter() - t0[0], time.process_time() - t0[1]
    # one camera frame
    n_frames = 20
    t0 = PartTimes.start()
    for _ in range(n_frames):
        env.render("head", 224, 224)
    render_wall, render_cpu = time.perf_counter() - t0[0], time.process_time() - t0[1]
    env.close()
    return {"task": task, "sim_seconds": round(sim_s, 3), "wall_seconds": round(wall, 3),
            "realtime_factor": round(sim_s / wall, 3), "cpu_realtime_factor": round(sim_s / max(cpu, 1e-9), 3),
            "parts_ms_per_sim_s": parts,
            "physics_only_realtime_factor": round(seconds / physics_wall, 2),
            "physics_only_cpu_realtime_factor": round(seconds / max(physics_cpu, 1e-9), 2),
            "camera_frames": frames, "render_224_ms": round(render_wall / n_frames * 1e3, 2),
            "render_224_cpu_ms": round(render_cpu / n_frames * 1e3, 2), "physics_hz": PHYSICS_HZ,
            "control_hz": CONTROL_HZ, "camera_hz": camera_hz, "cpus": os.cpu_count(),
            "mujoco_gl": os.environ.get("MUJOCO_GL", ""), "lp_num_threads": os.environ.get("LP_NUM_THREADS", ""),
            "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], "grasp_assist": True,
            "note": "control includes the scripted expert's IK (policy); cpu_* figures are process CPU time "
                    "(idle-equivalent), wall figures grow with the machine's load (load_avg before, after)"}
