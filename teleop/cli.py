"""`teleop` — record whole-body teleop sessions, check/repair them, replay them, list devices.

    teleop record --task lunchbag [--device sim|openvr|openxr|replay FILE] [--robot g1_dex3|g1_inspire|...]
                  [--out recordings/] [--episodes N --duration S] [--operator NAME]
    teleop check DIR [--repair]
    teleop replay DIR --to sim
    teleop devices
"""
from __future__ import annotations

import argparse
import json
import sys

RECORD_EPILOG = """interactive (stdin is a terminal, no --episodes/--duration):
  space start/stop an episode · s success · f failure · d discard (stops a running episode)
  e e-stop (toggle: velocities to zero, posture held) · q quit
unattended (--episodes/--duration given, or stdin not a terminal): N episodes of S seconds each,
  --reset seconds apart. Ctrl-C / SIGTERM stop cleanly; a SIGKILL loses at most ~100 ms
  (`teleop check DIR --repair` recovers the rest).

output: OUT/<task>/session_<k>/ (session.json + episode_<k>/<stream>/*.arrows; see docs/teleop.md)
  OUT must take data: it is checked (1 MiB written and removed) before the device check; a write that
  fails later (disk full) stops the episode cleanly, says what was lost, and ends the session (exit 1).
exit status: 0 ok · 1 a write failed during the session · 3 device or output folder unusable
"""


def _record_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="record teleop episodes", epilog=RECORD_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="task name, e.g. lunchbag (also the sim operator's script)")
    p.add_argument("--device", nargs="+", default=["sim"], metavar="DEVICE",
                   help="sim | openvr | openxr | replay FILE (a recorded session/episode dir or an .npz) | mujoco "
                        "(physics sim, the task's scripted expert operates; see docs/sim.md)")
    from schemas import embodiments  # noqa: PLC0415  (numpy only; keeps `teleop --help` light)
    p.add_argument("--robot", default=embodiments.DEFAULT, choices=embodiments.spellings(), metavar="ROBOT",
                   help="robot/hand configuration (`psi0 embodiments` lists them): "
                        + ", ".join(embodiments.names()) + f" (default {embodiments.DEFAULT}; hyphenated "
                        "spellings such as g1-dex3 are accepted)")
    p.add_argument("--bridge", default="sim", help="robot bridge: sim (kinematic G1) or unitree-g1 (DDS)")
    p.add_argument("--camera", help="camera: default the sim camera with the sim bridge; opencv:SOURCE; none")
    p.add_argument("--out", default="recordings", help="recordings root (default: recordings/)")
    p.add_argument("--episodes", type=int, help="record N episodes unattended")
    p.add_argument("--duration", type=float, help="seconds per episode (unattended)")
    p.add_argument("--operator", default="", help="operator name (saved with the session)")
    p.add_argument("--rate", type=float, default=50.0, help="control loop rate in Hz (default 50)")
    p.add_argument("--camera-rate", type=float, default=30.0)
    p.add_argument("--camera-size", default="160x120", help="WIDTHxHEIGHT of the sim camera")
    p.add_argument("--countdown", type=float, default=3.0, help="seconds between calibration and the first episode")
    p.add_argument("--reset", type=float, default=1.0, help="seconds between unattended episodes")
    p.add_argument("--outcome", default="unlabeled", choices=("unlabeled", "success", "failure"),
                   help="label for unattended episodes")
    p.add_argument("--seed", type=int, default=0, help="sim operator seed")
    p.add_argument("--session", help="session directory name under OUT (default: <task>/session_<k>)")
    p.add_argument("--json", action="store_true", help="print the session summary as JSON on stdout")


def cmd_record(args: argparse.Namespace) -> int:
    from schemas import embodiments  # noqa: PLC0415
    from teleop.session import RecordOptions, record  # noqa: PLC0415
    from teleop.streams import DeviceUnavailable  # noqa: PLC0415
    device, *rest = args.device
    if device == "mujoco":
        return _record_mujoco(args)
    if device == "replay" and len(rest) != 1:
        print("teleop record: --device replay needs exactly one FILE", file=sys.stderr)
        return 2
    if device != "replay" and rest:
        print(f"teleop record: unexpected argument(s) after --device {device}: {rest}", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.camera_size.lower().split("x"))
    opts = RecordOptions(task=args.task, device=device, replay_file=rest[0] if rest else None,
                         robot=embodiments.canonical(args.robot),
                         out=args.out, episodes=args.episodes, duration=args.duration, operator=args.operator,
                         rate_hz=args.rate, camera_rate_hz=args.camera_rate, camera_size=(width, height),
                         countdown_s=args.countdown, reset_s=args.reset, outcome=args.outcome, seed=args.seed,
                         session_name=args.session, bridge=args.bridge, camera=args.camera)
    from teleop.recording import OutputUnwritable  # noqa: PLC0415
    try:
        summary = record(opts)
    except (DeviceUnavailable, OutputUnwritable) as exc:
        print(f"teleop record: {exc}", file=sys.stderr)
        return 3
    if summary.get("write_error"):
        print(f"teleop record: {summary['session']}: a write failed: {summary['write_error']['error']}; "
              f"recorded episodes are kept (see each episode.json; `teleop check --repair` finishes any left open)",
              file=sys.stderr)
        if args.json:
            print(json.dumps(summary, sort_keys=True, default=str))
        return 1
    if args.json:
        print(json.dumps(summary, sort_keys=True, default=str))
    else:
        loop, rec = summary.get("loop", {}), summary.get("recorder", {})
        print(f"{summary['session']}: {len(summary['episodes'])} episode(s); loop period jitter p50 "
              f"{loop.get('p50_ms', float('nan')):.2f} ms p99 {loop.get('p99_ms', float('nan')):.2f} ms, "
              f"{loop.get('overruns', 0)} missed ticks; data at risk: {rec.get('max_unwritten_s', 0) * 1e3:.0f} ms "
              f"(process crash), {rec.get('max_at_risk_s', 0) * 1e3:.0f} ms (power loss)")
    return 0


def _record_mujoco(args: argparse.Namespace) -> int:
    from teleop.devices.mujoco_sim import MujocoRecordOptions, record  # noqa: PLC0415
    from teleop.recording import OutputUnwritable, check_writable  # noqa: PLC0415
    try:
        warning = check_writable(args.out)
    except OutputUnwritable as exc:
        print(f"teleop record: {exc}", file=sys.stderr)
        return 3
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    width, height = (int(v) for v in args.camera_size.lower().split("x"))
    summary = record(MujocoRecordOptions(task=args.task, out=args.out, episodes=args.episodes or 1, duration=args.duration,
                                         seed=args.seed, operator=args.operator or "scripted-expert", rate_hz=args.rate,
                                         camera_rate_hz=args.camera_rate, camera_size=(width, height),
                                         session_name=args.session))
    print(json.dumps(summary, sort_keys=True, default=str) if args.json else
          f"{summary['session']}: {len(summary['episodes'])} simulated episode(s), "
          f"{sum(e['success'] for e in summary['episodes'])} successful")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from teleop.check import check  # noqa: PLC0415
    report = check(args.dir, repair=args.repair)
    print(json.dumps(report.to_json(), sort_keys=True) if args.json else report.summary())
    return 0 if report.ok and report.sessions else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from teleop.replay_sim import format_report, replay  # noqa: PLC0415
    if args.to != "sim":
        print("teleop replay: only --to sim is available (a real robot replay needs its bridge)", file=sys.stderr)
        return 2
    results = replay(args.dir, warmup_s=args.warmup)
    print(json.dumps(results, sort_keys=True) if args.json else format_report(results))
    return 0 if results and not any("error" in r for r in results) else 1


def cmd_devices(args: argparse.Namespace) -> int:
    from teleop.devices.registry import available_devices  # noqa: PLC0415
    rows = available_devices()
    if args.json:
        print(json.dumps(rows, sort_keys=True, default=str))
    else:
        for r in rows:
            state = "yes" if r.get("available") else "no"
            why = "" if r.get("available") else f"  ({r.get('reason', '')})"
            print(f"{r['name']:<12} {r.get('kind', ''):<7} {state:<4} {r.get('description', '')}{why}")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="teleop", description=__doc__.split("\n")[0],
                                 epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    _record_parser(sub)
    p = sub.add_parser("check", help="verify a recording; --repair cuts damaged segments to their last complete batch")
    p.add_argument("dir")
    p.add_argument("--repair", action="store_true")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("replay", help="replay recorded actions open-loop; per-body-part L1 vs the recorded states")
    p.add_argument("dir")
    p.add_argument("--to", default="sim", choices=("sim",))
    p.add_argument("--warmup", type=float, default=1.0, help="seconds at each episode start left out of the L1")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("devices", help="list input devices and whether their runtimes are present")
    p.add_argument("--json", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    return {"record": cmd_record, "check": cmd_check, "replay": cmd_replay, "devices": cmd_devices}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
