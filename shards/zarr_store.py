"""Zarr v3 store in the diffusion-policy replay-buffer convention.

`data/<key>` arrays are frames concatenated over episodes (vectors (T, D) float32, token ids int32,
camera frames (T, H, W, 3) uint8 at the shard's video size); `meta/episode_ends` is the cumulative
int64 end index of each episode. Camera frames are chunked one frame per chunk (training reads
random frames: a chunk is the unit of decompression) and zarr v3 sharding packs `frames_per_chunk`
of them per object to keep file counts low; vectors use large chunks (8 chunks per shard object). One writer per store, so
shard-aligned concurrent writes never happen.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import zarr
from zarr.codecs import BloscCodec

from schemas.episode import column_to_numpy

_SKIP = ("index",)


class ZarrSink:
    def __init__(self, root: Path, frames_per_chunk: int = 32):
        self.root = root
        self.frames_per_chunk = frames_per_chunk
        self.columns: dict[str, list[np.ndarray]] = {}
        self.images: dict[str, list[np.ndarray]] = {}
        self.episode_ends: list[int] = []
        self.total = 0

    def append(self, table: pa.Table, frames_by_key: dict[str, list[np.ndarray]]) -> None:
        for name in table.column_names:
            if name in _SKIP:
                continue
            self.columns.setdefault(name, []).append(column_to_numpy(table.column(name)))
        for key, frames in frames_by_key.items():
            self.images.setdefault(key, []).append(np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8))
        self.total += table.num_rows
        self.episode_ends.append(self.total)

    def _array(self, group: zarr.Group, name: str, values: np.ndarray) -> None:
        if values.ndim == 4:  # images: one frame per chunk, frames_per_chunk frames per shard object
            chunks = (1,) + values.shape[1:]
            shards = (max(1, min(self.frames_per_chunk, len(values))),) + values.shape[1:]
        else:
            rows = max(self.frames_per_chunk * 64, 1024)
            chunks = (min(rows, max(len(values), 1)),) + values.shape[1:]
            shards = (chunks[0] * 8,) + values.shape[1:]
        arr = group.create_array(name, shape=values.shape, dtype=values.dtype, chunks=chunks, shards=shards,
                                 compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
                                 fill_value=0, overwrite=True)
        arr[...] = values

    def finish(self, acc: Any, stats: dict[str, Any]) -> None:
        store = zarr.storage.LocalStore(str(self.root))
        root = zarr.open_group(store, mode="w", zarr_format=3)
        data = root.create_group("data")
        meta = root.create_group("meta")
        for name, parts in self.columns.items():
            values = np.concatenate(parts)
            if values.dtype == np.float64:
                values = values.astype(np.float32)
            self._array(data, name, values)
        for key, parts in self.images.items():
            self._array(data, key, np.concatenate(parts))
        self._array(meta, "episode_ends", np.asarray(self.episode_ends, np.int64))
        root.attrs.update({
            "format": "psi0.zarr/1", "fps": acc.fps, "source": acc.source, "tasks": acc.tasks,
            "episodes": [{"source_id": r["psi0/source_id"], "task": r["tasks"][0], "length": r["length"],
                          "embodiment": r["psi0/embodiment"]} for r in acc.episode_rows],
            "features": {k: {"dtype": s.dtype, "shape": list(s.shape), "names": list(s.names) if s.names else None}
                         for k, s in sorted(acc.features.items())},
            "stats": stats,
        })
