"""`psi0 deploy replay`: run a trained policy through the RTC engine on a recorded episode.

The first debugging step when a fine-tuned policy misbehaves is to compare what it does with what
the operator did. This drives the real engine (asynchronous inference, committed prefixes, delay
prediction) open-loop over a recorded episode's observations and reports latency, late/underrun
counts, chunk-switch smoothness, and the per-body-part L1 between executed and recorded actions
(in joint space, after de-normalisation).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("psi0.deploy")

EXAMPLES = """examples:
  psi0 deploy replay --run runs/s2 --shards out/humanoid_everyday --episode 0
  psi0 deploy replay --run runs/s3 --shards out/teleop --latency-ms 160 --hz 30 --json report.json
  psi0 deploy replay --run runs/s2 --shards out/he --real-time     # threaded inference, wall clock
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="psi0 deploy", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("replay", help="RTC engine over a recorded episode (open loop)", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--run", required=True, help="training run dir (has final/ and run.json), or a final/ dir")
    r.add_argument("--shards", nargs="+", required=True, help="output roots / shard dirs with the episode")
    r.add_argument("--episode", type=int, default=0, help="episode_index within the first shard (default 0)")
    r.add_argument("--hz", type=float, default=30.0, help="control rate (default 30, the dataset fps)")
    r.add_argument("--latency-ms", type=float, default=160.0,
                   help="simulated inference latency (deterministic; default 160 ms = the 2.5 B model)")
    r.add_argument("--real-time", action="store_true", help="threaded inference on the wall clock instead")
    r.add_argument("--execute-horizon", type=int, default=None, help="ticks per chunk before replanning")
    r.add_argument("--steps", type=int, default=None, help="flow-matching Euler steps (default: the policy's)")
    r.add_argument("--no-prefix", action="store_true", help="naive chunking baseline (no RTC prefix)")
    r.add_argument("--json", type=Path, help="also write the report here")
    return p


def replay(args: argparse.Namespace) -> dict:
    import torch

    from deploy.policy_adapter import Psi0ChunkPolicy
    from deploy.rtc import RTCConfig, RTCEngine, SteppedRunner, ThreadedRunner
    from schemas.actions import PSI0_ACTION
    from training.data import ChunkDataset, DataConfig, collate, open_shards
    from training.model.policy import Psi0Policy

    run = Path(args.run)
    final = run / "final" if (run / "final").is_dir() else run
    policy = Psi0Policy.from_pretrained(final)
    run_json = (final.parent / "run.json") if (final.parent / "run.json").exists() else None
    data_kw = json.loads(run_json.read_text())["data"] if run_json else {"horizon": policy.cfg.horizon}
    data_kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data_kw.items()}
    ds = ChunkDataset(open_shards(args.shards), DataConfig(**data_kw))
    cols = ds.columns(0)
    rows = np.flatnonzero(cols.episode_index == args.episode)
    if rows.size == 0:
        raise ValueError(f"episode {args.episode} not in the first shard of {args.shards[0]}")
    source = ds.shards[0].source
    a_dim = policy.cfg.action_dim
    spec = policy.cfg.chunking()                        # the constants training used (schemas.chunking)
    cfg = RTCConfig.from_chunking(spec, control_hz=args.hz, action_dim=a_dim,
                                  execute_horizon=args.execute_horizon or spec.min_execute_horizon,
                                  initial_latency_s=args.latency_ms / 1e3, use_prefix=not args.no_prefix)
    latency_ticks = int(np.ceil(args.latency_ms / 1e3 * args.hz - 1e-9))
    runner = ThreadedRunner() if args.real_time else SteppedRunner(latency_ticks, args.hz)
    engine = RTCEngine(Psi0ChunkPolicy(policy, steps=args.steps), cfg, runner=runner)

    def obs(k: int) -> dict:
        return collate([ds[int(rows[min(k, len(rows) - 1)])]])

    with torch.no_grad():                   # scoped: replay also runs in-process (tests, notebooks)
        engine.start(obs(0))
        executed = [engine.tick(obs(k)) for k in range(len(rows))]
        engine.close()
    executed_n = np.stack(executed)                                  # normalised, (T, a_dim)
    d_src = ds.action_dim(source)
    pad = np.zeros((len(rows), d_src), np.float32)
    pad[:, :a_dim] = executed_n
    executed_j = np.asarray(ds.denormalize(source, pad))[:, :a_dim]
    recorded_j = np.asarray(cols.action[rows], np.float32)[:, :a_dim]
    l1 = np.abs(executed_j - recorded_j)
    parts = {}
    if a_dim == PSI0_ACTION.size:
        for name in ("hands", "arms", "lower_body"):
            parts[name] = float(l1[:, PSI0_ACTION.slice(name)].mean())
    report = {"episode": args.episode, "ticks": len(rows), "source": source, "latency_ticks": latency_ticks,
              "mode": "real-time" if args.real_time else "stepped", "rtc_prefix": not args.no_prefix,
              **engine.stats.summary(), "l1_joint_space": float(l1.mean()), "l1_by_part": parts}
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        report = replay(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"psi0 deploy: error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0
