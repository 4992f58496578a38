"""Checkpoints: one directory per step, written atomically, nothing pickled.

    RUN/checkpoints/step_00001000/
        model.safetensors       weights: every tensor, or only the trainable ones (metadata says which)
        config.json             what built the run: model / data / train config, stage, step
        optimizer.safetensors   AdamW moments and step counters, flattened ("state.<param>.<name>")
        rng.safetensors         torch CPU (+ CUDA) generator states, one set per DDP rank
        state.json              step, epoch, scheduler, optimizer groups, data sampler + python/numpy RNG per rank

A checkpoint is written into `.tmp-step_...` and renamed into place, so a directory named `step_*`
is always complete; a crash mid-write leaves only a `.tmp-*` that the next save removes. The newest
`keep_last` are kept. `load_weights` is how `--init` starts a run from other runs' weights (optionally
only the tensors under a module prefix); `load_training_state` is how `--resume` continues one exactly.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from schemas.durable import fsync_dir
from schemas.episode import jsonable

FORMAT = "psi0-checkpoint/1"
CKPT_DIR = "checkpoints"
_STEP_RE = re.compile(r"^step_(\d+)$")
WEIGHTS = ("all", "trainable")


# ------------------------------------------------------------------------------------------- paths
def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def list_checkpoints(path: str | Path) -> list[Path]:
    """Complete checkpoints under a run dir (or its `checkpoints/`), oldest first."""
    root = Path(path)
    if (root / CKPT_DIR).is_dir():
        root = root / CKPT_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(path: str | Path) -> Path | None:
    found = list_checkpoints(path)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint dir, a run dir (its newest checkpoint) or a `model.safetensors` file -> checkpoint dir."""
    p = Path(path)
    if p.is_file() and p.suffix == ".safetensors":
        return p.parent
    if (p / "model.safetensors").is_file():
        return p
    latest = latest_checkpoint(p)
    if latest is None:
        raise FileNotFoundError(f"no checkpoint at {p} (expected a step_* dir, a run dir with checkpoints/, "
                                "or a model.safetensors)")
    return latest


# ------------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """This process's RNG states: python + numpy as JSON-able values, torch as uint8 tensors."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------- weights
def _dedupe(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """safetensors refuses shared storage (tied embeddings): keep the first name, alias the rest."""
    keep: dict[tuple, str] = {}
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name in sorted(tensors):
        t = tensors[name]
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if key in keep:
            aliases[name] = keep[key]
        else:
            keep[key] = name
            out[name] = t.detach().to("cpu").contiguous()
    return out, aliases


def weights_to_save(model: nn.Module, which: str = "all") -> dict[str, torch.Tensor]:
    """Every state-dict tensor (`all`) or only parameters with requires_grad (`trainable`)."""
    if which not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {which!r}")
    if which == "all":
        return dict(model.state_dict())
    return {n: p for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}


@dataclass
class LoadReport:
    source: Path
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)     # model tensors this file did not set

    def __str__(self) -> str:
        return f"{len(self.loaded)} tensors from {self.source} ({len(self.missing)} of the model's left as they were)"


def load_weights(model: nn.Module, path: str | Path, prefixes: list[str] | None = None) -> LoadReport:
    """Copy tensors from a checkpoint (dir, run dir or .safetensors) into `model`, in place.

    With `prefixes`, only names under those modules (e.g. ["action_expert"]) are read. A tensor the
    model does not have, or of another shape, is an error that names it: silently skipping weights
    is how half-initialised models get trained for days."""
    ckpt = resolve_checkpoint(path)
    file = Path(path) if Path(path).is_file() else ckpt / "model.safetensors"
    target = model.state_dict()
    wanted = (lambda n: True) if not prefixes else (
        lambda n: any(n == p or n.startswith(p.rstrip(".") + ".") for p in prefixes))
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(file), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        aliases = json.loads(meta.get("aliases", "{}"))
        for name in f.keys():
            if wanted(name):
                tensors[name] = f.get_tensor(name)
    for alias, name in aliases.items():
        if wanted(alias) and name in tensors:
            tensors[alias] = tensors[name]
    if prefixes and not tensors:
        raise ValueError(f"{file}: no tensors under {prefixes}; its top-level modules are {_top_modules(file)}")
    unknown = sorted(n for n in tensors if n not in target)
    if unknown:
        raise ValueError(f"{file}: {len(unknown)} tensors the model does not have, e.g. {unknown[:5]} "
                         "(wrong --config for this checkpoint?)")
    bad = [(n, tuple(t.shape), tuple(target[n].shape)) for n, t in tensors.items() if t.shape != target[n].shape]
    if bad:
        raise ValueError(f"{file}: shape mismatch (name, checkpoint, model): {bad[:5]}")
    model.load_state_dict(tensors, strict=False)
    return LoadReport(source=file, loaded=sorted(tensors), missing=sorted(set(target) - set(tensors)))


def _top_modules(file: Path) -> list[str]:
    with safe_open(str(file), framework="pt", device="cpu") as f:
        return sorted({k.split(".")[0] for k in f.keys()})


# ------------------------------------------------------------------------------------------- optimizer
def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, per_param in state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ------------------------------------------------------------------------------------------- save / load
def _fsync_write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())




def save_checkpoint(run_dir: str | Path, step: int, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, config: dict[str, Any], sampler_states: list[dict[str, Any]],
                    rng_states: list[dict[str, Any]], epoch: int, weights: str = "all",
                    keep_last: int = 3, extra: dict[str, Any] | None = None) -> Path:
    """Write RUN/checkpoints/step_N atomically (per-rank lists are indexed by rank) and prune old ones."""
    root = Path(run_dir) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{final.name}"
    tmp.mkdir()

    tensors, aliases = _dedupe(weights_to_save(model, weights))
    save_file(tensors, str(tmp / "model.safetensors"),
              metadata={"format": FORMAT, "weights": weights, "aliases": json.dumps(aliases, sort_keys=True)})
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"), metadata={"format": FORMAT})
    rng_tensors: dict[str, torch.Tensor] = {}
    rng_json = []
    for rank, rng in enumerate(rng_states):
        rng_tensors[f"rank{rank}.torch"] = rng["torch"]
        for i, s in enumerate(rng.get("cuda", [])):
            rng_tensors[f"rank{rank}.cuda{i}"] = s
        rng_json.append({"python": rng["python"], "numpy": rng["numpy"], "cuda_devices": len(rng.get("cuda", []))})
    save_file(rng_tensors, str(tmp / "rng.safetensors"), metadata={"format": FORMAT})
    state = {"format": FORMAT, "step": int(step), "epoch": int(epoch), "weights": weights,
             "scheduler": jsonable(scheduler.state_dict()), "optimizer": opt_meta,
             "sampler": sampler_states, "rng": rng_json, "world_size": len(rng_states), **(extra or {})}
    _fsync_write(tmp / "state.json", json.dumps(state, sort_keys=True) + "\n")
    _fsync_write(tmp / "config.json", json.dumps({"format": FORMAT, "step": int(step), "weights": weights,
                                                  **config}, indent=2, sort_keys=True, default=str) + "\n")
    for f in tmp.iterdir():
        fsync_dir(f)
    if final.exists():                        # re-saving a step (a resumed run passing it again)
        old = root / f".tmp-old-{final.name}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)
    fsync_dir(root)
    if keep_last > 0:
        for old in list_checkpoints(root)[:-keep_last]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


@dataclass
class TrainingState:
    step: int
    epoch: int
    sampler: dict[str, Any] | None
    rng: dict[str, Any] | None


def load_training_state(ckpt: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any, rank: int = 0, world_size: int = 1) -> TrainingState:
    """Restore weights, optimizer and scheduler from `ckpt` (in place) and return this rank's sampler and
    RNG states (not applied: the trainer applies RNG last, after anything that might consume randomness)."""
    ckpt = resolve_checkpoint(ckpt)
    state = json.loads((ckpt / "state.json").read_text())
    if state.get("format") != FORMAT:
        raise ValueError(f"{ckpt}: not a {FORMAT} checkpoint")
    report = load_weights(model, ckpt)
    if state["weights"] == "all" and report.missing:
        raise ValueError(f"{ckpt}: model has tensors the checkpoint lacks: {report.missing[:5]}")
    if state["weights"] == "trainable":
        trainable = {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
        lacking = sorted(trainable - set(report.loaded))
        if lacking:
            raise ValueError(f"{ckpt}: trainable tensors missing from the checkpoint: {lacking[:5]}")
    with safe_open(str(ckpt / "optimizer.safetensors"), framework="pt", device="cpu") as f:
        opt_tensors = {k: f.get_tensor(k) for k in f.keys()}
    optimizer.load_state_dict(_unflatten_optimizer(opt_tensors, state["optimizer"]))
    # the schedule's shape comes from this run's config (so a run can be extended); its position from the file
    saved = dict(state["scheduler"])
    if "lr_lambdas" in saved:
        saved["lr_lambdas"] = [None] * len(saved["lr_lambdas"])
    scheduler.load_state_dict(saved)

    sampler = rng = None
    if state["world_size"] == world_size:
        sampler = state["sampler"][rank] if state["sampler"] else None
        with safe_open(str(ckpt / "rng.safetensors"), framework="pt", device="cpu") as f:
            saved = state["rng"][rank]
            rng = {"python": saved["python"], "numpy": saved["numpy"], "torch": f.get_tensor(f"rank{rank}.torch")}
            if saved["cuda_devices"]:
                rng["cuda"] = [f.get_tensor(f"rank{rank}.cuda{i}") for i in range(saved["cuda_devices"])]
    else:
        raise ValueError(f"{ckpt}: saved with {state['world_size']} ranks, resuming with {world_size}; exact "
                         "resume needs the same world size (use --init to start a new run from its weights)")
    return TrainingState(step=int(state["step"]), epoch=int(state["epoch"]), sampler=sampler, rng=rng)
