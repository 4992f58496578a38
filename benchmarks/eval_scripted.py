"""`psi0 eval` with the scripted expert and the zero policy: the benchmark's ceiling and floor per template.

    PYTHONPATH=. python benchmarks/eval_scripted.py [--tasks bimanual_lift,pick_place_right] [--episodes 20]

Runs `psi0 eval --policy expert` and `--policy zero` (unseen seeds from 1000, grasp assist on, success =
predicate held 0.5 s) and prints one JSON line: per policy and task the success rate with its Wilson
95 % interval, and wall time. The bar (issue 16): expert >= 80 %, zero <= 10 % on a template.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def main(argv: list[str] | None = None) -> int:
    from deploy.eval import EvalConfig, evaluate  # noqa: PLC0415
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="bimanual_lift,pick_place_right")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="keep the eval outputs here (dashboard: --evals OUT)")
    args = ap.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    result = {}
    for policy in ("expert", "zero"):
        out = str(Path(args.out) / policy) if args.out else None
        s = evaluate(EvalConfig(tasks=tasks, episodes=args.episodes, policy=policy, videos=1 if out else 0, out=out),
                     workers=args.workers)
        result[policy] = {t: {"success_rate": v["success_rate"], "ci95": v["ci95"], "episodes": v["episodes"]}
                          for t, v in s["tasks"].items()}
        result[policy]["wall_s"] = s["wall_s"]
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
