"""Does the 50 Hz teleop loop hold with the simulator running? Missed ticks, period jitter, tick work.

  --device sim     `teleop record --device sim` end to end (device check, calibration, countdown, one
                   episode of --seconds): the simulated operator, kinematic G1 and camera renderer run in
                   their own process (`teleop.robot_process`); the loop maps with `WholeBodyMapper`.
  --device mujoco  the MuJoCo G1 + Dex3-1 in real time in its own process (physics, scripted expert,
                   head-camera renderer); the loop sends the expert's action and records every stream.

Both record to a temporary folder with the ordinary recorder (flush every 40 ms). Figures come from the
episode's own `loop` stream: ticks, missed deadlines (`overruns`), |period - 20 ms| (jitter), tick work
(poll + map + send + state + camera + record), plus the recorder's crash window (`max_unwritten_s`: the
oldest sample not yet written when a batch went out = what a crash would lose).

Goal (issue 18): missed_frac <= 0.01 and p99_jitter_ms <= 2 over 60 s on 2 cores; crash window <= 100 ms.
Run: python benchmarks/teleop_loop.py [--device sim|mujoco] [--seconds 60]. Last line: one JSON object
(`missed_frac`, `p99_jitter_ms`, `tick_work_p50_ms`, ...).
"""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # benchmarks/tokenize.py shadows stdlib
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

RATE = 50.0


def run_sim(seconds: float, out: Path, seed: int = 0, realtime: bool = True) -> dict:
    from teleop.loop import loop_figures
    from teleop.session import RecordOptions, record
    log = io.StringIO()
    summary = record(RecordOptions(task="lunchbag", device="sim", out=str(out), episodes=1, duration=seconds,
                                   countdown_s=0.5, seed=seed, interactive=False, realtime=realtime), out=log)
    episode = Path(summary["session"]) / "episode_000000"
    return {**loop_figures(episode), "crash_window_ms": round(summary["recorder"]["max_unwritten_s"] * 1e3, 1),
            "mapper_p50_ms": round(summary["mapper_latency"].get("p50_ms", float("nan")), 3),
            "camera_dropped": summary["camera_dropped"], "realtime": summary.get("realtime", False)}


def run_mujoco(seconds: float, out: Path, seed: int = 0, realtime: bool = True) -> dict:
    from schemas.recording import SessionMeta
    from teleop.loop import ControlLoop, loop_figures, lower_thread_priority, release_realtime, request_realtime
    from teleop.recording import Recorder
    from teleop.robot_process import ExpertActionMapper, ProcessCamera, ProcessInput, ProcessRobot, SimProcess, SimSpec
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.001)                     # as `teleop record` does
    granted = realtime and request_realtime()
    with SimProcess(SimSpec(kind="mujoco", task="lunchbag", seed=seed, realtime=realtime)) as sim:
        device, robot, camera = ProcessInput(sim), ProcessRobot(sim), ProcessCamera(sim)
        camera.open()
        recorder = Recorder(out / "mujoco", SessionMeta(task="lunchbag", robot="g1_dex3", device=device.describe(),
                                                       control_rate_hz=RATE))
        if granted:                                  # as `teleop record` does: below the control thread
            lower_thread_priority(recorder._thread, 8)
            lower_thread_priority(recorder._syncer, 7)
        loop = ControlLoop(device, ExpertActionMapper(device), robot, [camera], recorder, RATE)
        loop.run(lambda: False, max_seconds=0.5)     # settle before recording, like record's countdown
        recorder.start_episode(time.monotonic())
        loop.run(lambda: False, max_seconds=seconds)
        recorder.stop_episode(time.monotonic())
        recorder.close()
        stats = recorder.stats()
    sys.setswitchinterval(previous)
    if granted:
        release_realtime()
    return {**loop_figures(out / "mujoco" / "episode_000000"), "crash_window_ms": round(stats["max_unwritten_s"] * 1e3, 1),
            "camera_dropped": {camera.name: camera.dropped}, "realtime": granted}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["sim", "mujoco"], default="sim")
    ap.add_argument("--seconds", type=float, default=60.0, help="recorded seconds (default 60)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-realtime", dest="realtime", action="store_false",
                    help="ordinary scheduling (default: SCHED_FIFO for the loop and the sim where permitted)")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="psi0-teleop-loop-") as tmp:
        fig = (run_sim if args.device == "sim" else run_mujoco)(args.seconds, Path(tmp), args.seed, args.realtime)
    result = {"benchmark": "teleop_loop", "device": args.device, "rate_hz": RATE, "cpus": os.cpu_count(),
              "load_avg_1m_before": round(load, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2), **fig,
              "goal": {"missed_frac": 0.01, "p99_jitter_ms": 2.0, "crash_window_ms": 100.0}}
    result["holds"] = bool(fig["missed_frac"] <= 0.01 and fig["p99_jitter_ms"] <= 2.0 and fig["crash_window_ms"] <= 100)
    print(f"{args.device}: {fig['ticks']} ticks, missed {fig['missed']} ({100 * fig['missed_frac']:.2f} %), jitter p50/p99 "
          f"{fig['p50_jitter_ms']:.3f}/{fig['p99_jitter_ms']:.3f} ms, tick work p50/p99 {fig['tick_work_p50_ms']:.2f}/"
          f"{fig['tick_work_p99_ms']:.2f} ms, crash window {fig['crash_window_ms']} ms, load {load:.1f}, "
          f"realtime {fig['realtime']}", file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
