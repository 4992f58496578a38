"""`psi0 eval`: closed-loop success in the MuJoCo benchmark, for a trained run, a policy server, a LeRobot
baseline, the scripted expert or the zero policy, all through the same episode loop.

Per episode one JSONL line (task, seed, success, steps, wall time, chunk-switch jump, jerk, latency
p50/p99, late chunks, underruns, grasp-assist flag, video/curve files); `summary.json` with the success
rate and its Wilson 95 % interval per task and overall; MP4s of the first `--videos` episodes; the last
stdout line is one JSON object with `success_rate`, `ci95`, `episodes` (over all tasks) and per task.

Latency: a chunk policy runs through the RTC engine. By default inference latency is simulated exactly
(`--latency-ms`, rounded up to ticks of the dataset rate: deterministic, reproducible); with `--server`
the simulator is paced to the wall clock and the latency is whatever the link and server take.
Seeds start at `--seed` (default 1000), away from the demo seeds (0, 1, ...) the recipe trains on.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.metrics import summarize

log = logging.getLogger("psi0.deploy.eval")
SCRIPTED = ("expert", "zero")


@dataclass
class EvalConfig:
    """Everything one evaluation needs (picklable: worker processes rebuild the policy from it)."""

    tasks: list[str]
    episodes: int = 20
    seed: int = 1000
    policy: str = "zero"                   # expert | zero | run | server | lerobot
    run: str | None = None
    server: str | None = None
    token: str | None = None
    lerobot: str | None = None
    latency_ms: float = 160.0
    rtc: bool = True
    real_time: bool = False
    grasp_assist: bool = True
    videos: int = 2
    video_fps: float = 10.0
    out: str | None = None
    steps: int | None = None               # flow steps (default: the policy's)
    execute_horizon: int | None = None
    threads: int = 1
    max_seconds: float | None = None       # cut episodes short (smoke tests); None: the task's time limit
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        if self.policy == "run":
            return f"run:{self.run}"
        if self.policy == "server":
            return f"server:{self.server}"
        if self.policy == "lerobot":
            return f"lerobot:{self.lerobot}"
        return self.policy


# ---------------------------------------------------------------------------------------------- policies
class _Worker:
    """Per-process state: the simulator and (for chunk policies) the policy, built once."""

    def __init__(self, cfg: EvalConfig):
        import torch  # noqa: PLC0415

        from sim.env import EnvConfig, SimEnv  # noqa: PLC0415
        torch.set_num_threads(max(1, cfg.threads))
        self.cfg = cfg
        self.env = SimEnv(EnvConfig(camera=False, grasp_assist=cfg.grasp_assist))
        self.policy, self.schema = None, None
        if cfg.policy == "run":
            from deploy.bundle import ServedPolicy  # noqa: PLC0415
            served = ServedPolicy(cfg.run, steps=cfg.steps)
            self.schema = served.schema
            self.policy = lambda obs, prefix, delay: served.infer(obs, prefix, delay)[0]
        elif cfg.policy == "server":
            from deploy.bundle import ObservationSchema  # noqa: PLC0415
            from deploy.client import PolicyClient, RemoteChunkPolicy  # noqa: PLC0415
            client = PolicyClient(cfg.server, token=cfg.token)
            meta = client.connect()
            self.schema = ObservationSchema.from_json(meta["schema"])
            self.policy = RemoteChunkPolicy(client)
        elif cfg.policy == "lerobot":
            from deploy.baselines import LeRobotChunkPolicy  # noqa: PLC0415
            adapter = LeRobotChunkPolicy(cfg.lerobot)
            self.schema = adapter.schema
            self.policy = adapter
        elif cfg.policy not in SCRIPTED:
            raise ValueError(f"unknown policy {cfg.policy!r}")

    def episode(self, task: str, seed: int, video_path: str | None, curves_path: str | None) -> dict[str, Any]:
        from deploy.rtc import SteppedRunner, ThreadedRunner  # noqa: PLC0415
        from deploy.simrobot import rtc_config, run_chunk_episode, run_scripted_episode  # noqa: PLC0415
        cfg = self.cfg
        frames: list[np.ndarray] = []
        every = max(1, int(round(50.0 / cfg.video_fps)))

        def grab(env) -> None:
            if env.steps % every == 0:
                frames.append(env.render("overview", 320, 240))

        hook = grab if video_path else None
        if cfg.policy in SCRIPTED:
            log_ = run_scripted_episode(self.env, task, seed, cfg.policy, on_step=hook, max_sim_s=cfg.max_seconds)
        else:
            rcfg = rtc_config(self.schema, cfg.latency_ms / 1e3, use_prefix=cfg.rtc and self.schema.max_delay > 1,
                              execute_horizon=cfg.execute_horizon)     # max_delay 1 (no-rtc models): naive
            remote = cfg.policy == "server" or cfg.real_time
            ticks = int(math.ceil(cfg.latency_ms / 1e3 * self.schema.fps - 1e-9))
            runner = ThreadedRunner() if remote else SteppedRunner(ticks, self.schema.fps)
            log_ = run_chunk_episode(self.env, task, seed, self.policy, self.schema, rcfg, runner,
                                     name=cfg.label(), on_step=hook, real_time=remote, max_sim_s=cfg.max_seconds)
            log_.latency_ms = None if remote else cfg.latency_ms
        if video_path and frames:
            from sim.media import write_mp4  # noqa: PLC0415
            write_mp4(video_path, frames, fps=cfg.video_fps)
            log_.video = video_path
        if curves_path:
            _write_curves(curves_path, log_)
            log_.curves = curves_path
        return log_.record()


def _write_curves(path: str, log_: Any) -> None:
    """Executed action curves (arms, hand closure proxy, lower body), for the dashboard's episode view."""
    from schemas.actions import PSI0_ACTION  # noqa: PLC0415
    acts = np.asarray(log_.executed, np.float32)
    stride = max(1, int(round(log_.rate_hz / 10.0)))          # ~10 Hz is enough to look at
    acts = acts[::stride]
    curves = {"t": [round(i * stride / log_.rate_hz, 3) for i in range(len(acts))]}
    for part in ("left_arm", "right_arm", "left_hand", "right_hand", "lower_body"):
        sl = PSI0_ACTION.slice(part)
        names = [n.removeprefix(f"{part}.") for n in PSI0_ACTION.dims[sl]]     # the part is the group's key
        curves[part] = {n: [round(float(v), 4) for v in acts[:, i]] for n, i in zip(names, range(sl.start, sl.stop))}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"task": log_.task, "seed": log_.seed, "success": bool(log_.success),
                                      "curves": curves}))


_WORKER: _Worker | None = None


def _init_worker(cfg: EvalConfig) -> None:
    global _WORKER
    logging.basicConfig(level=logging.WARNING)
    _WORKER = _Worker(cfg)


def _run_job(job: tuple[str, int, str | None, str | None]) -> dict[str, Any]:
    assert _WORKER is not None
    return _WORKER.episode(*job)


# ---------------------------------------------------------------------------------------------- harness
def evaluate(cfg: EvalConfig, workers: int = 1, on_record=None) -> dict[str, Any]:
    """Run every (task, seed) episode; write the JSONL log, summary, videos and curves under cfg.out.
    Returns the summary (also with `wall_s`)."""
    from sim.tasks import TEMPLATES  # noqa: PLC0415
    unknown = [t for t in cfg.tasks if t not in TEMPLATES]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; choose from {sorted(TEMPLATES)}")
    out = Path(cfg.out) if cfg.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps({**cfg.__dict__, "label": cfg.label(),
                                                   "started": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1,
                                                  default=str) + "\n")
    jobs = []
    for task in cfg.tasks:
        for k in range(cfg.episodes):
            seed = cfg.seed + k
            stem = f"{task}_s{seed}"
            video = str(out / "videos" / f"{stem}.mp4") if out and k < cfg.videos else None
            curves = str(out / "curves" / f"{stem}.json") if out else None
            jobs.append((task, seed, video, curves))
    t0 = time.monotonic()
    records: list[dict[str, Any]] = []
    log_file = open(out / "episodes.jsonl", "w") if out else None     # noqa: SIM115
    try:
        if workers <= 1 or cfg.policy == "server":
            _init_worker(cfg)
            results = map(_run_job, jobs)
            for r in results:
                records.append(_emit(r, log_file, on_record))
        else:
            import multiprocessing as mp  # noqa: PLC0415
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(cfg,)) as pool:
                for r in pool.map(_run_job, jobs):
                    records.append(_emit(r, log_file, on_record))
    finally:
        if log_file:
            log_file.close()
    summary = summarize(records)
    summary.update({"policy": cfg.label(), "rtc": cfg.rtc if cfg.policy not in SCRIPTED else None,
                    "latency_ms": cfg.latency_ms if cfg.policy not in SCRIPTED + ("server",) else None,
                    "grasp_assist": cfg.grasp_assist, "seeds": [cfg.seed, cfg.seed + cfg.episodes - 1],
                    "wall_s": round(time.monotonic() - t0, 1)})
    if out:
        (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def _emit(record: dict[str, Any], log_file, on_record) -> dict[str, Any]:
    if log_file:
        log_file.write(json.dumps(record, sort_keys=True) + "\n")
        log_file.flush()
    if on_record:
        on_record(record)
    return record


EPILOG = """examples:
  psi0 eval --policy expert --tasks pick_place_right --episodes 20          # scripted expert (upper bound)
  psi0 eval --policy zero --tasks pick_place_right --episodes 20            # hold the reset pose (floor)
  psi0 eval --run runs/quick/s3 --tasks pick_place_right --episodes 20 --out evals/s3
  psi0 eval --run runs/quick/s3 --tasks pick_place_right --latency-ms 160 --no-rtc   # naive chunking
  psi0 eval --server ws://127.0.0.1:8765/ws --tasks pick_place_right --episodes 5    # a running server
  psi0 eval --lerobot runs/act/checkpoints/last/pretrained_model --tasks pick_place_right

output (--out DIR; `psi0 dashboard --evals DIR/..` shows it): eval.json (config), episodes.jsonl (one
line per episode), summary.json (per task: success_rate, ci95 Wilson, means), videos/*.mp4 (first
--videos episodes per task), curves/*.json (executed actions). Last stdout line: the summary as JSON.
"""


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="psi0 eval", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    who = ap.add_mutually_exclusive_group(required=True)
    who.add_argument("--run", help="a training run (final/ + run.json), evaluated in this process")
    who.add_argument("--policy", choices=SCRIPTED, help="expert = the scripted privileged expert; zero = hold "
                     "the reset pose")
    who.add_argument("--server", help="a running `psi0 serve` (ws://host:port/ws); simulator paced to real time")
    who.add_argument("--lerobot", metavar="DIR", help="a LeRobot policy (pretrained_model dir: ACT, Diffusion) "
                     "trained on psi0 shards (deploy/baselines.py)")
    ap.add_argument("--tasks", required=True, help="comma-separated task templates (psi0 sim list-tasks) or all")
    ap.add_argument("--episodes", type=int, default=20, help="episodes per task (default 20)")
    ap.add_argument("--seed", type=int, default=1000, help="first seed (default 1000: unseen by the demos)")
    ap.add_argument("--latency-ms", type=float, default=160.0,
                    help="simulated inference latency for chunk policies (default 160 ms, the 2.5 B model)")
    ap.add_argument("--no-rtc", action="store_true", help="naive chunking: no committed prefix (baseline)")
    ap.add_argument("--real-time", action="store_true", help="threaded inference on the wall clock (local run)")
    ap.add_argument("--execute-horizon", type=int, default=None, help="ticks per chunk before replanning "
                    "(default: half the chunk)")
    ap.add_argument("--steps", type=int, default=None, help="flow-matching steps (default: the policy's)")
    ap.add_argument("--token", default=os.environ.get("PSI0_SERVE_TOKEN"), help="server token (--server)")
    ap.add_argument("--grasp-assist", action=argparse.BooleanOptionalAction, default=True,
                    help="simulator grasp assist (docs/sim.md; default on, recorded in every line)")
    ap.add_argument("--videos", type=int, default=2, help="MP4s of the first N episodes per task (default 2)")
    ap.add_argument("--workers", type=int, default=1, help="parallel simulator processes (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="end episodes after this much simulated time (smoke runs; default: the task's limit)")
    ap.add_argument("--out", help="output directory (JSONL, summary, videos, curves)")
    ap.add_argument("--quiet", action="store_true", help="per-episode lines to stderr instead of stdout")
    return ap


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    from sim.tasks import TEMPLATES  # noqa: PLC0415
    tasks = list(TEMPLATES) if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    policy = args.policy or ("run" if args.run else "server" if args.server else "lerobot")
    return EvalConfig(tasks=tasks, episodes=args.episodes, seed=args.seed, policy=policy, run=args.run,
                      server=args.server, token=args.token, lerobot=args.lerobot, latency_ms=args.latency_ms,
                      rtc=not args.no_rtc, real_time=args.real_time, grasp_assist=args.grasp_assist,
                      videos=args.videos, out=args.out, steps=args.steps, execute_horizon=args.execute_horizon,
                      threads=args.threads, max_seconds=args.max_seconds)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = config_from_args(args)
    stream = sys.stderr if args.quiet else sys.stdout
    try:
        summary = evaluate(cfg, workers=args.workers,
                           on_record=lambda r: print(json.dumps(r, sort_keys=True), file=stream, flush=True))
    except (ValueError, FileNotFoundError) as e:
        print(f"psi0 eval: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, sort_keys=True))
    return 0
