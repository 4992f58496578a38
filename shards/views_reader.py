"""A shard reader under new feature names: how a view's `--rename old=new` reaches every reader.

Merging datasets that name the same thing differently (a camera called `observation.images.top` in
one, `observation.images.egocentric` in the other) must not copy or rewrite a shard. The view records
the renames per input root; `RenamedReader` wraps that root's shard readers so training, the
dashboard and export see only the new names.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from shards.formats import EpisodeInfo, ShardInfo, ShardReader, VideoSpan


class RenamedReader:
    """`reader` with features renamed old -> new (`renames`); every other method passes through."""

    def __init__(self, reader: ShardReader, renames: dict[str, str]):
        self.inner = reader
        self.new = dict(renames)                          # old -> new
        self.old = {v: k for k, v in renames.items()}     # new -> old
        self.format = reader.format
        self.location = reader.location

    def _to_new(self, key: str) -> str:
        return self.new.get(key, key)

    def _to_old(self, key: str) -> str:
        if key in self.old:
            return self.old[key]
        if key in self.new:                   # an old name is hidden behind its new one
            return "\0renamed:" + key
        return key

    def info(self) -> ShardInfo:
        info = self.inner.info()
        return replace(info, features={self._to_new(k): v for k, v in info.features.items()},
                       cameras=tuple(replace(c, key=self._to_new(c.key)) for c in info.cameras))

    def episodes(self) -> list[EpisodeInfo]:
        return self.inner.episodes()

    def episode(self, index: int) -> EpisodeInfo:
        return self.inner.episode(index)

    def tasks(self) -> list[str]:
        return self.inner.tasks()

    def columns(self, keys: Sequence[str] | None = None, episode: int | None = None) -> dict[str, np.ndarray]:
        wanted = None if keys is None else [self._to_old(k) for k in keys]
        return {self._to_new(k): v for k, v in self.inner.columns(wanted, episode=episode).items()}

    def frames(self, camera: str, episode: int) -> np.ndarray:
        return self.inner.frames(self._to_old(camera), episode)

    def frame(self, camera: str, episode: int, index: int) -> np.ndarray:
        return self.inner.frame(self._to_old(camera), episode, index)

    def image(self, camera: str, episode: int, index: int, size: tuple[int, int] | None) -> np.ndarray:
        return self.inner.image(self._to_old(camera), episode, index, size)

    def video_file(self, camera: str, episode: int) -> VideoSpan | None:
        return self.inner.video_file(self._to_old(camera), episode)

    def shard_json(self) -> dict[str, Any] | None:
        data = self.inner.shard_json()
        if data is None:
            return None
        return {**data, "stats": {self._to_new(k): v for k, v in data.get("stats", {}).items()}}

    def native_stats(self) -> dict[str, dict[str, Any]]:
        return {self._to_new(k): v for k, v in self.inner.native_stats().items()}

    def close(self) -> None:
        self.inner.close()


def renamed(reader: ShardReader, renames: dict[str, str] | None) -> ShardReader:
    """`reader` itself when there is nothing to rename."""
    return RenamedReader(reader, renames) if renames else reader
