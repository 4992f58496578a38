"""Write one shard — LeRobot v3 dataset and/or Zarr v3 store — from a stream of episodes.

Video is decoded once per episode and fanned out to both sinks. An episode that fails anywhere
(decode error mid-stream, frame-count mismatch) is removed from both sinks and recorded as
rejected; the shard goes on. Every input of the plan ends in `shard.json` as ingested or rejected,
so a resumed job can rebuild the catalog from committed shards alone.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from schemas.catalog import Ingested, ShardRecord
from schemas.episode import (Episode, EpisodeError, FeatureSpec, Rejected, RejectReason, canonical_json,
                             column_to_numpy)
from schemas.names import SHARD_FILE
from schemas.stats import FeatureStats, merge_all
from shards import commit as commit_mod
from shards import lerobot_v3 as v3
from shards.video import EpisodeEncoder, VideoConfig, frame_to_rgb, iter_frames
from shards.zarr_store import ZarrSink

log = logging.getLogger("psi0.shards")
FORMATS = ("lerobot", "zarr")
SOURCE_TIMESTAMP = "timestamp.source"


@dataclass(frozen=True)
class ShardConfig:
    formats: tuple[str, ...] = ("lerobot",)
    video: VideoConfig = field(default_factory=VideoConfig)
    zarr_frames_per_chunk: int = 32

    def __post_init__(self) -> None:
        bad = set(self.formats) - set(FORMATS)
        if bad or not self.formats:
            raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {self.formats}")

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
    return shard_id if fmt == "lerobot" else f"{shard_id}.zarr"


def is_committed(out_root: Path, shard_id: str, formats: Iterable[str]) -> bool:
    base = commit_mod.shards_dir(out_root)
    return all((base / shard_dir_name(shard_id, f) / SHARD_FILE).is_file() for f in formats)


class _Accumulator:
    """Per-shard tables and bookkeeping shared by both sinks."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.episode_rows: list[dict[str, Any]] = []
        self.tasks: list[str] = []
        self.features: dict[str, FeatureSpec] | None = None
        self.fps: float | None = None
        self.frames = 0
        self.source = ""
        self.embodiments: set[str] = set()

    def task_index(self, task: str) -> int:
        if task not in self.tasks:
            self.tasks.append(task)
        return self.tasks.index(task)


def write_shard(episodes: Iterable[Episode | Rejected], out_root: str | Path, shard_id: str,
                config: ShardConfig = ShardConfig()) -> ShardResult:
    """Write `episodes` (readers' output, rejects passed through) as shard `shard_id` and commit it."""
    out_root = Path(out_root)
    stages = {fmt: commit_mod.staging_path(out_root, shard_dir_name(shard_id, fmt)) for fmt in config.formats}
    acc = _Accumulator()
    fates: dict[str, dict[str, Any]] = {}
    zarr_sink = ZarrSink(stages["zarr"], config.zarr_frames_per_chunk) if "zarr" in stages else None
    video_info: dict[str, dict[str, Any]] = {}
    for item in episodes:
        if isinstance(item, Rejected):
            fates[item.source_id] = item.to_json()
            continue
        ep = item
        try:
            _check_compatible(acc, ep)
            index = len(acc.episode_rows)
            frames_by_key = _write_videos(ep, index, stages.get("lerobot"), zarr_sink, config.video, video_info)
        except EpisodeError as err:
            fates[ep.meta.source_id] = err.rejected(ep.meta.source_id, "write").to_json()
            log.warning("rejected %s: %s", ep.meta.source_id, err.message)
            continue
        _append_episode(acc, ep, index, zarr_sink, frames_by_key)
        fates[ep.meta.source_id] = Ingested(shard_id, index, ep.length, ep.meta.task).to_json()
    stats = _stats(acc)
    records = []
    for fmt, staging in stages.items():
        if fmt == "lerobot" and acc.episode_rows:
            _finish_lerobot(staging, acc, stats, video_info)
        if fmt == "zarr" and zarr_sink is not None and acc.episode_rows:
            zarr_sink.finish(acc, {k: s.to_lerobot() for k, s in stats.items()})
        record = ShardRecord(shard_id, fmt, f"shards/{shard_dir_name(shard_id, fmt)}", acc.source,
                             len(acc.episode_rows), acc.frames,
                             tuple(r["psi0/source_id"] for r in acc.episode_rows),
                             commit_mod.content_hash(staging))
        shard_json = {"record": record.to_json(), "fates": dict(sorted(fates.items())),
                      "stats": {k: s.to_json() for k, s in sorted(stats.items())}, "config": config.to_json()}
        (staging / SHARD_FILE).write_text(canonical_json(shard_json))
        commit_mod.commit(staging, commit_mod.shards_dir(out_root) / shard_dir_name(shard_id, fmt))
        records.append(record)
    return ShardResult(shard_id, records, fates, stats)


def _check_compatible(acc: _Accumulator, ep: Episode) -> None:
    if acc.features is None:
        acc.features, acc.fps, acc.source = dict(ep.features), ep.meta.fps, ep.meta.source
        return
    if set(ep.features) != set(acc.features) or any(ep.features[k].shape != acc.features[k].shape for k in ep.features):
        raise EpisodeError(RejectReason.SHAPE_MISMATCH, "episode's features differ from the shard's first episode",
                           features=sorted(ep.features))
    if ep.meta.fps != acc.fps:
        raise EpisodeError(RejectReason.FPS_MISMATCH, f"episode fps {ep.meta.fps} != shard fps {acc.fps}")


def _write_videos(ep: Episode, index: int, lerobot_stage: Path | None, zarr_sink: ZarrSink | None,
                  cfg: VideoConfig, video_info: dict[str, dict[str, Any]]) -> dict[str, list[np.ndarray]]:
    """Decode each camera once; encode to the episode's MP4 and/or collect RGB for Zarr."""
    written: list[EpisodeEncoder] = []
    frames_by_key: dict[str, list[np.ndarray]] = {}
    try:
        for key, ref in sorted(ep.videos.items()):
            encoder = None
            if lerobot_stage is not None:
                path = lerobot_stage / v3.video_path(key, index)
                path.parent.mkdir(parents=True, exist_ok=True)
                encoder = EpisodeEncoder(path, ep.meta.fps, cfg)
                written.append(encoder)
            rgb: list[np.ndarray] = []
            count = 0
            for frame in iter_frames(ref, cfg.width, cfg.height, cfg.pix_fmt, threaded=cfg.decode_thread):
                if encoder is not None:
                    encoder.add(frame)
                if zarr_sink is not None:
                    rgb.append(frame_to_rgb(frame))
                count += 1
            if count != ep.length:
                raise EpisodeError(RejectReason.FRAME_COUNT_MISMATCH,
                                   f"{key}: decoded {count} frames, episode has {ep.length}", decoded=count,
                                   poses=ep.length)
            if encoder is not None:
                encoder.close()
            frames_by_key[key] = rgb
            video_info[key] = {"video.height": cfg.height, "video.width": cfg.width, "video.codec": cfg.codec_label,
                               "video.pix_fmt": cfg.pix_fmt, "video.is_depth_map": False,
                               "video.fps": int(round(ep.meta.fps)), "video.channels": 3, "has_audio": False}
    except BaseException:
        for enc in written:
            enc.abort()
        raise
    return frames_by_key


def _append_episode(acc: _Accumulator, ep: Episode, index: int, zarr_sink: ZarrSink | None,
                    frames_by_key: dict[str, list[np.ndarray]]) -> None:
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
    duration = n / ep.meta.fps
    row: dict[str, Any] = {
        "episode_index": index, "tasks": [ep.meta.task], "length": n, "data/chunk_index": 0, "data/file_index": 0,
        "dataset_from_index": acc.frames, "dataset_to_index": acc.frames + n,
    }
    for key in sorted(ep.videos):
        row[f"videos/{key}/chunk_index"] = index // v3.CHUNKS_SIZE
        row[f"videos/{key}/file_index"] = index % v3.CHUNKS_SIZE
        row[f"videos/{key}/from_timestamp"] = 0.0
        row[f"videos/{key}/to_timestamp"] = duration
    row["meta/episodes/chunk_index"] = 0
    row["meta/episodes/file_index"] = 0
    row["psi0/source_id"] = ep.meta.source_id
    row["psi0/embodiment"] = ep.meta.embodiment
    row["psi0/task_category"] = ep.meta.task_category
    row["psi0/meta"] = canonical_json(ep.meta.to_json())
    acc.tables.append(table)
    acc.episode_rows.append(row)
    acc.frames += n
    acc.embodiments.add(ep.meta.embodiment)
    if zarr_sink is not None:
        zarr_sink.append(table, frames_by_key)


def _stats(acc: _Accumulator) -> dict[str, FeatureStats]:
    if not acc.tables:
        return {}
    table = pa.concat_tables(acc.tables)
    parts = {}
    for name in table.column_names:
        if name in ("episode_index", "index", "task_index"):
            continue
        parts[name] = FeatureStats.from_values(column_to_numpy(table.column(name)).astype(np.float64))
    return merge_all([parts])


def _finish_lerobot(staging: Path, acc: _Accumulator, stats: dict[str, FeatureStats],
                    video_info: dict[str, dict[str, Any]]) -> None:
    assert acc.features is not None and acc.fps is not None
    data = pa.concat_tables(acc.tables)
    v3.write_parquet(data, staging / v3.DATA_PATH.format(chunk_index=0, file_index=0))
    episodes = pa.Table.from_pylist(acc.episode_rows)
    v3.write_parquet(episodes, staging / v3.EPISODES_PATH, hf_features=False)
    v3.write_parquet(v3.tasks_table(acc.tasks), staging / "meta" / "tasks.parquet", hf_features=False)
    features = dict(acc.features)
    features[SOURCE_TIMESTAMP] = FeatureSpec(SOURCE_TIMESTAMP, "float32", (1,))
    for key in video_info:
        features[key] = FeatureSpec(key, "video", (video_info[key]["video.height"], video_info[key]["video.width"], 3))
    robot = sorted(acc.embodiments)[0] if len(acc.embodiments) == 1 else "mixed"
    info = v3.info_json(features, acc.fps, len(acc.episode_rows), acc.frames, len(acc.tasks), video_info, robot)
    (staging / "meta" / "info.json").write_text(canonical_json(info))
    (staging / "meta" / "stats.json").write_text(canonical_json({k: s.to_lerobot() for k, s in sorted(stats.items())}))
