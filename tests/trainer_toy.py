"""A toy model + data with the same interfaces as Psi0Policy / make_loader, so the training loop's
guarantees (exact resume, DDP, logging) are tested fast and independently of the real model.

The model draws noise from the global torch RNG in every loss and has dropout, so a resume that
forgot any RNG state, optimizer moment or data position would not be bit-identical."""
from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler


class ToyPolicy(nn.Module):
    def __init__(self, dim: int = 8, hidden: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, dim))
        self.frozen_head = nn.Linear(dim, 2)        # never in a parameter group: must stay untouched

    def loss(self, batch: dict[str, torch.Tensor], stage: int) -> tuple[torch.Tensor, dict[str, Any]]:
        x, y = batch["x"], batch["y"]
        pred = self.body(x + 0.01 * torch.randn_like(x))
        err = (pred.float() - y).abs().mean().detach()
        return F.mse_loss(pred.float(), y), {"mae": err}

    def trainable_parameter_groups(self, stage: int, lrs: dict[str, float]) -> list[dict[str, Any]]:
        first, rest = list(self.body[0].parameters()), list(self.body[3].parameters())
        return [{"name": "in", "params": first, "lr": lrs.get("in", 1e-2)},
                {"name": "out", "params": rest, "lr": lrs.get("out", 5e-3)}]


class ToyData(Dataset):
    def __init__(self, n: int = 40, dim: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        w = torch.randn(dim, dim, generator=g) / dim ** 0.5
        self.y = torch.tanh(self.x @ w)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class ToySampler(Sampler[int]):
    """Seeded per-epoch permutation, split across ranks, resumable at any position (num_workers=0)."""

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world_size
        self.epoch, self.position, self._start = 0, 0, 0

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))

    def __iter__(self) -> Iterator[int]:
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch))
        mine = perm[self.rank::self.world].tolist()
        start, self._start = self._start, 0
        self.position = start
        for i in mine[start:]:
            self.position += 1
            yield i

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.position, self._start = epoch, 0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position, self._start = state["epoch"], state["position"], state["position"]


def toy_setup(seed: int = 0, batch_size: int = 8, n: int = 40, rank: int = 0, world_size: int = 1):
    torch.manual_seed(seed)
    model = ToyPolicy()
    data = ToyData(n)
    sampler = ToySampler(n, seed=seed, rank=rank, world_size=world_size)
    return model, DataLoader(data, batch_size=batch_size, sampler=sampler), sampler


class CrashAfter:
    """Wraps a loader; raises after `n` batches in total -- a process killed mid-run."""

    def __init__(self, loader: DataLoader, n: int):
        self.loader, self.left = loader, n

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            if self.left == 0:
                raise KeyboardInterrupt("injected crash")
            self.left -= 1
            yield batch
