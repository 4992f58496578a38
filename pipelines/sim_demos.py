"""Expert demos from the MuJoCo benchmark, written as teleop recordings (one session per episode), so
`pipelines/teleop_ingest.py --input OUT` turns them into shards.

    python pipelines/sim_demos.py --tasks pick_place_right,lunchbag --episodes 20 --runner ray --out /data/sim_demos

Episode k of a task uses seed `--seed + k` and lands in OUT/<task>/seed_<seed:05d>/ whichever runner
made it, so re-running skips finished sessions (resume) and local and Ray runs write the same files.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def demo(task: str, seed: int, out: str, grasp_assist: bool = True, camera_size: tuple[int, int] = (160, 120)) -> dict:
    """Record one expert episode; skip it when its session already finished (episode.json present)."""
    from teleop.devices.mujoco_sim import MujocoRecordOptions, record  # noqa: PLC0415
    name = f"{task}/seed_{seed:05d}"
    done = Path(out) / name / "episode_000000" / "episode.json"
    if done.is_file():
        info = json.loads(done.read_text())
        return {"task": task, "seed": seed, "session": str(Path(out) / name), "skipped": True,
                "success": info.get("outcome") == "success"}
    partial = Path(out) / name
    if partial.exists():                       # a run killed mid-episode: redo it from scratch
        import shutil  # noqa: PLC0415
        shutil.rmtree(partial)
    t0 = time.monotonic()
    summary = record(MujocoRecordOptions(task=task, out=out, episodes=1, seed=seed, session_name=name,
                                         grasp_assist=grasp_assist, camera_size=camera_size))
    ep = summary["episodes"][0]
    return {"task": task, "seed": seed, "session": summary["session"], "skipped": False, "success": ep["success"],
            "sim_seconds": ep["sim_seconds"], "wall_s": round(time.monotonic() - t0, 2)}


def run(tasks: list[str], episodes: int, out: str, runner: str = "local", seed: int = 0, workers: int | None = None,
        grasp_assist: bool = True, address: str | None = None) -> list[dict]:
    jobs = [(t, seed + k) for t in tasks for k in range(episodes)]
    out = str(Path(out).resolve())          # Ray workers do not run in the driver's directory
    if runner == "local":
        return [demo(t, s, out, grasp_assist) for t, s in jobs]
    import ray  # noqa: PLC0415
    started_here = not ray.is_initialized()
    _ray_init(address, workers)
    try:
        remote = ray.remote(num_cpus=1, max_retries=2)(demo)
        return ray.get([remote.remote(t, s, out, grasp_assist) for t, s in jobs])
    finally:
        if started_here:
            ray.shutdown()


def _ray_init(address: str | None, workers: int | None) -> None:
    """As `pipelines/runners.py` does: inside `ray job submit` (RAY_ADDRESS set: the working dir is already
    shipped), an explicit --address (ship this checkout as the job's working dir), or a fresh local
    instance (never another user's cluster that happens to run on this machine). Workers get the headless
    GL settings `sim` picks (`MUJOCO_GL`, `LP_NUM_THREADS`) before they import mujoco."""
    import os  # noqa: PLC0415

    import ray  # noqa: PLC0415
    if ray.is_initialized():
        return
    import sim  # noqa: F401,PLC0415 - sets MUJOCO_GL / LP_NUM_THREADS defaults in this process
    gl = {k: os.environ[k] for k in ("MUJOCO_GL", "LP_NUM_THREADS") if k in os.environ}
    root = Path(__file__).resolve().parent.parent
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env={
            "working_dir": str(root), "excludes": [".venv", "out", ".git", "sample", "runs", "recordings"],
            "env_vars": gl})
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False, runtime_env={"env_vars": gl})
    else:
        pythonpath = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath, **gl}})


def main(argv: list[str] | None = None) -> int:
    from sim.tasks import TEMPLATES  # noqa: PLC0415
    ap = argparse.ArgumentParser(prog="pipelines/sim_demos.py", description=__doc__.split("\n")[0],
                                 epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", required=True, help=f"comma-separated templates: {', '.join(TEMPLATES)} (or all)")
    ap.add_argument("--episodes", type=int, required=True, help="episodes per task")
    ap.add_argument("--out", required=True, help="recordings root (input of pipelines/teleop_ingest.py)")
    ap.add_argument("--runner", choices=("local", "ray"), default="local")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--workers", type=int, help="Ray: CPUs to use (default: all)")
    ap.add_argument("--address", help="Ray cluster address (default: a local cluster)")
    ap.add_argument("--grasp-assist", action=argparse.BooleanOptionalAction, default=True,
                    help="weld a closed hand to what it touches with two parts (docs/sim.md)")
    args = ap.parse_args(argv)
    tasks = list(TEMPLATES) if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TEMPLATES]
    if unknown:
        ap.error(f"unknown task(s) {unknown}; choose from {sorted(TEMPLATES)}")
    results = run(tasks, args.episodes, args.out, args.runner, args.seed, args.workers, args.grasp_assist, args.address)
    for r in results:
        print(json.dumps(r, sort_keys=True), file=sys.stderr)
    per_task = {t: sum(r["success"] for r in results if r["task"] == t) / max(1, args.episodes) for t in tasks}
    print(json.dumps({"episodes": len(results), "success_rate": sum(r["success"] for r in results) / max(1, len(results)),
                      "per_task": per_task, "out": args.out, "runner": args.runner, "grasp_assist": args.grasp_assist},
                     sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
