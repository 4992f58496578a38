"""`make_loader`: index + dataset + mixture sampler + DataLoader, with an exact resumable position."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from torch.utils.data import DataLoader

from training.data.config import DataConfig
from training.data.dataset import ChunkDataset, collate
from training.data.index import open_shards
from training.data.sampler import MixtureSampler
from training.data.tokens import TokenPlan


class MixtureLoader(DataLoader):
    """A DataLoader that tells its sampler how many samples reached the caller, so the sampler's
    `state_dict()` excludes batches that workers prefetched but training never saw."""

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        assert isinstance(sampler, MixtureSampler)
        sampler._external = True
        for batch in super().__iter__():
            sampler.mark_consumed(len(batch["frame_index"]))
            yield batch


def make_loader(paths: list[str | Path], cfg: DataConfig, batch_size: int, *, seed: int = 0, rank: int = 0,
                world_size: int = 1, num_workers: int = 0, weights: dict[str, float] | None = None,
                samples_per_epoch: int | None = None, pin_memory: bool = False,
                drop_last: bool = False, token_plan: TokenPlan | None = None) -> tuple[DataLoader, MixtureSampler]:
    """Loader over `paths` (output roots, catalogs, shard dirs, .zarr stores) for one DDP rank.
    Call `sampler.set_epoch(e)` each epoch; save `sampler.state_dict()` with checkpoints. `token_plan`:
    the run's token spaces (default: `training.data.tokens.plan_tokens` of the shards and the config)."""
    dataset = ChunkDataset(open_shards(paths, weights), cfg, token_plan)
    sampler = MixtureSampler(dataset, seed=seed, rank=rank, world_size=world_size,
                             samples_per_epoch=samples_per_epoch)
    loader = MixtureLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                           collate_fn=collate, pin_memory=pin_memory, drop_last=drop_last,
                           persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)
    return loader, sampler
