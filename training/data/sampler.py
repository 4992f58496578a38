"""`MixtureSampler`: per-source weighted draws, deterministic in (seed, epoch), disjoint across
DDP ranks, resumable mid-epoch — in O(1) memory however many frames there are.

An epoch is cut into blocks of ~`BLOCK` positions. Source s has floor(t * w_s) draws before
virtual time t (t = block x BLOCK), so its quota over any span is within one of its share; a
block's draws are shuffled by (seed, epoch, block). The k-th draw
of a source is frame perm(k mod n) of that source, where perm is a keyed Feistel permutation
(new key each pass over the source): with default weights and samples_per_epoch = len(dataset)
every frame is drawn exactly once per epoch. Any position is computable directly, so resuming
costs nothing and rank r simply takes positions r, r + world_size, ...
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
from torch.utils.data import Sampler

BLOCK = 4096


def _mix(x: np.ndarray, key: np.uint64) -> np.ndarray:
    """splitmix64 finalizer of x ^ key (uint64 arrays, wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (x ^ key) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def feistel_permute(x: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """A bijection of [0, n) (4-round Feistel over 2^(2h) >= n, cycle-walking back into range)."""
    if n <= 1:
        return np.zeros_like(x)
    half = max(1, math.ceil(math.ceil(math.log2(n)) / 2))
    mask = np.uint64((1 << half) - 1)
    out = x.astype(np.uint64)
    todo = np.ones(len(out), bool)
    while todo.any():
        v = out[todo]
        left, right = v >> np.uint64(half), v & mask
        for key in keys:
            left, right = right, left ^ (_mix(right, key) & mask)
        v = (left << np.uint64(half)) | right
        out[todo] = v
        todo = out >= np.uint64(n)
    return out.astype(np.int64)


class MixtureSampler(Sampler[int]):
    """Indices of a `ChunkDataset` drawn by per-source weight (see module doc).

    `position` counts samples already delivered in the current epoch on this rank. With
    `make_loader` it advances as batches reach the training loop (not when workers prefetch), so
    `state_dict()` is always exact; used on its own it counts indices handed out.
    """

    def __init__(self, dataset: Any, seed: int = 0, rank: int = 0, world_size: int = 1,
                 samples_per_epoch: int | None = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        weights = dataset.index.weights
        self.sources = [s for s in sorted(weights) if weights[s] > 0]
        self.weights = np.array([weights[s] for s in self.sources], np.float64)
        self.weights /= self.weights.sum()
        # each source's frames as runs of global dataset indices
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        for src in self.sources:
            shards = [i for i, s in enumerate(dataset.shards) if s.source == src]
            starts = np.asarray([dataset.offsets[i] for i in shards], np.int64)
            sizes = np.asarray([dataset.shards[i].frames for i in shards], np.int64)
            self._runs.append((starts, np.concatenate([[0], np.cumsum(sizes)])))
        self.source_frames = np.array([r[1][-1] for r in self._runs], np.int64)
        total = int(samples_per_epoch if samples_per_epoch is not None else len(dataset))
        if total < 1:
            raise ValueError("samples_per_epoch must be >= 1")
        self.total = total
        # Every source gets floor(total * weight) draws (exactly its frame count with default weights and
        # total = len(dataset)); ranks split the epoch's positions, the last few wrapping around.
        self.epoch_length = int(self._quota(total).sum())
        if self.epoch_length < 1:
            raise ValueError(f"samples_per_epoch={total} gives no source a whole draw (weights {weights})")
        self.per_rank = math.ceil(self.epoch_length / self.world_size)
        self.epoch = 0
        self._start = 0            # where the next __iter__ begins (set by load_state_dict)
        self._position = 0
        self._external = False     # position advanced by the loader (make_loader) instead of on yield
        self._block_cache: tuple[tuple[int, int], np.ndarray] | None = None

    # --- the pure function (epoch, position) -> dataset index ------------------------------------
    def _quota(self, t: np.ndarray | int) -> np.ndarray:
        """Draws of each source among blocks before virtual time t (floor(t * w): monotone in t)."""
        t = np.minimum(np.asarray(t, np.int64), self.total)
        return np.floor(t[..., None] * self.weights + 1e-9).astype(np.int64)

    def _block_start(self, b: np.ndarray | int) -> np.ndarray:
        return self._quota(np.asarray(b, np.int64) * BLOCK).sum(axis=-1)

    def _source_frames(self, s: int, k: np.ndarray, epoch: int) -> np.ndarray:
        """Global dataset index of the k-th draws of source s (a new permutation every pass)."""
        n = int(self.source_frames[s])
        passes, local = np.divmod(k, n)
        out = np.empty(len(k), np.int64)
        for p in np.unique(passes):
            keys = np.random.SeedSequence([self.seed, epoch, s, int(p)]).generate_state(4, np.uint64)
            sel = passes == p
            out[sel] = feistel_permute(local[sel], n, keys)
        starts, cum = self._runs[s]
        run = np.searchsorted(cum, out, side="right") - 1
        return starts[run] + (out - cum[run])

    def _block(self, epoch: int, b: int) -> np.ndarray:
        """Dataset indices of block b: each source's quota for the block, shuffled."""
        if self._block_cache is not None and self._block_cache[0] == (epoch, b):
            return self._block_cache[1]
        before = self._quota(b * BLOCK)
        counts = self._quota((b + 1) * BLOCK) - before
        order = np.repeat(np.arange(len(self.sources)), counts)
        np.random.default_rng([self.seed, epoch, b, 0x5EED]).shuffle(order)
        out = np.empty(len(order), np.int64)
        for s in range(len(self.sources)):
            sel = order == s
            if sel.any():
                out[sel] = self._source_frames(s, before[s] + np.arange(int(counts[s])), epoch)
        self._block_cache = ((epoch, b), out)
        return out

    def global_indices(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """Dataset indices at epoch positions (taken modulo the epoch length)."""
        g = np.asarray(positions, np.int64) % self.epoch_length
        b = g // BLOCK
        while True:                       # block starts lag b * BLOCK by < #sources: step forward
            nxt = self._block_start(b + 1) <= g
            if not nxt.any():
                break
            b = b + nxt
        starts = self._block_start(b)
        out = np.empty(len(g), np.int64)
        for blk in np.unique(b):
            sel = b == blk
            out[sel] = self._block(epoch, int(blk))[g[sel] - starts[sel]]
        return out

    def indices(self, epoch: int, start: int = 0, stop: int | None = None) -> Iterator[int]:
        """This rank's indices for `epoch`, rank positions [start, stop)."""
        stop = self.per_rank if stop is None else min(stop, self.per_rank)
        step = max(1, BLOCK // self.world_size)
        for pos in range(start, stop, step):
            ranks_pos = np.arange(pos, min(pos + step, stop), dtype=np.int64)
            yield from self.global_indices(epoch, self.rank + ranks_pos * self.world_size).tolist()

    # --- Sampler protocol + resume ----------------------------------------------------------------
    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        start, self._start = self._start, 0
        self._position = start
        for i in self.indices(self.epoch, start):
            if not self._external:
                self._position += 1
            yield i

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch. Setting the epoch a restored state is in keeps its position."""
        if int(epoch) != self.epoch:
            self.epoch, self._start, self._position = int(epoch), 0, 0

    def mark_consumed(self, n: int) -> None:
        """The training loop received `n` more samples (called by the loader from `make_loader`)."""
        self._position += int(n)

    @property
    def position(self) -> int:
        return self._position

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self._position, "seed": self.seed, "rank": self.rank,
                "world_size": self.world_size, "samples_per_epoch": self.total,
                "weights": dict(zip(self.sources, self.weights.tolist()))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next indices are exactly those an uninterrupted run would have produced."""
        for key in ("seed", "world_size", "samples_per_epoch"):
            if key in state and state[key] != getattr(self, "total" if key == "samples_per_epoch" else key):
                raise ValueError(f"cannot resume: {key} was {state[key]}, is now "
                                 f"{getattr(self, 'total' if key == 'samples_per_epoch' else key)}")
        if "weights" in state and state["weights"] != dict(zip(self.sources, self.weights.tolist())):
            raise ValueError(f"cannot resume: source weights changed ({state['weights']})")
        self.epoch = int(state["epoch"])
        self._start = self._position = int(state["position"])
