"""Training data: torch datasets that read psi0 shards directly through `shards.reader` (LeRobot v3 dirs,
Zarr v3 stores or any registered format; local paths or s3:// URLs).

    loader, sampler = make_loader(["out/egodex", "out/humanoid_everyday"], DataConfig(), batch_size=32)
    for epoch in range(n):
        sampler.set_epoch(epoch)
        for batch in loader: ...

See docs/training.md ("Data").
"""
from training.data.config import DataConfig
from training.data.dataset import ChunkDataset, collate
from training.data.index import ShardEntry, ShardIndex, open_shards
from training.data.loader import make_loader
from training.data.sampler import MixtureSampler

__all__ = ["ChunkDataset", "DataConfig", "MixtureSampler", "ShardEntry", "ShardIndex", "collate", "make_loader",
           "open_shards"]
