"""Optimizer and learning-rate schedule: AdamW over named parameter groups, linear warm-up then
cosine decay to a floor (or constant), gradient clipping.

Each parameter group carries its own peak `lr` (the model decides, e.g. vision tower 1e-6 and action
expert 1e-4); the schedule is one multiplicative factor shared by every group, so the ratios between
groups hold throughout training. The schedule is a pure function of the step, which is why resuming
only needs the scheduler's step counter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class WarmupCosine:
    """lr factor at `step`: linear 0 -> 1 over `warmup` steps, then cosine 1 -> `floor` by `total`
    (schedule="cosine") or flat at 1 (schedule="constant"). A picklable callable, so LambdaLR's
    state_dict round-trips it."""

    warmup: int
    total: int
    floor: float = 0.0
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.warmup < 0 or self.total < 1 or not 0.0 <= self.floor <= 1.0:
            raise ValueError(f"need warmup >= 0, total >= 1, 0 <= floor <= 1 (got {self})")

    def __call__(self, step: int) -> float:
        if self.warmup > 0 and step < self.warmup:
            return (step + 1) / self.warmup
        if self.schedule == "constant":
            return 1.0
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(groups: list[dict[str, Any]], *, weight_decay: float = 0.0,
                    betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                    fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over `groups` (dicts with `params`, `lr`, optional `name` and `weight_decay`).
    Groups without parameters are dropped; a parameter in two groups is an error."""
    seen: set[int] = set()
    kept = []
    for i, g in enumerate(groups):
        params = [p for p in g["params"] if p.requires_grad]
        if not params:
            continue
        for p in params:
            if id(p) in seen:
                raise ValueError(f"parameter in more than one group (group {g.get('name', i)!r})")
            seen.add(id(p))
        group = {**g, "params": params}
        group.setdefault("name", f"group{i}")
        group.setdefault("weight_decay", weight_decay)
        kept.append(group)
    if not kept:
        raise ValueError("no trainable parameters: every group is empty or frozen")
    if fused is None:
        fused = all(p.is_cuda for g in kept for p in g["params"])
    return torch.optim.AdamW(kept, betas=betas, eps=eps, fused=fused or None)


def build_scheduler(optimizer: torch.optim.Optimizer, *, warmup: int, total: int, floor: float = 0.0,
                    schedule: str = "cosine") -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with the same WarmupCosine factor for every group (`floor` is a fraction of peak)."""
    fn = WarmupCosine(warmup=warmup, total=total, floor=floor, schedule=schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [fn] * len(optimizer.param_groups))


def clip_gradients(params: Iterable[nn.Parameter], max_norm: float | None) -> float:
    """Clip the global gradient norm to `max_norm` (None or <= 0: measure only). Returns the norm
    before clipping; a non-finite norm is returned as-is so the caller can skip the step."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    if max_norm is None or max_norm <= 0:
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach(), 2.0)
                                                     for p in params]), 2.0)
    else:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, error_if_nonfinite=False)
    return float(norm)
