"""Write one shard — in each configured format (LeRobot v3, Zarr v3, any registered one) — from a
stream of episodes.

Video is decoded once per episode and fanned out to every format's sink (`shards.formats`). An
episode that fails anywhere (decode error mid-stream, frame-count mismatch) is removed from every
sink and recorded as rejected; the shard goes on. Every input of the plan ends in `shard.json` as
ingested or rejected, so a resumed job can rebuild the catalog from committed shards alone.
"""
from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa

from schemas.catalog import Ingested, ShardRecord
from schemas.episode import Episode, EpisodeError, Rejected, RejectReason, canonical_json, column_to_numpy
from schemas.names import SHARD_FILE, SHARDS_DIR
from schemas.stats import FeatureStats, merge_all
from shards import commit as commit_mod
from shards import formats, integrity
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
    """Write `episodes` (readers' output, rejects passed through) as shard `shard_id` and commit it.

    The shard's own files (parquet, stats, metadata) are built while its last episode's encoders drain
    their final frames (`_Closing`): that work no longer waits at the end of the codec's path."""
    out_root = Path(out_root)
    stages = {fmt: commit_mod.staging_path(out_root, shard_dir_name(shard_id, fmt)) for fmt in config.formats}
    sinks: dict[str, ShardSink] = {fmt: formats.get(fmt).sink(staging, config) for fmt, staging in stages.items()}
    contents = ShardContents()
    fates: dict[str, dict[str, Any]] = {}
    items = iter(episodes)
    item = next(items, _DONE)
    closing: _Closing | None = None
    while item is not _DONE:
        if isinstance(item, Rejected):
            fates[item.source_id] = item.to_json()
            item = next(items, _DONE)
            continue
        ep = item
        contents.source = contents.source or ep.meta.source
        try:
            # Everything that can fail on this one input runs before any sink keeps a byte of it:
            # compatibility, metadata that must serialize, the frame table, then the video.
            _check_compatible(contents, ep)
            _metadata_json(ep)
            index = len(contents.episodes)
            table = _frame_table(contents, ep, index)
            opened, pending = _feed_videos(ep, index, sinks, config.video)
        except Exception as exc:  # noqa: BLE001 - one input's surprise ends as its reject, never the job
            _reject(fates, ep, exc)
            item = next(items, _DONE)
            continue
        item = _next_or_abort(items, opened)        # the next input, asked for before this one's files close
        if item is _DONE and _may_close_aside(sinks):
            closing = _Closing(ep, index, table, opened, pending)
            break
        try:
            _close_videos(opened, pending)
        except Exception as exc:  # noqa: BLE001 - as above
            _reject(fates, ep, exc)
            continue
        _accept(contents, fates, shard_id, ep, index, table, sinks)
    if closing is not None:         # the last episode's encoders drain while the shard's files are built
        _accept(contents, fates, shard_id, closing.ep, closing.index, closing.table, sinks)
    _finish_formats(contents, sinks)
    if closing is not None and (failure := closing.wait()) is not None:
        contents.drop_last()
        for sink in sinks.values():
            sink.drop_last_episode()            # type: ignore[attr-defined] - `_may_close_aside` checked it
        _reject(fates, closing.ep, failure)
        if not contents.episodes:               # nothing accepted: nothing but shard.json may stay
            for staging in stages.values():
                _clear(staging)
        _finish_formats(contents, sinks)
    records = []
    for fmt, staging in stages.items():
        _remove_empty_dirs(staging)     # e.g. the video folders of episodes that were all rejected
        name = shard_dir_name(shard_id, fmt)
        content_hash, files = integrity.hash_files(staging)
        record = ShardRecord(shard_id, fmt, f"{SHARDS_DIR}/{name}", contents.source, len(contents.episodes),
                             contents.frames, tuple(e.source_id for e in contents.episodes), content_hash)
        shard_json = {"record": record.to_json(), "fates": dict(sorted(fates.items())),
                      "stats": {k: s.to_json() for k, s in sorted(contents.stats.items())}, "config": config.to_json(),
                      "files": files}
        (staging / SHARD_FILE).write_text(canonical_json(shard_json))
        commit_mod.commit(staging, commit_mod.shards_dir(out_root) / name)
        records.append(record)
    return ShardResult(shard_id, records, fates, contents.stats)


_DONE = object()


class _Closing:
    """The shard's last episode, its frames all delivered, its camera files closing in a thread of their own
    (SVT-AV1 drains ~50 ms of queued frames per encoder) while the writer builds the shard's files."""

    def __init__(self, ep: Episode, index: int, table: pa.Table, opened: list[FrameSink], pending: list[FrameSink]):
        self.ep, self.index, self.table = ep, index, table
        self._opened, self._pending = opened, pending
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._close, name="shard-last-close", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        try:
            _close_videos(self._opened, self._pending)      # aborts every camera of the episode if one fails
        except BaseException as exc:  # noqa: BLE001 - handed to the writer's thread by `wait`
            self._failure = exc

    def wait(self) -> BaseException | None:
        """None once every file closed; else the error, with every camera of the episode already aborted."""
        self._thread.join()
        if self._failure is not None and not isinstance(self._failure, Exception):
            raise self._failure
        return self._failure


def _may_close_aside(sinks: dict[str, ShardSink]) -> bool:
    """Whether the last episode's files may close beside the shard's finishing: every sink can undo it."""
    return all(hasattr(sink, "drop_last_episode") for sink in sinks.values())


def _clear(staging: Path) -> None:
    """Empty a staging folder: what `finish` wrote for an episode that was then dropped, when none is left."""
    for path in list(staging.iterdir()):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _next_or_abort(items: Iterator[Episode | Rejected], targets: list[FrameSink]) -> Any:
    """The next input (or `_DONE`); if asking for it raises, the open camera files are aborted first."""
    try:
        return next(items, _DONE)
    except BaseException:
        for target in targets:
            target.abort()
        raise


def _reject(fates: dict[str, dict[str, Any]], ep: Episode, exc: Exception) -> None:
    """Record `ep`'s reject for `exc`: its own reason if it is an `EpisodeError`, else a `worker_error`."""
    rejected = exc.rejected(ep.meta.source_id, "write") if isinstance(exc, EpisodeError) else _unexpected(ep, exc)
    fates[ep.meta.source_id] = rejected.to_json()
    log.warning("rejected %s: %s", ep.meta.source_id, rejected.message)


def _accept(contents: ShardContents, fates: dict[str, dict[str, Any]], shard_id: str, ep: Episode, index: int,
            table: pa.Table, sinks: dict[str, ShardSink]) -> None:
    _append_episode(contents, ep, index, table, sinks)
    fates[ep.meta.source_id] = Ingested(shard_id, index, ep.length, ep.meta.task).to_json()


def _finish_formats(contents: ShardContents, sinks: dict[str, ShardSink]) -> None:
    """Stats over the accepted episodes, then every format's files (none when no episode was accepted)."""
    contents.stats = _stats(contents)
    if contents.episodes:
        for sink in sinks.values():
            sink.finish(contents)


def _metadata_json(ep: Episode) -> str:
    """The episode's metadata as canonical JSON (what every format stores); a value JSON cannot hold
    (a complex number, a structured record, an object handle from a source file) rejects the episode,
    naming the field."""
    meta: Any = None
    try:
        meta = ep.meta.to_json()
        return canonical_json(meta)
    except (TypeError, ValueError, RecursionError) as exc:
        where, value = _first_unjsonable(meta if meta is not None else vars(ep.meta), "meta")
        raise EpisodeError(RejectReason.BAD_METADATA,
                           f"{_files_of(ep)}: metadata field {where} is a {type(value).__name__} "
                           f"({_short(value)}): not representable in JSON ({exc})",
                           field=where, files=_file_list(ep)) from None


def _first_unjsonable(value: Any, where: str) -> tuple[str, Any]:
    """(dotted path, value) of the first leaf `json.dumps` refuses."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                return f"{where}.<key {_short(k)}>", k
            found = _first_unjsonable(v, f"{where}.{k}")
            if found[0]:
                return found
        return "", None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _first_unjsonable(v, f"{where}[{i}]")
            if found[0]:
                return found
        return "", None
    if value is None or isinstance(value, (str, int, float, bool)):
        return "", None
    return where, value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _file_list(ep: Episode) -> list[str]:
    return sorted({ref.uri for ref in ep.videos.values() if ref.uri})


def _files_of(ep: Episode) -> str:
    """The input's files as a reject message names them (its video files; else its source id)."""
    files = _file_list(ep)
    return ", ".join(files) if files else ep.meta.source_id


def _unexpected(ep: Episode, exc: BaseException) -> Rejected:
    """A `worker_error` reject for an exception no check anticipated: the file, the stage and the exception."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno} {frames[-1].name}" if frames else ""
    return Rejected(ep.meta.source_id, "write", RejectReason.WORKER_ERROR,
                    f"{_files_of(ep)}: writing the shard failed: {type(exc).__name__}: {exc}",
                    {"files": _file_list(ep), "exception": type(exc).__name__, "code": where})


def _remove_empty_dirs(root: Path) -> None:
    """Remove folders left empty below `root` (bottom-up; `root` itself stays)."""
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            path.rmdir()
        except OSError:
            pass


def _check_compatible(acc: ShardContents, ep: Episode) -> None:
    """The episode fits the shard's first accepted episode (features, fps); the shard's shape is set only
    when an episode is accepted, so a rejected first episode does not decide it."""
    if acc.features is None:
        return
    if set(ep.features) != set(acc.features) or any(ep.features[k].shape != acc.features[k].shape for k in ep.features):
        raise EpisodeError(RejectReason.SHAPE_MISMATCH, "episode's features differ from the shard's first episode",
                           features=sorted(ep.features))
    if ep.meta.fps != acc.fps:
        raise EpisodeError(RejectReason.FPS_MISMATCH, f"episode fps {ep.meta.fps} != shard fps {acc.fps}")


def _feed_videos(ep: Episode, index: int, sinks: dict[str, ShardSink],
                 cfg: VideoConfig) -> tuple[list[FrameSink], list[FrameSink]]:
    """Decode each camera once and hand every frame to each format's sink. Returns (every camera file of the
    episode, the last camera's, still open): the others are closed as soon as their frames are in, so one
    encoder at a time stays open whatever the camera count, and the caller closes the last (`_close_videos`).
    On any failure every sink forgets the whole episode."""
    opened: list[FrameSink] = []
    targets: list[FrameSink] = []
    try:
        cameras = sorted(ep.videos.items())
        for k, (key, ref) in enumerate(cameras):
            targets = [t for t in (sink.camera(key, index, ep.meta.fps) for sink in sinks.values()) if t is not None]
            opened.extend(targets)
            count = 0
            for frame in iter_frames(ref, cfg.width, cfg.height, cfg.pix_fmt, threaded=cfg.decode_thread):
                for target in targets:
                    target.add(frame)
                count += 1
            if count != ep.length:
                raise EpisodeError(RejectReason.FRAME_COUNT_MISMATCH,
                                   f"{ref.uri}: {key}: decoded {count} frames, episode has {ep.length}",
                                   decoded=count, poses=ep.length)
            if k < len(cameras) - 1:
                for target in targets:
                    target.close()
    except BaseException:
        for target in opened:
            target.abort()
        raise
    return opened, targets


def _close_videos(opened: list[FrameSink], pending: list[FrameSink]) -> None:
    """Close the episode's camera files still open; if one fails, all its files are aborted."""
    try:
        for target in pending:
            target.close()
    except BaseException:
        for target in opened:
            target.abort()
        raise


def _frame_table(acc: ShardContents, ep: Episode, index: int) -> pa.Table:
    """The episode's stored frame table (built before its video is written: a malformed table rejects it)."""
    n = ep.length
    cols = {key: ep.frames.column(key) for key in ep.features if ep.features[key].dtype != "video"}
    # LeRobot locates video frames by `timestamp`, so it must be frame_index / fps exactly; the
    # source's own clock (jittered for recorded robots) is kept beside it.
    cols["timestamp"] = pa.array((np.arange(n) / ep.meta.fps).astype(np.float32), pa.float32())
    cols[SOURCE_TIMESTAMP] = ep.frames.column("timestamp")
    table = pa.table(cols)
    table = table.append_column("frame_index", pa.array(np.arange(n), pa.int64()))
    table = table.append_column("episode_index", pa.array(np.full(n, index), pa.int64()))
    table = table.append_column("index", pa.array(np.arange(acc.frames, acc.frames + n), pa.int64()))
    task_index = acc.tasks.index(ep.meta.task) if ep.meta.task in acc.tasks else len(acc.tasks)
    table = table.append_column("task_index", pa.array(np.full(n, task_index), pa.int64()))
    for name in table.column_names:          # every column converts the way the formats store it
        column_to_numpy(table.column(name))
    return table


def _append_episode(acc: ShardContents, ep: Episode, index: int, table: pa.Table, sinks: dict[str, ShardSink]) -> None:
    if acc.features is None:
        acc.features, acc.fps, acc.source = dict(ep.features), ep.meta.fps, ep.meta.source
    task_index = acc.task_index(ep.meta.task)
    entry = EpisodeEntry(index=index, start=acc.frames, length=ep.length, task_index=task_index,
                         cameras=tuple(sorted(ep.videos)), meta=ep.meta)
    acc.tables.append(table)
    acc.episodes.append(entry)
    acc.frames += ep.length
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
