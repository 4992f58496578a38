"""Thin runners over `pipelines.stages`: in-process, Ray Data, Apache Beam.

Each runner does the same three things — prepare (driver), run_shard for every planned shard
(anywhere), finalize (driver) — so their outputs are byte-identical.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from pipelines.stages import JobConfig, Plan, ShardPlan, build_transforms, finalize, prepare, run_shard

log = logging.getLogger("psi0.pipelines")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _progress(total: int, desc: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="shard", dynamic_ncols=True, mininterval=1.0)


def _summary(results: list[Any]) -> dict[str, int]:
    frames = sum(r.records[0].frames for r in results if r is not None and r.records)
    rejected = sum(1 for r in results if r is not None for f in r.fates.values() if f["status"] == "rejected")
    return {"written": sum(1 for r in results if r is not None), "skipped": sum(1 for r in results if r is None),
            "frames": frames, "rejected": rejected}


# ---------------------------------------------------------------- local
def run_local(config: JobConfig) -> Any:
    the_plan, tokenizer = prepare(config)
    transforms = build_transforms(config, tokenizer)
    results = []
    start = time.monotonic()
    with _progress(len(the_plan.shards), f"{config.source} (local)") as bar:
        for shard in the_plan.shards:
            results.append(run_shard(shard, config, transforms))
            done = _summary(results)
            bar.set_postfix(frames_s=f"{done['frames'] / max(time.monotonic() - start, 1e-9):.0f}",
                            rejects=done["rejected"], skipped=done["skipped"])
            bar.update(1)
    log.info("local run: %s", _summary(results))
    return finalize(config, the_plan, tokenizer)


# ---------------------------------------------------------------- Ray
class ShardWorker:
    """Ray Data actor: per-worker setup (the job's tokenizer, the transform chain) once, then one shard per row."""

    def __init__(self, config: JobConfig, with_tokenizer: bool):
        self.config = config
        tokenizer = config.out.load_tokenizer() if with_tokenizer else None
        if with_tokenizer and tokenizer is None:
            raise FileNotFoundError(f"no tokenizer at {config.out.tokenizer_location}")
        self.transforms = build_transforms(config, tokenizer)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        out = []
        for item in batch["plan"]:
            shard: ShardPlan = item
            result = run_shard(shard, self.config, self.transforms)
            out.append("skipped" if result is None else f"{result.shard_id}:{result.records[0].frames}")
        return {"result": np.array(out, dtype=object)}


def _ray_init(address: str | None, num_cpus: int | None) -> None:
    """Three ways to run: inside `ray job submit` (RAY_ADDRESS set, working dir already shipped), an
    explicit `--address` (ship this checkout as the job's working dir), or a fresh local instance."""
    import ray
    if ray.is_initialized():
        return
    storage = storage_env()          # object-store options (--storage-option) travel to every worker
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env={
            "working_dir": str(REPO_ROOT), "excludes": [".venv", "out", ".git", "sample", "runs", "recordings"],
            **({"env_vars": storage} if storage else {})})
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False, **({"runtime_env": {"env_vars": storage}} if storage else {}))
    else:       # workers import this checkout, and whatever the driver's PYTHONPATH adds
        pythonpath = os.pathsep.join([str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath, **storage}})


def storage_env() -> dict[str, str]:
    """fsspec's own configuration variables (`FSSPEC_<PROTOCOL>=<json>`), set by `--storage-option`."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("FSSPEC_")}


def run_ray(config: JobConfig, address: str | None = None, workers: int | None = None,
            cpus_per_worker: float = 1.0) -> Any:
    import ray
    started_here = not ray.is_initialized()
    _ray_init(address, workers)
    try:
        return _run_ray(config, workers, cpus_per_worker)
    finally:
        if started_here:
            ray.shutdown()


def _run_ray(config: JobConfig, workers: int | None, cpus_per_worker: float) -> Any:
    import ray
    the_plan, tokenizer = prepare(config)
    if not the_plan.shards:
        return finalize(config, the_plan, tokenizer)
    concurrency = max(1, min(workers or int(ray.available_resources().get("CPU", 1) // cpus_per_worker),
                             len(the_plan.shards)))
    ds = ray.data.from_items([{"plan": s} for s in the_plan.shards], override_num_blocks=len(the_plan.shards))
    ds = ds.map_batches(ShardWorker, fn_constructor_args=(config, tokenizer is not None), batch_size=1,
                        concurrency=concurrency, num_cpus=cpus_per_worker, max_restarts=2, max_task_retries=2)
    with _progress(len(the_plan.shards), f"{config.source} (ray x{concurrency})") as bar:
        for row in ds.iter_rows():
            bar.set_postfix(last=row["result"])
            bar.update(1)
    return finalize(config, the_plan, tokenizer)


# ---------------------------------------------------------------- Beam
def run_beam(config: JobConfig, beam_args: list[str]) -> Any:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    the_plan, tokenizer = prepare(config)
    with_tokenizer = tokenizer is not None

    class WriteShard(beam.DoFn):
        def setup(self) -> None:
            self.worker = ShardWorker(config, with_tokenizer)

        def process(self, shard: ShardPlan):
            yield self.worker({"plan": [shard]})["result"][0]

    options = PipelineOptions(beam_args or ["--runner=DirectRunner"])
    with beam.Pipeline(options=options) as pipeline:
        _ = (pipeline | "plan" >> beam.Create(the_plan.shards) | "reshuffle" >> beam.Reshuffle()
             | "write" >> beam.ParDo(WriteShard()))
    return finalize(config, the_plan, tokenizer)


def run(config: JobConfig, runner: str, address: str | None = None, workers: int | None = None,
        cpus_per_worker: float = 1.0, beam_args: list[str] | None = None) -> Any:
    if runner == "local":
        return run_local(config)
    if runner == "ray":
        return run_ray(config, address, workers, cpus_per_worker)
    if runner == "beam":
        return run_beam(config, beam_args or [])
    raise ValueError(f"unknown runner {runner!r}")


__all__ = ["run", "run_local", "run_ray", "run_beam", "Plan"]
