"""Random single-frame reads from a local, sharded Zarr v3 image array without zarr-python's event loop.

The writer stores camera frames one frame per chunk, packed `frames_per_chunk` per shard object
(`sharding_indexed`, index at the end), so one random frame costs one small read and one blosc
decompression. Through zarr-python each `array[i]` also crosses to its asyncio thread and back (two
thread wake-ups, ~2 ms on a busy 2-core host: more than the decompression), which made Zarr random
reads slower than decoding AV1. This reader reads the shard index once per shard object and
decompresses exactly the one inner chunk. It accepts only the layout it understands (checked from
the array's `zarr.json`) and otherwise returns None, and the caller keeps using zarr.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

_EMPTY = 2**64 - 1      # sharding index entry of a chunk never written (read as fill_value)


class ShardedFrames:
    """Frame `row` of one local (T, H, W, C) array chunked (1, H, W, C) inside (S, H, W, C) shard objects."""

    def __init__(self, array_dir: Path, shape: tuple[int, ...], dtype: np.dtype, shard_rows: int,
                 blosc: bool, fill_value: Any):
        self.dir, self.shape, self.dtype = array_dir, shape, dtype
        self.shard_rows, self.blosc, self.fill_value = shard_rows, blosc, fill_value
        self.rest = "/".join("0" for _ in shape[1:])
        self.indexes: dict[int, np.ndarray] = {}
        self._codec = None

    @classmethod
    def open(cls, array_dir: Path) -> "ShardedFrames | None":
        """The reader for `array_dir`, or None when its layout is not the one this module reads."""
        try:
            meta = json.loads((array_dir / "zarr.json").read_text())
            shape = tuple(int(x) for x in meta["shape"])
            outer = [int(x) for x in meta["chunk_grid"]["configuration"]["chunk_shape"]]
            key_enc = meta.get("chunk_key_encoding", {})
            codecs = meta["codecs"]
            if (meta.get("zarr_format") != 3 or meta["chunk_grid"]["name"] != "regular" or len(shape) < 2
                    or key_enc.get("name") != "default" or key_enc.get("configuration", {}).get("separator") != "/"
                    or len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed"
                    or outer[1:] != list(shape[1:]) or meta.get("storage_transformers")):
                return None
            conf = codecs[0]["configuration"]
            inner = [int(x) for x in conf["chunk_shape"]]
            names = [c["name"] for c in conf["codecs"]]
            index_codecs = [c["name"] for c in conf["index_codecs"]]
            endian = conf["codecs"][0].get("configuration", {}).get("endian", "little")
            if (inner != [1, *shape[1:]] or conf.get("index_location", "end") != "end"
                    or names not in (["bytes"], ["bytes", "blosc"]) or index_codecs != ["bytes", "crc32c"]
                    or (endian != "little" and np.dtype(meta["data_type"]).itemsize > 1)):
                return None
            return cls(array_dir, shape, np.dtype(meta["data_type"]), outer[0], names[-1] == "blosc",
                       meta.get("fill_value", 0))
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None

    def _index(self, shard: int, fh: Any) -> np.ndarray:
        index = self.indexes.get(shard)
        if index is None:
            size = self.shard_rows * 16 + 4                     # (offset, nbytes) uint64 per chunk + crc32c
            fh.seek(-size, 2)
            index = np.frombuffer(fh.read(size)[:-4], "<u8").reshape(self.shard_rows, 2)
            self.indexes[shard] = index
        return index

    def frame(self, row: int) -> np.ndarray:
        if not 0 <= row < self.shape[0]:
            raise IndexError(f"frame {row} out of range (0..{self.shape[0] - 1})")
        shard, inner = divmod(row, self.shard_rows)
        path = self.dir / "c" / str(shard) / self.rest
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return np.full(self.shape[1:], self.fill_value, self.dtype)
        with fh:
            offset, nbytes = (int(x) for x in self._index(shard, fh)[inner])
            if offset == _EMPTY and nbytes == _EMPTY:
                return np.full(self.shape[1:], self.fill_value, self.dtype)
            fh.seek(offset)
            data = fh.read(nbytes)
        if self.blosc:
            if self._codec is None:
                from numcodecs import Blosc

                self._codec = Blosc()
            data = self._codec.decode(data)
        return np.frombuffer(data, self.dtype).reshape(self.shape[1:])
