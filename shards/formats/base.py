"""What a shard format is: a write sink and a reader behind two small protocols, plus the records
they exchange with the rest of psi0.

Writing: `shards.writer` decodes each camera of each episode once and hands every frame to each
format's `FrameSink` (`ShardSink.camera`), then the episode's frame table (`ShardSink.add_episode`),
and at the end everything it gathered (`ShardSink.finish`). The writer owns staging, rejects,
stats, `shard.json` and the atomic commit; a sink only lays bytes out in its folder.

Reading: a `ShardReader` answers for one shard folder (local or URL): its `info`, its `episodes`,
per-frame `columns` as numpy, and camera `frames`. `BaseReader` derives the rest (single frames,
channels-first images at a size, `shard.json`), so a new format implements four methods.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np
import pyarrow as pa

from schemas.catalog import ShardRecord
from schemas.episode import EpisodeMeta, FeatureSpec
from schemas.names import SHARD_FILE
from schemas.stats import FeatureStats
from shards.location import Location

if TYPE_CHECKING:
    from shards.frames import VideoCache

SOURCE_TIMESTAMP = "timestamp.source"
"""Stored frame tables keep `timestamp` = frame_index / fps (LeRobot locates video frames by it) and the
source's own clock (jittered for recorded robots) under this name."""

# ------------------------------------------------------------------------------------------ writing
@dataclass(frozen=True)
class EpisodeEntry:
    """One episode as the writer placed it in the shard (format-neutral)."""

    index: int                  # episode index within the shard
    start: int                  # its first row in the shard's frame order
    length: int
    task_index: int
    cameras: tuple[str, ...]    # video keys, sorted
    meta: EpisodeMeta

    @property
    def source_id(self) -> str:
        return self.meta.source_id


@dataclass
class ShardContents:
    """Everything the writer gathered for one shard; each sink's `finish` lays out its part."""

    episodes: list[EpisodeEntry] = field(default_factory=list)
    tables: list[pa.Table] = field(default_factory=list)      # per episode: the stored frame table
    tasks: list[str] = field(default_factory=list)
    features: dict[str, FeatureSpec] | None = None
    fps: float | None = None
    frames: int = 0
    source: str = ""
    embodiments: set[str] = field(default_factory=set)
    stats: dict[str, FeatureStats] = field(default_factory=dict)

    def task_index(self, task: str) -> int:
        if task not in self.tasks:
            self.tasks.append(task)
        return self.tasks.index(task)

    def drop_last(self) -> None:
        """Undo the last accepted episode: its entry, table, frames, and its task if no other episode has it."""
        entry = self.episodes.pop()
        self.tables.pop()
        self.frames -= entry.length
        if entry.task_index == len(self.tasks) - 1 and all(e.task_index != entry.task_index for e in self.episodes):
            self.tasks.pop()
        self.embodiments = {e.meta.embodiment for e in self.episodes}
        if not self.episodes:
            self.features = self.fps = None

    @property
    def robot_type(self) -> str:
        return sorted(self.embodiments)[0] if len(self.embodiments) == 1 else "mixed"


class FrameSink(Protocol):
    """Receives one camera's frames of one episode (PyAV frames at the shard's video size)."""

    def add(self, frame: Any) -> None: ...

    def close(self) -> None:
        """All frames delivered and counted."""

    def abort(self) -> None:
        """Forget this camera's frames of this episode (also after `close`: the episode was rejected)."""


class ShardSink(Protocol):
    """The write half of a format, for one shard being staged in one folder."""

    def camera(self, key: str, episode: int, fps: float) -> FrameSink | None:
        """Where camera `key`'s frames of episode `episode` go (None: the format keeps no images)."""

    def add_episode(self, entry: EpisodeEntry, table: pa.Table) -> None:
        """The episode's frame table; called once all its frames are delivered (for the shard's last episode,
        possibly while its cameras are still closing: see `drop_last_episode`)."""

    def finish(self, contents: ShardContents) -> None:
        """Write the shard's files (called only when at least one episode was accepted; may be called again,
        after `drop_last_episode`: it then rewrites them)."""

    # Optional: `drop_last_episode(self) -> None`, undo the last `add_episode`. A sink that has it lets the
    # writer build the shard's files while the last episode's videos are still closing (an encoder drains
    # its last frames for ~50 ms); if one of them then fails to close, the writer drops the episode from
    # every sink and calls `finish` again. Without it, the writer closes the last episode first.


# ------------------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class Camera:
    key: str
    width: int
    height: int


@dataclass(frozen=True)
class ShardInfo:
    """A shard's header: enough to plan reads without touching per-frame data."""

    fps: float
    frames: int
    episodes: int
    features: dict[str, dict[str, Any]]       # LeRobot style: key -> {"dtype", "shape", "names"}
    cameras: tuple[Camera, ...]
    robot_type: str | None = None


@dataclass(frozen=True)
class EpisodeInfo:
    """One episode of a shard."""

    index: int                   # episode index within the shard
    start: int                   # first row in the shard's frame order (`columns()` rows)
    length: int
    task: str
    source_id: str
    embodiment: str
    meta: dict[str, Any]         # EpisodeMeta as JSON (quality scores, extra, ...); {} if the shard has none
    record: dict[str, Any]       # the format's own per-episode record, for display


@dataclass(frozen=True)
class VideoSpan:
    """An encoded video file holding one episode's frames of one camera, from `start` seconds."""

    location: Location
    start: float
    end: float | None


class ShardReader(Protocol):
    """The read half of a format: one shard folder, opened read-only."""

    format: str
    location: Location

    def info(self) -> ShardInfo: ...

    def episodes(self) -> list[EpisodeInfo]: ...

    def tasks(self) -> list[str]:
        """Task strings by the `task_index` column's values."""

    def columns(self, keys: Sequence[str] | None = None, episode: int | None = None) -> dict[str, np.ndarray]:
        """Per-frame values as stored ((N,) scalars, (N, D) vectors) of the `keys` the shard has (None:
        every non-image column), over the whole shard in frame order or over one episode."""

    def frames(self, camera: str, episode: int) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB frames of one camera of one episode."""

    def frame(self, camera: str, episode: int, index: int) -> np.ndarray: ...

    def image(self, camera: str, episode: int, index: int, size: tuple[int, int] | None) -> np.ndarray: ...

    def episode(self, index: int) -> EpisodeInfo: ...

    def video_file(self, camera: str, episode: int) -> VideoSpan | None: ...

    def shard_json(self) -> dict[str, Any] | None: ...

    def native_stats(self) -> dict[str, dict[str, Any]]: ...

    def close(self) -> None: ...


class BaseReader:
    """Defaults for a `ShardReader`: subclasses implement `info`, `episodes`, `columns`, `frames`.

    Opening checks the shard's files against the hashes in its `shard.json` (`shards.integrity`: once per
    process, or trusting a `psi0 validate --stamp`), so no consumer reads a modified shard unknowingly."""

    format = ""

    def __init__(self, location: Location, videos: "VideoCache | None" = None):
        from shards import integrity

        self.verified = integrity.verify_shard(location)   # ShardIntegrityError names the file that changed
        self.location = location
        self.videos = videos
        self._episodes: list[EpisodeInfo] | None = None
        self._by_index: dict[int, EpisodeInfo] | None = None

    def info(self) -> ShardInfo:
        raise NotImplementedError

    def episodes(self) -> list[EpisodeInfo]:
        raise NotImplementedError

    def columns(self, keys: Sequence[str] | None = None, episode: int | None = None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def frames(self, camera: str, episode: int) -> np.ndarray:
        raise NotImplementedError

    def tasks(self) -> list[str]:
        """Task strings by `task_index` (default: the episodes' tasks in first-seen order)."""
        return list(dict.fromkeys(e.task for e in self.episodes()))

    def episode(self, index: int) -> EpisodeInfo:
        """Episode `index`; KeyError when the shard has none by that index."""
        if self._by_index is None:
            self._by_index = {e.index: e for e in self.episodes()}
        try:
            return self._by_index[int(index)]
        except KeyError:
            raise KeyError(f"episode {index} not in shard {self.location.name}") from None

    def frame(self, camera: str, episode: int, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame `index` of an episode."""
        return self.frames(camera, episode)[index]

    def image(self, camera: str, episode: int, index: int, size: tuple[int, int] | None) -> np.ndarray:
        """(3, h, w) uint8 frame resized to `size` (None: as stored) — what a training sample holds."""
        from shards.frames import resize_hwc

        return resize_hwc(self.frame(camera, episode, index), size)

    def video_file(self, camera: str, episode: int) -> VideoSpan | None:
        """The encoded file a player can stream for this camera and episode (None: frames only)."""
        return None

    def shard_json(self) -> dict[str, Any] | None:
        """The shard's `shard.json` (record, fates, mergeable stats, config), None when it has none."""
        marker = self.location.join(SHARD_FILE)
        return marker.read_json() if marker.is_file() else None

    def native_stats(self) -> dict[str, dict[str, Any]]:
        """LeRobot-style stats the format itself stores (for shards without `shard.json`)."""
        return {}

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ShardFormat:
    """A registered shard format (see `shards.formats.register`)."""

    name: str
    suffix: str                                               # shard folder = shard_id + suffix
    sink: Callable[[Path, Any], ShardSink]                    # (staging folder, ShardConfig) -> sink
    open: Callable[..., ShardReader]                          # (Location, videos=VideoCache | None) -> reader
    recognizes: Callable[[Location], bool]                    # is this folder a shard of this format?
    verify: Callable[[Location, ShardRecord], list[str]] | None = None   # independent re-open (`psi0 validate`)

    def dir_name(self, shard_id: str) -> str:
        return shard_id + self.suffix

    def shard_id(self, dir_name: str) -> str:
        return dir_name[:-len(self.suffix)] if self.suffix and dir_name.endswith(self.suffix) else dir_name


def parse_meta(value: Any) -> dict[str, Any]:
    """EpisodeMeta stored as canonical JSON text (LeRobot column) or as an object (Zarr attrs)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"error": "psi0/meta is not valid JSON"}
        return parsed if isinstance(parsed, dict) else {}
    return {}
