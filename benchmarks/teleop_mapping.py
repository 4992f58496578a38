"""Per-tick latency of the whole-body teleop mapping (OperatorInput -> RobotCommand), 50 Hz sim operator.

  (a) psi0: WholeBodyMapper as shipped (numpy single-frame DLS IK + Levenberg-Marquardt hand retargeting,
      the `teleop.fastkin` fast paths)
  (b) baseline: the same mapper with the project's batched torch solvers called once per tick
      (`converters.retarget.arm_ik.solve_ik` warm-started, `converters.retarget.hands.retarget_hand` warm-started)

Wall-clock latency depends on what else runs on the machine; CPU time per tick (process time, all threads)
is reported beside it. Both map the same simulated lunch-bag session (walk, turn, squat, reach, grasp, lift) after calibrating on
its first seconds. Reports p50 / p99 / max step latency, the tracking quality (robot wrist vs the
operator's scripted wrist, p95) and the speed ratio.

The machine's load average (start, end) is recorded next to the figures: on a shared box the same code
measures 1.5-2x slower under load, so a figure means little without it.

Run: python benchmarks/teleop_mapping.py [--seconds 20] [--robot g1-dex3|h1-inspire] [--no-baseline] [--paced].
Last line: one JSON object.
"""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # benchmarks/tokenize.py shadows stdlib
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

RATE = 50.0


def paced(mapper, inputs) -> list:
    """One step per 1/RATE s, the rest of the period slept, as the control loop runs it. Why: on this VM the
    same step costs ~1.8x the CPU when it runs once every 20 ms than back to back (measured with the loop's own
    inputs, alone on the box, sleeping or spinning between steps alike), so back-to-back figures understate
    what a tick costs in the loop."""
    import time
    cmds, next_t = [], time.perf_counter()
    for x in inputs:
        cmds.append(mapper.step(x))
        next_t += 1.0 / RATE
        time.sleep(max(0.0, next_t - time.perf_counter()))
    return cmds


def run(mapper, inputs, op, pace: bool = False) -> dict:
    from converters.retarget.arm_ik import arm_fk
    from schemas.actions import PSI0_ACTION
    import time
    cpu0 = time.process_time()
    cmds = paced(mapper, inputs) if pace else [mapper.step(x) for x in inputs]
    cpu_ms = (time.process_time() - cpu0) / len(inputs) * 1e3
    stats = mapper.latency_stats()
    acts = np.array([c.action for c in cmds], np.float64)
    ok = np.array(["hold" not in c.flags for c in cmds])
    errs = []
    for side in ("left", "right"):
        script_q = np.array([op.script.sample(x.t)[f"{side}_arm"] for x in inputs])
        want = arm_fk(side, script_q[ok])[:, :3, 3]
        got = arm_fk(side, acts[ok][:, PSI0_ACTION.slice(f"{side}_arm")])[:, :3, 3]
        errs.extend(np.linalg.norm(want - got, axis=1))
    tips = [mapper.info.get(f"{s}_hand.tip_error", float("nan")) for s in ("left", "right")]
    return {"cpu_ms_per_tick": round(cpu_ms, 3), "p50_ms": round(stats["p50_ms"], 3), "p99_ms": round(stats["p99_ms"], 3), "max_ms": round(stats["max_ms"], 3),
            "wrist_error_p95_mm": round(float(np.percentile(errs, 95)) * 1e3, 2),
            "hand_tip_error_last_mm": round(float(np.nanmean(tips)) * 1e3, 2), "ticks": stats["n"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--robot", default="g1-dex3", choices=["g1-dex3", "h1-inspire"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--paced", action="store_true",
                    help="also time the shipped mapper at the loop's cadence (one step per 20 ms, sleeping between; "
                         "takes --seconds of wall time): what a tick costs inside `teleop record`")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip (b), the torch solvers per tick (~1.5 min of CPU for 20 s): time the shipped mapper only")
    args = ap.parse_args()
    load_start = os.getloadavg()[0]

    import torch
    from teleop.calibration import calibrate
    from teleop.devices.sim import SimOperator
    from teleop.mapping import MapperConfig, WholeBodyMapper

    op = SimOperator(seed=args.seed)
    inputs = [op.poll(i / RATE) for i in range(int(args.seconds * RATE))]
    cal = calibrate(inputs[10:int(op.calibration_duration() * RATE)])
    base_cfg = MapperConfig()
    torch_cfg = replace(base_cfg, upper=replace(base_cfg.upper, backend="torch"),
                        hands=replace(base_cfg.hands, backend="torch"))
    results = {}
    configs = [("psi0_numpy", base_cfg, False)] + ([("psi0_numpy_paced", base_cfg, True)] if args.paced else []) \
        + ([] if args.no_baseline else [("baseline_torch", torch_cfg, False)])
    for name, cfg, pace in configs:
        results[name] = run(WholeBodyMapper(args.robot, cal, cfg), inputs, op, pace)
        print(f"{name:15s} p50 {results[name]['p50_ms']:7.2f} ms  p99 {results[name]['p99_ms']:7.2f} ms  "
              f"cpu {results[name]['cpu_ms_per_tick']:7.2f} ms/tick  wrist p95 {results[name]['wrist_error_p95_mm']:.1f} mm",
              flush=True)
    ratio = results["baseline_torch"]["p50_ms"] / results["psi0_numpy"]["p50_ms"] if not args.no_baseline else None
    if ratio is not None:
        print(f"speedup (p50): {ratio:.1f}x")
    load = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print(f"load average (1 min) at start / end: {load[0]} / {load[1]} on {os.cpu_count()} CPUs")
    print(json.dumps({"benchmark": "teleop_mapping", "robot": args.robot, "rate_hz": RATE, "seconds": args.seconds,
                      "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), **results,
                      "speedup_p50": None if ratio is None else round(ratio, 2), "load_average": load},
                     sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
