"""The Zarr v3 shard format (`shards/<id>.zarr`, `psi0.zarr/1`): layout names, write sink, reader.

Diffusion-policy replay-buffer convention: `data/<key>` arrays are frames concatenated over episodes
(vectors (T, D) float32, token ids int32, camera frames (T, H, W, 3) uint8 at the shard's video size);
`meta/episode_ends` is the cumulative int64 end index of each episode; root attrs hold the format tag,
fps, source, tasks, `episodes[i]` (source id, task, length, embodiment, `meta` = EpisodeMeta), features
(dtype, shape, dim names) and stats. Camera frames are chunked one frame per chunk (training reads
random frames: a chunk is the unit of decompression) and zarr v3 sharding packs `frames_per_chunk`
of them per object to keep file counts low; vectors use large chunks (8 chunks per shard object).
One writer per store, so shard-aligned concurrent writes never happen.

The reader also opens replay-buffer stores without psi0's attrs (bookkeeping columns are derived
from `meta/episode_ends`).
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from schemas.catalog import ShardRecord
from schemas.episode import canonical_json, column_to_numpy
from shards.formats.base import (BaseReader, Camera, EpisodeEntry, EpisodeInfo, ShardContents, ShardFormat,
                                 ShardInfo, parse_meta)
from shards.formats.zarr_frames import ShardedFrames
from shards.frames import VideoCache
from shards.location import Location
from shards.video import frame_to_rgb

NAME = "zarr"
SUFFIX = ".zarr"
ZARR_FORMAT = "psi0.zarr/1"
MARKER = "zarr.json"
DATA = "data"
EPISODE_ENDS = "meta/episode_ends"
FRAME_KEYS = ("episode_index", "frame_index", "task_index")
_SKIP = ("index",)
FRAME_CACHE = 4          # decompressed image chunks kept per reader (random training reads revisit them)


# ------------------------------------------------------------------------------------------ write sink
def create_array(group: Any, name: str, shape: tuple[int, ...], dtype: Any, frames_per_chunk: int) -> Any:
    """An empty array in this format's layout: images (T, H, W, 3) one frame per chunk and
    `frames_per_chunk` frames per shard object; other arrays in large row chunks, 8 per shard object."""
    from zarr.codecs import BloscCodec

    shape = tuple(int(v) for v in shape)
    if len(shape) == 4:
        chunks = (1,) + shape[1:]
        shards = (max(1, min(frames_per_chunk, shape[0])),) + shape[1:]
    else:
        rows = max(frames_per_chunk * 64, 1024)
        chunks = (min(rows, max(shape[0], 1)),) + shape[1:]
        shards = (chunks[0] * 8,) + shape[1:]
    return group.create_array(name, shape=shape, dtype=dtype, chunks=chunks, shards=shards,
                              compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
                              fill_value=0, overwrite=True)


class _EpisodeFrames:
    """One camera of one episode: RGB frames held until the episode is accepted."""

    def __init__(self, sink: "ZarrSink", key: str):
        self.sink, self.key = sink, key
        self.frames: list[np.ndarray] = []
        sink.pending[key] = self

    def add(self, frame: Any) -> None:
        self.frames.append(frame_to_rgb(frame))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.sink.pending.pop(self.key, None)


class ZarrSink:
    """Gathers one shard's columns and camera frames in memory; writes the store at `finish`."""

    def __init__(self, root: Path, config: Any = None, frames_per_chunk: int | None = None):
        self.root = root
        self.frames_per_chunk = int(frames_per_chunk if frames_per_chunk is not None
                                    else getattr(config, "zarr_frames_per_chunk", 32))
        self.columns: dict[str, list[np.ndarray]] = {}
        self.images: dict[str, list[np.ndarray]] = {}
        self.pending: dict[str, _EpisodeFrames] = {}
        self.episode_ends: list[int] = []
        self.total = 0
        self._last: tuple[list[str], list[str]] = ([], [])    # columns and cameras the last add_episode appended to

    def camera(self, key: str, episode: int, fps: float) -> _EpisodeFrames:
        return _EpisodeFrames(self, key)

    def add_episode(self, entry: EpisodeEntry, table: pa.Table) -> None:
        added = [name for name in table.column_names if name not in _SKIP]
        for name in added:
            self.columns.setdefault(name, []).append(column_to_numpy(table.column(name)))
        pending, self.pending = self.pending, {}
        for key, got in pending.items():
            self.images.setdefault(key, []).append(np.stack(got.frames) if got.frames
                                                   else np.zeros((0, 0, 0, 3), np.uint8))
        self.total += table.num_rows
        self.episode_ends.append(self.total)
        self._last = (added, list(pending))

    def drop_last_episode(self) -> None:
        added, cameras = self._last
        for name in added:
            self.columns[name].pop()
        for key in cameras:
            self.images[key].pop()
        self.episode_ends.pop()
        self.total = self.episode_ends[-1] if self.episode_ends else 0
        self._last = ([], [])

    def _array(self, group: Any, name: str, values: np.ndarray) -> None:
        arr = create_array(group, name, values.shape, values.dtype, self.frames_per_chunk)
        arr[...] = values

    def finish(self, contents: ShardContents) -> None:
        import zarr

        assert contents.features is not None
        store = zarr.storage.LocalStore(str(self.root))
        root = zarr.open_group(store, mode="w", zarr_format=3)
        data = root.create_group(DATA)
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
            "format": ZARR_FORMAT, "fps": contents.fps, "source": contents.source, "tasks": contents.tasks,
            "episodes": [{"source_id": e.meta.source_id, "task": e.meta.task, "length": e.length,
                          "embodiment": e.meta.embodiment, "meta": json.loads(canonical_json(e.meta.to_json()))}
                         for e in contents.episodes],
            "features": {k: {"dtype": s.dtype, "shape": list(s.shape), "names": list(s.names) if s.names else None}
                         for k, s in sorted(contents.features.items())},
            "stats": {k: s.to_lerobot() for k, s in contents.stats.items()},
        })


# ------------------------------------------------------------------------------------------ reader
def open_group(location: Location) -> Any:
    """The store's root group, read-only (zarr never writes through it)."""
    import zarr

    if location.is_url:
        store = zarr.storage.FsspecStore.from_url(location.uri, read_only=True)
    else:
        store = zarr.storage.LocalStore(location.uri, read_only=True)
    group = zarr.open_group(store, mode="r", zarr_format=3)
    tag = group.attrs.get("format")
    if tag is not None and tag != ZARR_FORMAT:
        raise ValueError(f"not a {ZARR_FORMAT} store (format={tag!r})")
    return group


class ZarrReader(BaseReader):
    """One Zarr v3 store, read-only (see module doc)."""

    format = NAME

    def __init__(self, location: Location, videos: VideoCache | None = None):
        super().__init__(location, videos)
        self.group = open_group(location)
        self.attrs: dict[str, Any] = self.group.attrs.asdict()
        self.data = self.group[DATA]
        self._ends: np.ndarray | None = None
        self._arrays: dict[str, Any] = {}
        self._chunks: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._direct: dict[str, ShardedFrames | None] = {}
        self._header: ShardInfo | None = None

    def ends(self) -> np.ndarray:
        if self._ends is None:
            self._ends = np.asarray(self.group[EPISODE_ENDS][...], np.int64)
        return self._ends

    def _array(self, key: str) -> Any:
        arr = self._arrays.get(key)
        if arr is None:
            arr = self._arrays[key] = self.data[key]
        return arr

    def info(self) -> ShardInfo:
        if self._header is None:
            ends = self.ends()
            cameras = []
            for key in sorted(self.data.array_keys()):
                arr = self._array(key)
                if arr.ndim == 4 and arr.shape[-1] == 3:
                    cameras.append(Camera(key, int(arr.shape[2]), int(arr.shape[1])))
            self._header = ShardInfo(fps=float(self.attrs.get("fps") or 0.0), frames=int(ends[-1]) if len(ends) else 0,
                                     episodes=len(ends), features=dict(self.attrs.get("features") or {}),
                                     cameras=tuple(cameras), robot_type=None)
        return self._header

    def tasks(self) -> list[str]:
        return list(self.attrs.get("tasks", []))

    def episodes(self) -> list[EpisodeInfo]:
        if self._episodes is None:
            ends = self.ends()
            listed = list(self.attrs.get("episodes") or [])
            out = []
            for i, end in enumerate(ends):
                start = int(ends[i - 1]) if i else 0
                e = listed[i] if i < len(listed) and isinstance(listed[i], dict) else {}
                length = int(end) - start
                record = {"episode_index": i, "length": int(e.get("length") or length), "tasks": [e.get("task", "")],
                          "embodiment": e.get("embodiment", ""), "source_id": e.get("source_id", "")}
                out.append(EpisodeInfo(index=i, start=start, length=length, task=str(e.get("task", "")),
                                       source_id=str(e.get("source_id") or f"{self.location.name}/{i}"),
                                       embodiment=str(e.get("embodiment", "")), meta=parse_meta(e.get("meta")),
                                       record=record))
            self._episodes = out
        return self._episodes

    def columns(self, keys: Sequence[str] | None = None, episode: int | None = None) -> dict[str, np.ndarray]:
        names = set(self.data.array_keys())
        if keys is None:
            wanted = [k for k in sorted(names) if self._array(k).ndim < 3]
        else:
            wanted = [k for k in keys if k in names or k in FRAME_KEYS]
        if episode is None:
            span = slice(None)
        else:
            e = self.episode(episode)
            span = slice(e.start, e.start + e.length)
        out: dict[str, np.ndarray] = {}
        for key in wanted:
            if key in names:
                out[key] = np.asarray(self._array(key)[span])
            else:                              # a replay buffer without psi0's bookkeeping columns
                out[key] = self._derived(key)[span]
        return out

    def _derived(self, key: str) -> np.ndarray:
        ends = self.ends()
        n = int(ends[-1]) if len(ends) else 0
        lengths = np.diff(np.concatenate([[0], ends]))
        if key == "episode_index":
            return np.repeat(np.arange(len(ends)), lengths)
        if key == "frame_index":
            return np.arange(n) - np.repeat(np.concatenate([[0], ends[:-1]]), lengths)
        tasks = self.tasks()
        per_ep = [tasks.index(e.task) if e.task in tasks else 0 for e in self.episodes()] or [0] * len(ends)
        return np.repeat(np.asarray(per_ep), lengths)

    def frames(self, camera: str, episode: int) -> np.ndarray:
        if camera not in {c.key for c in self.info().cameras}:
            raise KeyError(f"no camera {camera!r} in store")
        e = self.episode(episode)
        return np.asarray(self._array(camera)[e.start:e.start + e.length])

    def frame(self, camera: str, episode: int, index: int) -> np.ndarray:
        """One frame. Local stores in the writer's layout: one inner chunk read and decompressed directly
        (`zarr_frames`); otherwise through zarr, keeping the whole decompressed chunk for its neighbours."""
        row = self.episode(episode).start + int(index)
        if camera not in self._direct:
            local = None if self.location.is_url else self.location.path / DATA / camera
            self._direct[camera] = ShardedFrames.open(local) if local is not None and local.is_dir() else None
        direct = self._direct[camera]
        if direct is not None:
            return direct.frame(row)
        array = self._array(camera)
        rows = int(array.chunks[0])
        key = (camera, row // rows)
        block = self._chunks.get(key)
        if block is None:
            start = key[1] * rows
            block = np.asarray(array[start:start + rows])
            self._chunks[key] = block
            while len(self._chunks) > FRAME_CACHE:
                self._chunks.popitem(last=False)
        else:
            self._chunks.move_to_end(key)
        return block[row % rows]

    def native_stats(self) -> dict[str, dict[str, Any]]:
        return dict(self.attrs.get("stats") or {})


# ------------------------------------------------------------------------------------------ format
def recognizes(location: Location) -> bool:
    return location.join(MARKER).is_file()


def verify(location: Location, record: ShardRecord) -> list[str]:
    """Re-open the store with zarr-python and check its arrays against the record."""
    group = open_group(location)
    ends = group[EPISODE_ENDS][:]
    problems = []
    if len(ends) != record.episodes or (len(ends) and int(ends[-1]) != record.frames):
        problems.append(f"{record.path}: zarr has {len(ends)} episodes / {int(ends[-1]) if len(ends) else 0} frames")
    for key in group[DATA].array_keys():
        if group[DATA][key].shape[0] != record.frames:
            problems.append(f"{record.path}: data/{key} has {group[DATA][key].shape[0]} rows, expected {record.frames}")
    return problems


FORMAT = ShardFormat(NAME, SUFFIX, ZarrSink, ZarrReader, recognizes, verify)
