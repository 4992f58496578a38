"""Training data: torch datasets that read psi0 shards directly through `shards.reader` (LeRobot v3 dirs,
Zarr v3 stores or any registered format; local paths or s3:// URLs).

    loader, sampler = make_loader(["out/egodex", "out/humanoid_everyday"], DataConfig(), batch_size=32)
    for epoch in range(n):
        sampler.set_epoch(epoch)
        for batch in loader: ...

See docs/training.md ("Data").
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"DataConfig": "config", "ChunkDataset": "dataset", "collate": "dataset", "ShardEntry": "index",
            "ShardIndex": "index", "open_shards": "index", "make_loader": "loader", "MixtureSampler": "sampler"}
"""Loaded on first use: `train --help` and the torch-free submodules (config, representation) must not pull
in torch through this package."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'training.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"training.data.{_EXPORTS[name]}"), name)
