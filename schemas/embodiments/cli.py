"""`psi0 embodiments`: the robot/hand configurations the project knows, with their dimensions.

    psi0 embodiments            # one table row per configuration
    psi0 embodiments g1_inspire # one configuration in detail (joint names, slot map, chains, notes)
    psi0 embodiments --json     # everything, machine-readable
"""
from __future__ import annotations

import argparse
import json
import sys

from schemas import embodiments

EPILOG = """columns:
  body     body joints (SDK motor order)      arm      joints per arm
  hand     native joints per hand             slots    hand-block slots per side in the action
  action   PSI0_ACTION width                  state    PSI0_STATE width (used dims)
  arm IK   the arm model IK solves on ("*" = a stand-in for a body without its own)

Names are written into shards (episode metadata `embodiment`); hyphenated spellings (g1-dex3) are
accepted wherever a name is asked for (teleop --robot, old recordings' session.json).
To add a configuration: one module in schemas/embodiments/ defining EMBODIMENT (+ its test).
"""


def _row(d: dict) -> str:
    ik = "-" if d["arm_ik"] is None else d["arm_ik"] + ("*" if d["arm_ik_stand_in"] else "")
    return (f"{d['name']:<12} {d['body_dof']:>4} {d['arm_dof']:>4} {d['hand_dof']:>4} {d['hand_slots']:>5} "
            f"{d['action_dim']:>6} {d['state_dim']:>3} ({d['state_used']}) {ik:<7} {d['description']}")


def _detail(d: dict) -> str:
    lines = [f"{d['name']}: {d['description']}",
             f"  spellings   {', '.join(d['spellings'])}",
             f"  body        {d['body']}: {d['body_dof']} joints, {d['arm_dof']} per arm",
             f"  hand        {d['hand']}: {d['hand_dof']} joints per hand; stored {d['hand_stored']['size']} "
             f"({' + '.join(d['hand_stored']['sides'])}{', 0..1 closures' if d['hand_stored']['closure'] else ''})",
             "  hand block  " + ", ".join("pad" if j is None else j for j in d["hand_slot_joints"]),
             f"  action      {d['action_dim']}   state {d['state_dim']} ({d['state_used']} used)",
             f"  camera      {d['color_intrinsics'] or 'unknown'} (fx, fy, cx, cy)"]
    for part, c in d["chains"].items():
        extra = " (left keypoints mirrored onto it)" if c.get("mirrored") else ""
        lines.append(f"  {part:<11} {c['chain']}: {c['dof']} DoF {', '.join(c['joints'])}{extra}")
    lines += [f"  note        {n}" for n in d["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="psi0 embodiments", description=__doc__.split("\n")[0],
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", help="show one configuration in detail (any accepted spelling)")
    ap.add_argument("--json", action="store_true", help="print JSON (a list, or one object with NAME)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.name is not None:
        try:
            emb = embodiments.get(args.name)
        except ValueError as exc:
            print(f"psi0 embodiments: {exc}", file=sys.stderr)
            return 2
        d = emb.describe()
        print(json.dumps(d, sort_keys=True) if args.json else _detail(d))
        return 0
    rows = [e.describe() for e in embodiments.all_embodiments()]
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    print(f"{'name':<12} {'body':>4} {'arm':>4} {'hand':>4} {'slots':>5} {'action':>6} {'state':<7} {'arm IK':<7} "
          "description")
    for d in rows:
        print(_row(d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
