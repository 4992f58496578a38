"""RTC vs naive chunking under simulated inference latency, on a trained run: success and jerk side by side.

    PYTHONPATH=. python benchmarks/eval_rtc.py --run runs/quick/s3 --tasks bimanual_lift --episodes 20 \
        [--latency-ms 160]

Both arms run the same policy on the same seeds through the same engine; the only difference is whether
each request carries the committed prefix (RTC) or not (naive: the new chunk ignores what the robot is
doing and execution jumps to it). Last line JSON: per arm success rate + Wilson interval, mean jerk of
the arm commands (rad/s^3), mean |jump| at chunk switches, late chunks.
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
    ap.add_argument("--run", required=True)
    ap.add_argument("--tasks", default="bimanual_lift")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--latency-ms", type=float, default=160.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    result = {"latency_ms": args.latency_ms, "run": args.run}
    for arm, rtc in (("rtc", True), ("naive", False)):
        out = str(Path(args.out) / arm) if args.out else None
        s = evaluate(EvalConfig(tasks=args.tasks.split(","), episodes=args.episodes, policy="run", run=args.run,
                                latency_ms=args.latency_ms, rtc=rtc, videos=1 if out else 0, out=out),
                     workers=args.workers)
        result[arm] = {"success_rate": s["success_rate"], "ci95": s["ci95"], "episodes": s["episodes"],
                       "jerk": s.get("mean_jerk"), "chunk_switch_jump": s.get("mean_chunk_switch_jump"),
                       "late": s.get("mean_late"), "wall_s": s["wall_s"]}
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
