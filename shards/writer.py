"""Write one shard — in each configured format (LeRobot v3, Zarr v3, any registered one) — from a
stream of episodes.

Video is decoded once per episode and fanned out to every format's sink (`shards.formats`). An
episode that fails anywhere (decode error mid-stream, frame-count mismatch) is removed from every
sink and recorded as rejected; the shard goes on. Every input of the plan ends in `shard.json` as
ingested or rejected, so a resumed job can rebuild the catalog from committed shards alone.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from schemas.catalog import Ingested, ShardRecord
from schemas.episode import Episode, EpisodeError, Rejected, RejectReason, canonical_json, column_to_numpy
from schemas.names import SHARD_FILE, SHARDS_DIR
from schemas.stats import FeatureStats, merge_all
from shards import commit as commit_mod
from shards import formats
from shards.formats import EpisodeEntry, FrameSink, ShardContents, ShardSink
from shards.formats.base import SOURCE_TIMESTAMP
from shards.video import VideoConfig, iter_frames

log = logging.getLogger("psi0.shards")
__all__ = ["SOURCE_TIMESTAMP", "ShardConfig", "ShardResult", "is_committed", "shard_dir_name", "write_shard"]


@dataclass(frozen=True)
class ShardConfig:
    formats: tuple[str, ...] = ("lerobot",)
    video: VideoConfig = field(default_factory=VideoConfig)
    zarr_frames_per_chunk: int = 32

    def __post_init__(self) -> None:
        known = formats.names()
        bad = set(self.formats) - set(known)
        if bad or not self.formats:
            raise ValueError(f"formats must be a non-empty subset of {known}, got {self.formats}")

    def to_json(self) -> dict[str, Any]:
        return {"formats": list(self.formats), "video": asdict(self.video),
                "zarr_frames_per_chunk": self.zarr_frames_per_chunk}


@dataclass
class ShardResult:
    shard_id: str
    records: list[ShardRecord]
    fates: dict[str, dict[str, Any]]
    stats: dict[str, FeatureStats]


def shard_dir_name(shard_id: str, fmt: str) -> str:
    return formats.get(fmt).dir_name(shard_id)


def is_committed(out_root: Path, shard_id: str, formats_: Iterable[str]) -> bool:
    base = commit_mod.shards_dir(out_root)
    return all((base / shard_dir_name(shard_id, f) / SHARD_FILE).is_file() for f in formats_)


def write_shard(episodes: Iterable[Episode | Rejected], out_root: str | Path, shard_id: str,
                config: ShardConfig = ShardConfig()) -> ShardResult:
    """Write `episodes` (readers' output, rejects passed through) as shard `shard_id` and commit it."""
    out_root = Path(out_root)
    stages = {fmt: commit_mod.staging_path(out_root, shard_dir_name(shard_id, fmt)) for fmt in config.formats}
    sinks: dict[str, ShardSink] = {fmt: formats.get(fmt).sink(staging, config) for fmt, staging in stages.items()}
    contents = ShardContents()
    fates: dict[str, dict[str, Any]] = {}
    for item in episodes:
        if isinstance(item, Rejected):
            fates[item.source_id] = item.to_json()
            continue
        ep = item
        try:
            _check_compatible(contents, ep)
            index = len(contents.episodes)
            _write_videos(ep, index, sinks, config.video)
        except EpisodeError as err:
            fates[ep.meta.source_id] = err.rejected(ep.meta.source_id, "write").to_json()
            log.warning("rejected %s: %s", ep.meta.source_id, err.message)
            continue
        _append_episode(contents, ep, index, sinks)
        fates[ep.meta.source_id] = Ingested(shard_id, index, ep.length, ep.meta.task).to_json()
    contents.stats = _stats(contents)
    records = []
    for fmt, staging in stages.items():
        if contents.episodes:
            sinks[fmt].finish(contents)
        name = shard_dir_name(shard_id, fmt)
        record = ShardRecord(shard_id, fmt, f"{SHARDS_DIR}/{name}", contents.source, len(contents.episodes),
                             contents.frames, tuple(e.source_id for e in contents.episodes),
                             commit_mod.content_hash(staging))
        shard_json = {"record": record.to_json(), "fates": dict(sorted(fates.items())),
                      "stats": {k: s.to_json() for k, s in sorted(contents.stats.items())}, "config": config.to_json()}
        (staging / SHARD_FILE).write_text(canonical_json(shard_json))
        commit_mod.commit(staging, commit_mod.shards_dir(out_root) / name)
        records.append(record)
    return ShardResult(shard_id, records, fates, contents.stats)


def _check_compatible(acc: ShardContents, ep: Episode) -> None:
    if acc.features is None:
        acc.features, acc.fps, acc.source = dict(ep.features), ep.meta.fps, ep.meta.source
        return
    if set(ep.features) != set(acc.features) or any(ep.features[k].shape != acc.features[k].shape for k in ep.features):
        raise EpisodeError(RejectReason.SHAPE_MISMATCH, "episode's features differ from the shard's first episode",
                           features=sorted(ep.features))
    if ep.meta.fps != acc.fps:
        raise EpisodeError(RejectReason.FPS_MISMATCH, f"episode fps {ep.meta.fps} != shard fps {acc.fps}")


def _write_videos(ep: Episode, index: int, sinks: dict[str, ShardSink], cfg: VideoConfig) -> None:
    """Decode each camera once and hand every frame to each format's sink; on any failure every sink
    forgets the whole episode."""
    opened: list[FrameSink] = []
    try:
        for key, ref in sorted(ep.videos.items()):
            targets = [t for t in (sink.camera(key, index, ep.meta.fps) for sink in sinks.values()) if t is not None]
            opened.extend(targets)
            count = 0
            for frame in iter_frames(ref, cfg.width, cfg.height, cfg.pix_fmt, threaded=cfg.decode_thread):
                for target in targets:
                    target.add(frame)
                count += 1
            if count != ep.length:
                raise EpisodeError(RejectReason.FRAME_COUNT_MISMATCH,
                                   f"{key}: decoded {count} frames, episode has {ep.length}", decoded=count,
                                   poses=ep.length)
            for target in targets:
                target.close()
    except BaseException:
        for target in opened:
            target.abort()
        raise


def _append_episode(acc: ShardContents, ep: Episode, index: int, sinks: dict[str, ShardSink]) -> None:
    n = ep.length
    task_index = acc.task_index(ep.meta.task)
    cols = {key: ep.frames.column(key) for key in ep.features if ep.features[key].dtype != "video"}
    # LeRobot locates video frames by `timestamp`, so it must be frame_index / fps exactly; the
    # source's own clock (jittered for recorded robots) is kept beside it.
    cols["timestamp"] = pa.array((np.arange(n) / ep.meta.fps).astype(np.float32), pa.float32())
    cols[SOURCE_TIMESTAMP] = ep.frames.column("timestamp")
    table = pa.table(cols)
    table = table.append_column("frame_index", pa.array(np.arange(n), pa.int64()))
    table = table.append_column("episode_index", pa.array(np.full(n, index), pa.int64()))
    table = table.append_column("index", pa.array(np.arange(acc.frames, acc.frames + n), pa.int64()))
    table = table.append_column("task_index", pa.array(np.full(n, task_index), pa.int64()))
    entry = EpisodeEntry(index=index, start=acc.frames, length=n, task_index=task_index,
                         cameras=tuple(sorted(ep.videos)), meta=ep.meta)
    acc.tables.append(table)
    acc.episodes.append(entry)
    acc.frames += n
    acc.embodiments.add(ep.meta.embodiment)
    for sink in sinks.values():
        sink.add_episode(entry, table)


def _stats(acc: ShardContents) -> dict[str, FeatureStats]:
    if not acc.tables:
        return {}
    table = pa.concat_tables(acc.tables)
    parts = {}
    for name in table.column_names:
        if name in ("episode_index", "index", "task_index"):
            continue
        parts[name] = FeatureStats.from_values(column_to_numpy(table.column(name)).astype(np.float64))
    return merge_all([parts])
