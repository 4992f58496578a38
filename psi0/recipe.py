"""`psi0 recipe --quick`: the seed's recipe end to end, small enough for a 2-core CPU.

    scripted-expert demos in the simulator (teleop recordings)  ->  psi0 ingest teleop (LeRobot v3 shards)
    ->  train stage 2 (tiny action expert, VLM frozen)  ->  train stage 3 (tiny, end to end, from stage 2)
    ->  psi0 eval: the trained policy, the zero policy and the scripted expert on unseen seeds

Every step is the project's own code path (pipelines/sim_demos.py, `psi0 ingest`, `train`, `psi0 eval`);
the recipe only chooses sizes. CPU proof = the privileged observation mode: the policy's state is
`observation.state_privileged` (PSI0_STATE + object poses and target in the robot's frame; docs/eval.md);
the camera is still fed to the tiny VLM at 32x32. Image-only policies are for GPUs (`--state-key` unset).

The last stdout line is one JSON object: `trained_success`, `zero_success`, `expert_success` (with Wilson
95 % intervals), the episode counts, each phase's wall time and the total.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from schemas.names import STATE_PRIVILEGED

log = logging.getLogger("psi0.recipe")


@dataclass
class QuickConfig:
    """Sizes of the quick recipe (defaults: the <= 15 min configuration; CI uses a smaller one)."""

    tasks: tuple[str, ...] = ("bimanual_lift",)
    demos: int = 40                  # expert episodes per task (seeds 0 ..); 12 were too few (docs/eval.md)
    s2_steps: int = 2000
    s3_steps: int = 200
    batch_size: int = 32
    lr_s2: float = 2e-3
    lr_s3: float = 1e-4               # the stage-3 expert default; 5e-4 on a converged stage 2 undid it (17/20 -> 3/6)
    image_size: str = "32x32"
    eval_episodes: int = 10          # per task and policy, seeds from eval_seed (unseen)
    eval_seed: int = 1000
    latency_ms: float = 160.0
    workers: int = 2
    threads: int = 1                 # torch threads per process
    videos: int = 1

    @classmethod
    def ci(cls) -> "QuickConfig":
        """The CI-sized run of the same code (tests/test_recipe.py): the same demos, a shorter stage 2
        (1500 steps: 17/20 on unseen seeds when measured alone, docs/eval.md), 6 evaluation episodes."""
        return cls(s2_steps=1500, s3_steps=40, eval_episodes=6, videos=0)


def _demo_job(job: tuple[str, int, str]) -> dict[str, Any]:
    import torch  # noqa: PLC0415
    torch.set_num_threads(1)
    from pipelines.sim_demos import demo  # noqa: PLC0415
    task, seed, out = job
    return demo(task, seed, out, grasp_assist=True, camera_size=(64, 48))


def record_demos(cfg: QuickConfig, out: Path) -> list[dict[str, Any]]:
    """Scripted-expert episodes recorded as teleop sessions (pipelines/sim_demos.py), in parallel."""
    jobs = [(t, s, str(out)) for t in cfg.tasks for s in range(cfg.demos)]
    if cfg.workers <= 1:
        return [_demo_job(j) for j in jobs]
    import multiprocessing as mp  # noqa: PLC0415
    with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_demo_job, jobs))


def ingest(cfg: QuickConfig, demos: Path, shards: Path) -> int:
    from pipelines.jobcli import main as ingest_main  # noqa: PLC0415
    return ingest_main(["teleop", "--input", str(demos), "--output", str(shards), "--runner", "local",
                        "--workers", str(max(1, cfg.workers)), "--format", "lerobot", "--no-tokenize",
                        "--codec", "libx264", "--video-size", "64x48"])


def train(cfg: QuickConfig, shards: Path, out: Path, stage: int, init: Path | None = None) -> int:
    """One `train` invocation in a child process (its own torch thread setting and memory)."""
    import subprocess  # noqa: PLC0415
    steps, lr = (cfg.s2_steps, cfg.lr_s2) if stage == 2 else (cfg.s3_steps, cfg.lr_s3)
    argv = [sys.executable, "-m", "training.cli", "--shards", str(shards), "--stage", str(stage), "--config", "tiny",
            "--state-key", STATE_PRIVILEGED, "--image-size", cfg.image_size, "--normalization", "minmax",
            "--batch-size", str(cfg.batch_size), "--steps", str(steps), "--warmup", str(min(50, steps // 10)),
            "--schedule", "cosine", "--lr", f"expert={lr}", "--save-every", str(steps), "--log-every", "50",
            "--no-progress", "--out", str(out)]
    if init is not None:      # the tiny VLM is rebuilt from its seed: stage 2 kept it frozen, so only the expert moves
        argv += ["--init", f"expert={init}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg.threads), "MKL_NUM_THREADS": str(cfg.threads),
           "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parent.parent),
                                                     os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.call(argv, env=env)


def evaluate_policy(cfg: QuickConfig, out: Path, policy: str, run: Path | None = None) -> dict[str, Any]:
    from deploy.eval import EvalConfig, evaluate  # noqa: PLC0415
    ecfg = EvalConfig(tasks=list(cfg.tasks), episodes=cfg.eval_episodes, seed=cfg.eval_seed,
                      policy="run" if run else policy, run=str(run) if run else None, latency_ms=cfg.latency_ms,
                      videos=cfg.videos, out=str(out), threads=cfg.threads)
    return evaluate(ecfg, workers=cfg.workers)


def run_quick(cfg: QuickConfig, out: Path) -> dict[str, Any]:
    """The whole recipe; returns the result object (also written to OUT/result.json)."""
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.monotonic()

    def phase(name: str, t0: float) -> None:
        timings[name] = round(time.monotonic() - t0, 1)
        log.info("recipe: %s done in %.1f s", name, timings[name])

    t0 = time.monotonic()
    demos = record_demos(cfg, out / "demos")
    demo_success = sum(d["success"] for d in demos) / max(1, len(demos))
    phase("demos", t0)
    t0 = time.monotonic()
    if ingest(cfg, out / "demos", out / "shards") != 0:
        raise RuntimeError("ingest failed")
    phase("ingest", t0)
    t0 = time.monotonic()
    if train(cfg, out / "shards", out / "s2", 2) != 0:
        raise RuntimeError("stage 2 training failed")
    phase("stage2", t0)
    t0 = time.monotonic()
    if train(cfg, out / "shards", out / "s3", 3, init=out / "s2") != 0:
        raise RuntimeError("stage 3 training failed")
    from deploy.bundle import save_normalization  # noqa: PLC0415
    save_normalization(out / "s3")
    phase("stage3", t0)
    results = {}
    for name, policy, run in (("trained", "run", out / "s3"), ("zero", "zero", None), ("expert", "expert", None)):
        t0 = time.monotonic()
        results[name] = evaluate_policy(cfg, out / "eval" / name, policy, run)
        phase(f"eval_{name}", t0)
    result = {
        "trained_success": results["trained"]["success_rate"], "trained_ci95": results["trained"]["ci95"],
        "zero_success": results["zero"]["success_rate"], "zero_ci95": results["zero"]["ci95"],
        "expert_success": results["expert"]["success_rate"], "expert_ci95": results["expert"]["ci95"],
        "episodes": results["trained"]["episodes"], "demo_success": demo_success, "demos": len(demos),
        "tasks": list(cfg.tasks), "trained_jerk": results["trained"].get("mean_jerk"),
        "trained_chunk_switch_jump": results["trained"].get("mean_chunk_switch_jump"),
        "latency_ms": cfg.latency_ms, "observation": "privileged", "timings_s": timings,
        "wall_s": round(time.monotonic() - t_all, 1), "config": asdict(cfg), "out": str(out),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


EPILOG = """examples:
  psi0 recipe --quick --out runs/quick                 # <= 15 min on 2 cores; last line JSON
  psi0 recipe --quick --out runs/quick --tasks pick_place_right --demos 60
  psi0 dashboard --evals runs/quick/eval               # the three evaluations side by side

output: OUT/demos (recordings), OUT/shards (LeRobot v3), OUT/s2 and OUT/s3 (training runs; s3/final is
the policy: `psi0 serve --run OUT/s3`), OUT/eval/{trained,zero,expert} (psi0 eval outputs), OUT/result.json.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="psi0 recipe", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", required=True,
                    help="the CPU-sized recipe (the only one so far; full-size runs use `train` per stage)")
    ap.add_argument("--out", required=True, help="output directory (must be empty or absent)")
    d = QuickConfig()
    ap.add_argument("--tasks", default=",".join(d.tasks), help=f"task templates (default {','.join(d.tasks)})")
    ap.add_argument("--demos", type=int, default=d.demos, help=f"expert demos per task (default {d.demos})")
    ap.add_argument("--s2-steps", type=int, default=d.s2_steps, help=f"stage-2 steps (default {d.s2_steps})")
    ap.add_argument("--s3-steps", type=int, default=d.s3_steps, help=f"stage-3 steps (default {d.s3_steps})")
    ap.add_argument("--eval-episodes", type=int, default=d.eval_episodes,
                    help=f"evaluation episodes per task and policy (default {d.eval_episodes})")
    ap.add_argument("--latency-ms", type=float, default=d.latency_ms, help="simulated inference latency (160)")
    ap.add_argument("--workers", type=int, default=d.workers, help="parallel processes (default 2)")
    ap.add_argument("--threads", type=int, default=d.threads, help="torch threads per process (default 1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"psi0 recipe: error: {out} is not empty", file=sys.stderr)
        return 2
    cfg = QuickConfig(tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()), demos=args.demos,
                      s2_steps=args.s2_steps, s3_steps=args.s3_steps, eval_episodes=args.eval_episodes,
                      latency_ms=args.latency_ms, workers=args.workers, threads=args.threads)
    result = run_quick(cfg, out)
    print(json.dumps(result, sort_keys=True))
    return 0
