"""The training loop, generic over the model and the data.

The model only needs `loss(batch, stage) -> (loss, metrics)` and `trainable_parameter_groups(stage, lrs)`
(or the caller passes `param_groups`); the data is any DataLoader whose sampler has `set_epoch`,
`state_dict` and `load_state_dict` and counts only samples that reached the loop. Given that, the loop
adds: AdamW + warm-up/cosine, gradient accumulation and clipping, bf16 autocast on CUDA (fp32 on CPU),
DDP under torchrun, `metrics.jsonl`, a progress bar, atomic checkpoints, and exact resume -- a run
stopped at any checkpoint and resumed ends with bit-identical parameters on CPU.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from training import checkpoint as ckpt
from training.dist import DistInfo, all_mean, any_rank, barrier, gather_objects, init_distributed
from training.optim import build_optimizer, build_scheduler, clip_gradients

log = logging.getLogger("training")
METRICS = "metrics.jsonl"
MAX_NONFINITE = 10   # consecutive non-finite gradient steps before giving up


class ResumableSampler(Protocol):
    def set_epoch(self, epoch: int) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainConfig:
    """Loop settings. Learning rates live in the parameter groups; the schedule scales them all."""

    steps: int
    stage: int = 2
    grad_accum: int = 1
    warmup: int = 0
    schedule: str = "cosine"           # cosine | constant (after warm-up)
    lr_floor: float = 0.0              # cosine ends at lr_floor * peak
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad: float = 1.0             # <= 0: no clipping (the norm is still logged)
    log_every: int = 10
    save_every: int = 1000
    keep_last: int = 3
    save_weights: str = "all"          # all | trainable (frozen tensors come back from --vlm-path / --init)
    seed: int = 0
    precision: str = "auto"            # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    find_unused_parameters: bool = False
    progress: bool = True
    lrs: dict[str, float] = field(default_factory=dict)   # passed to model.trainable_parameter_groups

    def __post_init__(self) -> None:
        if self.steps < 1 or self.grad_accum < 1 or self.log_every < 1 or self.save_every < 1:
            raise ValueError("steps, grad_accum, log_every and save_every must be >= 1")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        self.betas = tuple(self.betas)  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _LossModule(nn.Module):
    """Makes `model.loss(batch, stage)` the forward DDP hooks into (gradient sync happens in backward)."""

    def __init__(self, model: nn.Module, stage: int):
        super().__init__()
        self.model = model
        self.stage = stage

    def forward(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.model.loss(batch, self.stage)


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def batch_size_of(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                return int(v.shape[0])
    if isinstance(batch, (list, tuple)) and batch:
        return batch_size_of(batch[0])
    raise TypeError(f"cannot tell the batch size of a {type(batch).__name__}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """`Trainer(model, loader, sampler, cfg, out_dir).fit(resume=...)`; see the module doc.

    `run_config` (model / data config, CLI arguments) is stored in every checkpoint's config.json so a
    checkpoint says how to rebuild its model. Only rank 0 writes files."""

    def __init__(self, model: nn.Module, loader: Any, sampler: ResumableSampler, cfg: TrainConfig,
                 out_dir: str | Path, *, param_groups: list[dict[str, Any]] | None = None,
                 run_config: dict[str, Any] | None = None, dist_info: DistInfo | None = None):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.info = dist_info or init_distributed()
        self.model = model.to(self.info.device)
        self.loader, self.sampler = loader, sampler
        self.run_config = dict(run_config or {})
        groups = param_groups if param_groups is not None else model.trainable_parameter_groups(cfg.stage, cfg.lrs)
        # exactly the grouped parameters train; everything else is frozen (and DDP ignores it)
        chosen = {id(p) for g in groups for p in g["params"]}
        for p in model.parameters():
            p.requires_grad_(id(p) in chosen)
        self.optimizer = build_optimizer(groups, weight_decay=cfg.weight_decay, betas=cfg.betas, eps=cfg.eps)
        self.scheduler = build_scheduler(self.optimizer, warmup=cfg.warmup, total=cfg.steps, floor=cfg.lr_floor,
                                         schedule=cfg.schedule)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        on_cuda = self.info.device.type == "cuda"
        self.autocast_dtype = torch.bfloat16 if (cfg.precision == "bf16" or (cfg.precision == "auto" and on_cuda)) \
            else None
        self.step = 0
        self.epoch = 0
        self.samples_seen = 0
        self._module: nn.Module = _LossModule(self.model, cfg.stage)
        self._ddp: DistributedDataParallel | None = None
        self._iter: Iterator[Any] | None = None
        self._stop_signal = False
        self.stopped_by_signal = False
        self._pending_rng: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------ setup
    @property
    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.params)

    def _wrap_ddp(self) -> None:
        if self.info.distributed and self._ddp is None:
            ids = [self.info.device.index] if self.info.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(self._module, device_ids=ids,
                                                find_unused_parameters=self.cfg.find_unused_parameters)

    def resume_from(self, path: str | Path | None = None) -> bool:
        """Restore the newest checkpoint under out_dir (or `path`). False when there is none."""
        target = path or ckpt.latest_checkpoint(self.out)
        if target is None:
            return False
        state = ckpt.load_training_state(target, model=self.model, optimizer=self.optimizer,
                                         scheduler=self.scheduler, rank=self.info.rank,
                                         world_size=self.info.world_size)
        self.step, self.epoch = state.step, state.epoch
        if state.sampler is not None:
            self.sampler.load_state_dict(state.sampler)
        self.sampler.set_epoch(self.epoch)
        self._pending_rng = state.rng
        meta = json.loads((ckpt.resolve_checkpoint(target) / "state.json").read_text())
        self.samples_seen = int(meta.get("samples_seen", 0))
        if self.info.is_main:
            self._truncate_metrics(self.step)
            log.info("resumed from %s at step %d (epoch %d)", ckpt.resolve_checkpoint(target), self.step, self.epoch)
        return True

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines past the resumed step (they were written after the checkpoint, then lost)."""
        path = self.out / METRICS
        if not path.exists():
            return
        kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))

    # ------------------------------------------------------------------------------------------ data
    def _new_iterator(self) -> Iterator[Any]:
        self.sampler.set_epoch(self.epoch)
        # worker seeds: a function of (seed, epoch), not of the global RNG
        if hasattr(self.loader, "generator"):
            self.loader.generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.epoch)
        return iter(self.loader)

    def _next_batch(self) -> Any:
        """Next batch, crossing epochs. Fetching runs on a fork of the CPU RNG: loaders that draw seeds
        lazily (on the first `next`) must not shift the model's noise stream, or a resumed run (which
        builds its iterator at another point of that stream) would drift from the uninterrupted one."""
        empty_epochs = 0
        while True:
            try:
                with torch.random.fork_rng(devices=[]):
                    if self._iter is None:
                        self._iter = self._new_iterator()
                    return next(self._iter)
            except StopIteration:
                self._iter = None
                self.epoch += 1
                empty_epochs += 1
                if empty_epochs > 1:
                    raise RuntimeError("the data loader yields no batches (empty dataset, or batch larger than "
                                       "the data with drop_last)") from None

    # ------------------------------------------------------------------------------------------ loop
    def _micro_step(self, batch: Any, last: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        module = self._ddp or self._module
        sync = contextlib.nullcontext() if (last or self._ddp is None) else self._ddp.no_sync()
        amp = (torch.autocast(self.info.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
               else contextlib.nullcontext())
        with sync:
            with amp:
                loss, metrics = module(to_device(batch, self.info.device))
            (loss / self.cfg.grad_accum).backward()
        return loss.detach().float(), metrics

    def fit(self, resume: bool | str | Path = False, stop_after: int | None = None) -> dict[str, float]:
        """Train to `cfg.steps` (or `stop_after` more steps, then checkpoint and return). `resume=True`
        continues from the newest checkpoint in out_dir when there is one; a path resumes from it.
        Returns the last logged record."""
        cfg, info = self.cfg, self.info
        resumed = self.resume_from(None if resume is True else resume) if resume else False
        if resume and not resumed and info.is_main:
            log.info("no checkpoint in %s yet; starting from step 0", self.out)
        if not resumed:
            seed_everything(cfg.seed + info.rank)      # ranks draw different noise; DDP syncs the weights
        self.model.train()
        self._wrap_ddp()
        if self._pending_rng is not None:
            ckpt.restore_rng(self._pending_rng)         # last: nothing above may consume randomness after it
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            log.info("stage %d: %d trainable parameters in %d groups (%s), %d steps x %d micro-batches x %d "
                     "ranks, %s on %s", cfg.stage, self.trainable_count, len(self.optimizer.param_groups),
                     ", ".join(f"{g['name']} lr {g['initial_lr']:.1e}" for g in self.optimizer.param_groups),
                     cfg.steps, cfg.grad_accum, info.world_size,
                     "bf16 autocast" if self.autocast_dtype else "fp32", info.device)
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress and info.is_main), desc=f"stage {cfg.stage}")
        previous = self._install_signal_handler()
        record: dict[str, float] = {}
        sums: dict[str, torch.Tensor] = {}
        count, interval_samples, nonfinite = 0, 0, 0
        t_start = time.perf_counter()
        try:
            while self.step < end:
                self.optimizer.zero_grad(set_to_none=True)
                for micro in range(cfg.grad_accum):
                    batch = self._next_batch()
                    n = batch_size_of(batch)
                    loss, metrics = self._micro_step(batch, last=micro == cfg.grad_accum - 1)
                    for k, v in {"loss": loss, **metrics}.items():
                        v = v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                        sums[k] = sums.get(k, 0) + v.to(info.device)
                    count += 1
                    interval_samples += n
                    self.samples_seen += n * info.world_size
                grad_norm = clip_gradients(self.params, cfg.clip_grad)
                if math.isfinite(grad_norm):
                    self.optimizer.step()
                    nonfinite = 0
                else:
                    nonfinite += 1
                    log.warning("step %d: gradient norm is %s; skipping the update", self.step + 1, grad_norm)
                    if nonfinite >= MAX_NONFINITE:
                        raise FloatingPointError(f"{MAX_NONFINITE} consecutive steps with non-finite gradients "
                                                 f"(last loss {float(loss):.4g}); lower the lr or check the data")
                self.scheduler.step()
                self.step += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == end:
                    elapsed = time.perf_counter() - t_start
                    record = self._log(sums, count, interval_samples, elapsed, grad_norm)
                    bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{record['lr']:.2e}")
                    sums, count, interval_samples = {}, 0, 0
                    t_start = time.perf_counter()
                stop = any_rank(self._stop_signal, info, info.device)
                if self.step % cfg.save_every == 0 or self.step == end or stop:
                    self.save()
                if stop:
                    log.warning("stopping at step %d on SIGTERM; continue with --resume", self.step)
                    self.stopped_by_signal = True
                    break
        finally:
            bar.close()
            self._restore_signal_handler(previous)
        barrier(info)
        return record

    def _log(self, sums: dict[str, torch.Tensor], count: int, samples: int, elapsed: float,
             grad_norm: float) -> dict[str, float]:
        keys = sorted(sums)
        means = all_mean(torch.stack([sums[k] for k in keys]) / max(1, count), self.info).tolist()
        global_samples = samples * self.info.world_size
        record: dict[str, Any] = {"step": self.step, "epoch": self.epoch}
        record.update({k: float(v) for k, v in zip(keys, means)})
        record["lr"] = max(float(g["lr"]) for g in self.optimizer.param_groups)    # the main group's
        for g in self.optimizer.param_groups:
            record[f"lr/{g['name']}"] = float(g["lr"])
        record["grad_norm"] = float(grad_norm)
        record["samples"] = self.samples_seen
        record["samples_per_s"] = global_samples / max(elapsed, 1e-9)
        if self.info.is_main:
            with open(self.out / METRICS, "a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            extras = " ".join(f"{k} {record[k]:.4g}" for k in keys if k != "loss")
            log.info("step %d/%d  loss %.4f  lr %.2e  grad %.3g  %.1f samples/s%s", self.step, self.cfg.steps,
                     record["loss"], record["lr"], grad_norm, record["samples_per_s"],
                     f"  {extras}" if extras else "")
        return record

    def save(self) -> Path | None:
        """Checkpoint now (a collective: every rank must call it). Returns the path on rank 0."""
        samplers = gather_objects(self.sampler.state_dict(), self.info)
        rngs = gather_objects(ckpt.capture_rng(), self.info)
        path = None
        if self.info.is_main:
            config = {"stage": self.cfg.stage, "train": self.cfg.to_dict(), **self.run_config}
            path = ckpt.save_checkpoint(self.out, self.step, model=self.model, optimizer=self.optimizer,
                                        scheduler=self.scheduler, config=config, sampler_states=samplers,
                                        rng_states=rngs, epoch=self.epoch, weights=self.cfg.save_weights,
                                        keep_last=self.cfg.keep_last, extra={"samples_seen": self.samples_seen})
            log.info("saved %s", path)
        barrier(self.info)
        return path

    # ------------------------------------------------------------------------------------------ signals
    def _install_signal_handler(self) -> Any:
        def request_stop(signum: int, frame: Any) -> None:
            self._stop_signal = True
        try:
            return signal.signal(signal.SIGTERM, request_stop)
        except ValueError:          # not the main thread
            return None

    @staticmethod
    def _restore_signal_handler(previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
