"""Scripted-expert sweep: every template (or --tasks) over N seeds; the bar is >= 80 % success each.

    PYTHONPATH=. python benchmarks/sim_experts.py [--tasks all] [--episodes 20] [--no-grasp-assist]

Per-episode lines go to stderr (seeds outer, templates inner, so a partial run covers every template); the last stdout line is one JSON object: per-task success rates, the
minimum, wall time per episode, and whether the grasp assist was on.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# run as a script, benchmarks/ would be sys.path[0] and its tokenize.py would shadow the stdlib module
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def main(argv: list[str] | None = None) -> int:
    import sim  # noqa: F401,PLC0415 - headless GL before mujoco
    from sim.env import EnvConfig, SimEnv  # noqa: PLC0415
    from sim.experts import run_episode  # noqa: PLC0415
    from sim.tasks import TEMPLATES  # noqa: PLC0415
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grasp-assist", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args(argv)
    tasks = list(TEMPLATES) if args.tasks == "all" else args.tasks.split(",")
    env = SimEnv(EnvConfig(camera=False, grasp_assist=args.grasp_assist))
    ok = {t: 0 for t in tasks}
    failed: dict[str, list[int]] = {t: [] for t in tasks}
    wall = {t: 0.0 for t in tasks}
    start = time.monotonic()
    # seeds outer, templates inner: a sweep stopped early (or read while it runs) covers every template
    for seed in range(args.seed, args.seed + args.episodes):
        for task in tasks:
            t0 = time.monotonic()
            r = run_episode(env, task, seed, "expert")
            wall[task] += time.monotonic() - t0
            ok[task] += r["success"]
            if not r["success"]:
                failed[task].append(seed)
            print(json.dumps(r, sort_keys=True), file=sys.stderr, flush=True)
    out = {t: {"success_rate": ok[t] / args.episodes, "failed_seeds": failed[t],
               "wall_s_per_episode": round(wall[t] / args.episodes, 2)} for t in tasks}
    env.close()
    rates = [v["success_rate"] for v in out.values()]
    print(json.dumps({"tasks": out, "episodes_per_task": args.episodes, "min_success_rate": min(rates),
                      "all_at_least_80pct": all(r >= 0.8 for r in rates), "grasp_assist": args.grasp_assist,
                      "wall_s": round(time.monotonic() - start, 1)}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
