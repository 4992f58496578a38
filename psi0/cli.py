"""`psi0` — the front door. Each subcommand lives in the package that owns it and is imported
lazily, so `psi0 --help` is instant and `psi0 dashboard` never imports torch."""
from __future__ import annotations

import importlib
import sys

# name -> (module with `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("pipelines.jobcli", "ingest a source (egodex, humanoid_everyday, teleop) into shards: local, Ray or Beam"),
    "sample": ("samples.cli", "write a small sample of each source in its real on-disk format"),
    "inspect": ("shards.inspect", "summarize an output root: shards, episodes, hours, tasks, rejects"),
    "dataset": ("shards.dataset_cli", "curate: filter, sample, split, merge, dedup, export datasets as versioned views"),
    "validate": ("shards.validate", "re-open every shard with LeRobot's and zarr's readers, check vs catalog"),
    "tokenizer": ("pipelines.tokenizer_fit", "fit the FAST action tokenizer on shards or EgoDex sources / inspect one"),
    "dashboard": ("dashboard.cli", "read-only web dashboard over shards, catalogs and rejects"),
    "teleop": ("teleop.cli", "record / check / replay whole-body teleop sessions; list devices"),
    "deploy": ("deploy.cli", "run a trained policy through the RTC engine on a recorded episode (replay)"),
    "sim": ("sim.cli", "MuJoCo G1 + Dex3-1 benchmark: list tasks, render episodes, run scripted experts, bench speed"),
    "train": ("training.cli", "train the Psi0 policy on shards: stage 1 (VLM tokens), 2 (action expert), 3 (fine-tune)"),
    "embodiments": ("schemas.embodiments.cli", "list the robot/hand configurations and their dimensions (--json)"),
    "serve": ("deploy.server", "serve a trained policy over a websocket (msgpack) with a health endpoint"),
    "robot": ("deploy.robot", "robot-side client: RTC next to execution, a policy server across the link"),
    "eval": ("deploy.eval", "closed-loop success in the MuJoCo benchmark, Wilson intervals, videos"),
    "recipe": ("psi0.recipe", "the seed's recipe end to end: sim demos -> ingest -> stage 2 -> 3 -> eval"),
}

USAGE = "usage: psi0 <command> [options]\n\ncommands:\n" + "\n".join(
    f"  {name:<{max(map(len, COMMANDS))}} {help_}" for name, (_, help_) in COMMANDS.items()
) + "\n\nRun `psi0 <command> --help` for a command's options."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"psi0: unknown command {name!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)
