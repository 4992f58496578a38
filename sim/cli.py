"""`psi0 sim` — the MuJoCo G1 + Dex3-1 benchmark from the command line.

    psi0 sim list-tasks [--json]
    psi0 sim render --task lunchbag --seed 0 --out lunchbag.mp4 [--png still.png] [--policy expert|zero]
    psi0 sim expert --task pick_place_right --episodes 20 [--seed 0] [--no-grasp-assist]
    psi0 sim bench [--seconds 10] [--task pick_place_right]

`expert` and `bench` print one JSON object as their last line (`success_rate`, `realtime_factor`).
The grasp assist (a weld once the closed hand touches the object with two parts; docs/sim.md) is ON
for `expert` and `render` unless --no-grasp-assist; every JSON line says which.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

EPILOG = """examples:
  psi0 sim list-tasks
  psi0 sim render --task turn_place --seed 3 --out /tmp/turn.mp4 --png /tmp/turn.png
  psi0 sim expert --task lunchbag --episodes 20           # last line: {"success_rate": ...}
  psi0 sim bench                                          # last line: {"realtime_factor": ...}
"""


def cmd_list(args: argparse.Namespace) -> int:
    from sim.scene import N_LAYOUTS  # noqa: PLC0415
    from sim.tasks import TEMPLATES  # noqa: PLC0415
    rows = [{"task": name, "time_limit_s": t.time_limit, "layouts": N_LAYOUTS, "summary": t.summary}
            for name, t in TEMPLATES.items()]
    summary = {"templates": len(rows), "layouts": N_LAYOUTS, "instances": len(rows) * N_LAYOUTS,
               "note": "each (template, layout) is randomized further by the seed"}
    if args.json:
        print(json.dumps({"tasks": rows, **summary}, sort_keys=True))
        return 0
    for r in rows:
        print(f"{r['task']:<18} {r['time_limit_s']:>4.0f} s  {r['summary']}")
    print(f"{summary['templates']} templates x {N_LAYOUTS} scene layouts = {summary['instances']} task instances "
          f"(seeds randomize objects, furniture and start pose further)")
    return 0


def _env(args: argparse.Namespace, camera: bool):
    from sim.env import EnvConfig, SimEnv  # noqa: PLC0415
    from sim.robot import RobotConfig  # noqa: PLC0415
    return SimEnv(EnvConfig(camera=camera, grasp_assist=args.grasp_assist,
                            robot=RobotConfig(meshes=getattr(args, "meshes", False))))


def cmd_render(args: argparse.Namespace) -> int:
    import numpy as np  # noqa: PLC0415

    from sim.experts import run_episode  # noqa: PLC0415
    from sim.media import write_mp4, write_png  # noqa: PLC0415
    env = _env(args, camera=False)
    frames: list = []
    every = max(1, int(round(50 / args.fps)))
    size = (args.width, args.height)

    def grab(e, obs, action, info) -> None:
        if e.steps % every == 0:
            views = [e.render(c, *size) for c in args.cameras.split(",")]
            frames.append(np.concatenate(views, axis=1))

    start = time.monotonic()
    result = run_episode(env, args.task, args.seed, args.policy, on_step=grab)
    written = write_mp4(args.out, frames, fps=args.fps)
    if args.png:
        write_png(args.png, frames[min(len(frames) - 1, int(len(frames) * args.png_at))])
    env.close()
    print(json.dumps({**result, "out": args.out, "frames": written, "png": args.png,
                      "wall_s": round(time.monotonic() - start, 2)}, sort_keys=True))
    return 0


def cmd_expert(args: argparse.Namespace) -> int:
    from sim.experts import run_episode  # noqa: PLC0415
    env = _env(args, camera=False)
    results = []
    start = time.monotonic()
    for seed in range(args.seed, args.seed + args.episodes):
        t0 = time.monotonic()
        r = run_episode(env, args.task, seed, "expert")
        r["wall_s"] = round(time.monotonic() - t0, 2)
        results.append(r)
        print(json.dumps(r, sort_keys=True), file=sys.stderr if args.quiet else sys.stdout, flush=True)
    env.close()
    ok = sum(r["success"] for r in results)
    print(json.dumps({"task": args.task, "episodes": len(results), "successes": ok,
                      "success_rate": ok / max(1, len(results)), "grasp_assist": args.grasp_assist,
                      "seeds": [args.seed, args.seed + args.episodes - 1],
                      "wall_s": round(time.monotonic() - start, 1)}, sort_keys=True))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from sim.bench import bench  # noqa: PLC0415
    print(json.dumps(bench(args.task, args.seconds, args.seed), sort_keys=True))
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="psi0 sim", description=__doc__.split("\n")[0], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list-tasks", help="task templates, scene layouts and instance counts")
    p.add_argument("--json", action="store_true")

    def assist(p: argparse.ArgumentParser) -> None:
        p.add_argument("--grasp-assist", action=argparse.BooleanOptionalAction, default=True,
                       help="weld a closed hand to the object it touches with two parts (default on; "
                            "--no-grasp-assist = friction-only physical grasps)")

    p = sub.add_parser("render", help="run one episode and write an MP4 (and optionally a PNG still)")
    p.add_argument("--task", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="MP4 file to write")
    p.add_argument("--png", help="also write one frame as PNG (see --png-at)")
    p.add_argument("--png-at", type=float, default=0.5, help="which frame for --png, as a fraction of the episode")
    p.add_argument("--policy", choices=("expert", "zero"), default="expert", help="zero = hold the reset pose")
    p.add_argument("--cameras", default="overview,head", help="comma-separated: overview (follows the robot), head")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--meshes", action="store_true", help="draw the G1's STL meshes (slow) instead of capsules")
    assist(p)
    p = sub.add_parser("expert", help="run the scripted expert on N seeds; last line {success_rate, ...}")
    p.add_argument("--task", required=True)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0, help="first seed (seeds seed .. seed+episodes-1)")
    p.add_argument("--quiet", action="store_true", help="per-episode lines to stderr")
    assist(p)
    p = sub.add_parser("bench", help="speed: physics + control + one 224x224 head camera at 30 Hz")
    p.add_argument("--task", default="pick_place_right")
    p.add_argument("--seconds", type=float, default=10.0, help="simulated seconds to time")
    p.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    return {"list-tasks": cmd_list, "render": cmd_render, "expert": cmd_expert, "bench": cmd_bench}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
