"""The LeRobot v3.0 shard format (as lerobot 0.4.4 writes and reads it): layout names, write sink, reader.

Layout of one shard: meta/info.json, meta/stats.json, meta/tasks.parquet,
meta/episodes/chunk-000/file-000.parquet, data/chunk-000/file-000.parquet and
videos/<key>/chunk-000/file-<episode>.mp4 — one MP4 per episode (v3 allows any file index per
episode; per-episode files make a failed episode's removal atomic and keep files seekable).
psi0 adds episode columns `psi0/source_id`, `psi0/embodiment`, `psi0/task_category`, `psi0/meta`.

The reader also opens LeRobot v3 datasets that LeRobot itself wrote (several episodes per data file
and per video file, located by `dataset_from_index` and `videos/<key>/from_timestamp`).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.catalog import ShardRecord
from schemas.episode import FeatureSpec, canonical_json, column_to_numpy
from shards.formats.base import (SOURCE_TIMESTAMP, BaseReader, Camera, EpisodeEntry, EpisodeInfo, ShardContents,
                                 ShardFormat, ShardInfo, VideoSpan, parse_meta)
from shards.frames import VideoCache, to_chw
from shards.integrity import ShardReadError
from shards.location import Location
from shards.video import EpisodeEncoder

NAME = "lerobot"
CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
DATA_DIR = "data"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
TIMESTAMP = "timestamp"
# psi0's episode columns
SOURCE_ID = "psi0/source_id"
EMBODIMENT = "psi0/embodiment"
TASK_CATEGORY = "psi0/task_category"
META = "psi0/meta"
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
_LAYOUT_COLUMNS = ("stats/", "videos/", "data/", "meta/", META)   # where things are, not what an episode is
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "row_group_size": 8192,
                   "write_statistics": True, "use_dictionary": False}


def video_path(key: str, episode_index: int) -> str:
    return VIDEO_PATH.format(video_key=key, chunk_index=episode_index // CHUNKS_SIZE,
                             file_index=episode_index % CHUNKS_SIZE)


def info_json(features: dict[str, FeatureSpec], fps: float, episodes: int, frames: int, tasks: int,
              video_info: dict[str, dict[str, Any]], robot_type: str | None) -> dict[str, Any]:
    feats: dict[str, Any] = {}
    for key, spec in features.items():
        if key == "timestamp":
            continue
        entry = spec.to_lerobot()
        if spec.dtype == "video":
            entry["info"] = video_info[key]
        feats[key] = entry
    feats.update(DEFAULT_FEATURES)
    return {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": episodes,
        "total_frames": frames, "total_tasks": tasks, "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200, "fps": int(round(fps)) if float(fps).is_integer() else fps,
        "splits": {"train": f"0:{episodes}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH, "features": feats,
    }


def _hf_dtype(arrow_type: pa.DataType) -> str:
    return {"float": "float32", "double": "float64"}.get(str(arrow_type), str(arrow_type))


def _hf_feature(field: pa.Field) -> dict[str, Any]:
    if pa.types.is_fixed_size_list(field.type):
        return {"feature": {"dtype": _hf_dtype(field.type.value_type), "_type": "Value"},
                "length": field.type.list_size, "_type": "List"}
    return {"dtype": _hf_dtype(field.type), "_type": "Value"}


def write_parquet(table: pa.Table, path: Path, hf_features: bool = True) -> None:
    """Deterministic parquet: fixed options, HF `datasets` feature metadata like LeRobot writes."""
    if hf_features:
        meta = {"info": {"features": {f.name: _hf_feature(f) for f in table.schema}}}
        table = table.replace_schema_metadata({"huggingface": json.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **PARQUET_OPTIONS)


# pandas metadata so `pd.read_parquet` (LeRobot's `load_tasks`) restores the task strings as the
# index, the way LeRobot's own writer leaves them; fixed text (no library versions) keeps bytes stable.
_TASKS_PANDAS_META = json.dumps({
    "index_columns": ["__index_level_0__"],
    "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                        "metadata": {"encoding": "UTF-8"}}],
    "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                 "numpy_type": "int64", "metadata": None},
                {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                 "numpy_type": "object", "metadata": None}],
    "attributes": {}, "creator": {"library": "psi0", "version": "1"}, "pandas_version": "2.2.0",
}, separators=(",", ":")).encode()


def tasks_table(tasks: list[str]) -> pa.Table:
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.large_string())})
    return table.replace_schema_metadata({b"pandas": _TASKS_PANDAS_META})


# ------------------------------------------------------------------------------------------ write sink
def episode_row(entry: EpisodeEntry) -> dict[str, Any]:
    """The episode's record in meta/episodes (LeRobot's columns, then psi0's)."""
    n, index = entry.length, entry.index
    duration = n / entry.meta.fps
    row: dict[str, Any] = {
        "episode_index": index, "tasks": [entry.meta.task], "length": n, "data/chunk_index": 0, "data/file_index": 0,
        "dataset_from_index": entry.start, "dataset_to_index": entry.start + n,
    }
    for key in entry.cameras:
        row[f"videos/{key}/chunk_index"] = index // CHUNKS_SIZE
        row[f"videos/{key}/file_index"] = index % CHUNKS_SIZE
        row[f"videos/{key}/from_timestamp"] = 0.0
        row[f"videos/{key}/to_timestamp"] = duration
    row["meta/episodes/chunk_index"] = 0
    row["meta/episodes/file_index"] = 0
    row[SOURCE_ID] = entry.meta.source_id
    row[EMBODIMENT] = entry.meta.embodiment
    row[TASK_CATEGORY] = entry.meta.task_category
    row[META] = canonical_json(entry.meta.to_json())
    return row


class _EpisodeVideo:
    """One camera of one episode, encoded to its own MP4 as frames arrive."""

    def __init__(self, sink: "LeRobotSink", key: str, fps: float, encoder: EpisodeEncoder):
        self.sink, self.key, self.fps, self.encoder = sink, key, fps, encoder

    def add(self, frame: Any) -> None:
        self.encoder.add(frame)

    def close(self) -> None:
        self.encoder.close()

    def abort(self) -> None:
        self.encoder.abort()


def _video_info(config: Any, fps: float) -> dict[str, Any]:
    """A camera's `info.json` entry (LeRobot's keys)."""
    return {"video.height": config.height, "video.width": config.width, "video.codec": config.codec_label,
            "video.pix_fmt": config.pix_fmt, "video.is_depth_map": False, "video.fps": int(round(fps)),
            "video.channels": 3, "has_audio": False}


class LeRobotSink:
    """Stages one LeRobot v3 shard: MP4s while episodes stream in, parquet + meta at `finish`."""

    def __init__(self, root: Path, config: Any):
        self.root = root
        self.video = config.video
        self.video_info: dict[str, dict[str, Any]] = {}
        self.rows: list[dict[str, Any]] = []

    def camera(self, key: str, episode: int, fps: float) -> _EpisodeVideo:
        path = self.root / video_path(key, episode)
        path.parent.mkdir(parents=True, exist_ok=True)
        return _EpisodeVideo(self, key, fps, EpisodeEncoder(path, fps, self.video))

    def add_episode(self, entry: EpisodeEntry, table: pa.Table) -> None:
        self.rows.append(episode_row(entry))
        for key in entry.cameras:          # cameras of accepted episodes only
            self.video_info.setdefault(key, _video_info(self.video, entry.meta.fps))

    def drop_last_episode(self) -> None:
        self.rows.pop()
        if not self.rows:
            self.video_info.clear()

    def finish(self, contents: ShardContents) -> None:
        assert contents.features is not None and contents.fps is not None
        staging = self.root
        data = pa.concat_tables(contents.tables)
        write_parquet(data, staging / DATA_PATH.format(chunk_index=0, file_index=0))
        episodes = pa.Table.from_pylist(self.rows)
        write_parquet(episodes, staging / EPISODES_PATH, hf_features=False)
        write_parquet(tasks_table(contents.tasks), staging / TASKS_PATH, hf_features=False)
        features = dict(contents.features)
        features[SOURCE_TIMESTAMP] = FeatureSpec(SOURCE_TIMESTAMP, "float32", (1,))
        for key, vinfo in self.video_info.items():
            features[key] = FeatureSpec(key, "video", (vinfo["video.height"], vinfo["video.width"], 3))
        info = info_json(features, contents.fps, len(self.rows), contents.frames, len(contents.tasks),
                         self.video_info, contents.robot_type)
        (staging / INFO_PATH).write_text(canonical_json(info))
        (staging / STATS_PATH).write_text(
            canonical_json({k: s.to_lerobot() for k, s in sorted(contents.stats.items())}))


# ------------------------------------------------------------------------------------------ reader
def read_parquet(where: Location, columns: Sequence[str] | None = None, filters: Any = None) -> pa.Table:
    """A parquet file, local (memory-mapped) or on an object store (ranged reads through fsspec); a file
    pyarrow cannot parse (truncated, overwritten) raises ShardReadError naming it."""
    try:
        if not where.is_url:
            return pq.read_table(where.uri, columns=list(columns) if columns is not None else None, filters=filters,
                                 memory_map=True)
        fs, path = where.filesystem()
        return pq.read_table(path, columns=list(columns) if columns is not None else None, filters=filters,
                             filesystem=fs)
    except pa.ArrowInvalid as exc:
        raise ShardReadError(f"{where}: not a readable parquet file (truncated or corrupt: {exc})", where.uri) from None


def parquet_schema(where: Location) -> pa.Schema:
    try:
        if not where.is_url:
            return pq.read_schema(where.uri)
        with where.open() as fh:
            return pq.read_schema(fh)
    except pa.ArrowInvalid as exc:
        raise ShardReadError(f"{where}: not a readable parquet file (truncated or corrupt: {exc})", where.uri) from None


class LeRobotReader(BaseReader):
    """One LeRobot v3 dataset folder, read-only (see module doc)."""

    format = NAME

    def __init__(self, location: Location, videos: VideoCache | None = None):
        super().__init__(location, videos)
        self._info: dict[str, Any] = location.join(INFO_PATH).read_json()
        if not isinstance(self._info, dict):
            raise ValueError(f"{INFO_PATH} is not a JSON object")
        self._data_files: list[Location] | None = None
        self._names: list[str] | None = None
        self._timestamps: np.ndarray | None = None
        self._located: dict[tuple[str, int], tuple[str, float, int]] = {}
        self._header: ShardInfo | None = None
        self._own_videos: VideoCache | None = None
        self._rows: dict[int, dict[str, Any]] = {}          # episode index -> its meta/episodes row

    # ---- header ---------------------------------------------------------------------------------
    def info(self) -> ShardInfo:
        if self._header is None:
            info = self._info
            features = dict(info.get("features") or {})
            cameras = []
            for key, spec in features.items():
                if spec.get("dtype") != "video":
                    continue
                shape = spec.get("shape") or [0, 0, 3]
                names = spec.get("names") or []
                h, w = (shape[0], shape[1]) if list(names[:2]) != ["width", "height"] else (shape[1], shape[0])
                cameras.append(Camera(key, int(w), int(h)))
            frames = info.get("total_frames")
            if frames is None:
                frames = sum(pq.read_metadata(f.uri).num_rows if not f.is_url else len(read_parquet(f, []))
                             for f in self.data_files())
            episodes = info.get("total_episodes")
            self._header = ShardInfo(fps=float(info.get("fps") or 0.0), frames=int(frames),
                                     episodes=int(episodes) if episodes is not None else len(self.episodes()),
                                     features=features, cameras=tuple(cameras), robot_type=info.get("robot_type"))
        return self._header

    def tasks(self) -> list[str]:
        """Task strings by task index (meta/tasks.parquet)."""
        where = self.location.join(TASKS_PATH)
        if not where.is_file():
            return []
        table = read_parquet(where)
        name_col = "task" if "task" in table.column_names else "__index_level_0__"
        task_of = dict(zip(table.column("task_index").to_pylist(), table.column(name_col).to_pylist()))
        return [task_of.get(i, "") for i in range(max(task_of) + 1)] if task_of else []

    def episodes(self) -> list[EpisodeInfo]:
        if self._episodes is None:
            files = self.location.join(EPISODES_DIR).glob("chunk-*/file-*.parquet")
            rows: list[dict[str, Any]] = []
            for f in files:
                keep = [c for c in parquet_schema(f).names if not c.startswith("stats/")]
                rows.extend(read_parquet(f, keep).to_pylist())
            self._episodes = self._from_rows(rows) if files else self._from_data()
        return self._episodes

    def _from_rows(self, rows: list[dict[str, Any]]) -> list[EpisodeInfo]:
        robot = self._info.get("robot_type") or ""
        base = min((int(r["dataset_from_index"]) for r in rows), default=0)
        out = []
        for r in rows:
            index = int(r["episode_index"])
            self._rows[index] = r
            start = int(r["dataset_from_index"]) - base
            length = int(r.get("length") or int(r["dataset_to_index"]) - int(r["dataset_from_index"]))
            tasks = r.get("tasks") or [""]
            out.append(EpisodeInfo(index=index, start=start, length=length, task=str(tasks[0]),
                                   source_id=str(r.get(SOURCE_ID) or f"{self.location.name}/{index}"),
                                   embodiment=str(r.get(EMBODIMENT) or robot), meta=parse_meta(r.get(META)),
                                   record={k: v for k, v in r.items() if not k.startswith(_LAYOUT_COLUMNS)
                                           and not isinstance(v, dict)}))
        return out

    def _from_data(self) -> list[EpisodeInfo]:
        """Episodes of a dataset without meta/episodes: runs of `episode_index` in the data."""
        ep = self.columns(["episode_index"]).get("episode_index")
        if ep is None:
            raise ValueError("no meta/episodes and no episode_index column")
        ep = ep.reshape(-1)
        cuts = np.flatnonzero(np.diff(ep)) + 1
        starts = np.concatenate([[0], cuts]).astype(int)
        ends = np.concatenate([cuts, [len(ep)]]).astype(int)
        robot = self._info.get("robot_type") or ""
        return [EpisodeInfo(index=int(ep[s]), start=int(s), length=int(e - s), task="",
                            source_id=f"{self.location.name}/{int(ep[s])}", embodiment=robot, meta={},
                            record={"episode_index": int(ep[s]), "length": int(e - s)})
                for s, e in zip(starts, ends) if e > s]

    # ---- per-frame columns ----------------------------------------------------------------------
    def data_files(self) -> list[Location]:
        if self._data_files is None:
            self._data_files = self.location.join(DATA_DIR).glob("**/*.parquet")
        return self._data_files

    def _column_names(self) -> list[str]:
        if self._names is None:
            files = self.data_files()
            self._names = parquet_schema(files[0]).names if files else []
        return self._names

    def columns(self, keys: Sequence[str] | None = None, episode: int | None = None) -> dict[str, np.ndarray]:
        names = self._column_names()
        wanted = list(names) if keys is None else [k for k in keys if k in names]
        if episode is None:
            files = self.data_files()
            tables = [read_parquet(f, wanted) for f in files]
            table = pa.concat_tables(tables) if tables else pa.table({})
        else:
            table = self._episode_table(int(episode), wanted)
        return {k: column_to_numpy(table.column(k)) for k in wanted}

    def _row(self, episode: int) -> dict[str, Any]:
        self.episode(episode)                                  # KeyError when absent
        return self._rows.get(int(episode), {})

    def _episode_table(self, episode: int, wanted: list[str]) -> pa.Table:
        record = self._row(episode)
        files = self.data_files()
        if "data/chunk_index" in record and "data/file_index" in record and self._info.get("data_path"):
            rel = self._info["data_path"].format(chunk_index=record["data/chunk_index"],
                                                 file_index=record["data/file_index"])
            files = [self.location.child(rel)]
        parts = [read_parquet(f, wanted, filters=[("episode_index", "=", episode)]) for f in files]
        return pa.concat_tables(parts) if parts else pa.table({})

    # ---- video ----------------------------------------------------------------------------------
    def video_file(self, camera: str, episode: int) -> VideoSpan | None:
        record = self._row(episode)
        chunk, file = record.get(f"videos/{camera}/chunk_index"), record.get(f"videos/{camera}/file_index")
        if chunk is None or file is None:
            return None
        rel = self._info.get("video_path", VIDEO_PATH).format(video_key=camera, chunk_index=chunk, file_index=file)
        end = record.get(f"videos/{camera}/to_timestamp")
        return VideoSpan(self.location.child(rel), float(record.get(f"videos/{camera}/from_timestamp") or 0.0),
                         None if end is None else float(end))

    def _locate(self, camera: str, episode: int) -> tuple[str, float, int]:
        """(video file, seconds where the episode starts in it, the episode's first row) — once per pair."""
        found = self.video_file(camera, episode)
        if found is None:
            raise KeyError(f"no video of camera {camera!r} for episode {episode}")
        if self._timestamps is None:
            self._timestamps = self.columns([TIMESTAMP]).get(TIMESTAMP, np.zeros(0, np.float32))
        if self.videos is None:
            self.videos = self._own_videos = VideoCache()
        return found.location.uri, found.start, self.episode(episode).start

    def _decoded(self, camera: str, episode: int, index: int) -> Any:
        """The frame LeRobot would show: `from_timestamp` + the row's `timestamp` (frame / fps when the
        data has no timestamp column)."""
        where = self._located.get((camera, episode))
        if where is None:
            where = self._located[(camera, episode)] = self._locate(camera, episode)
        uri, start, first = where
        ts = float(self._timestamps[first + index]) if len(self._timestamps) else index / self.info().fps
        return self.videos.reader(uri).frame(start + ts)

    def frame(self, camera: str, episode: int, index: int) -> np.ndarray:
        return self._decoded(camera, episode, index).to_ndarray(format="rgb24")

    def image(self, camera: str, episode: int, index: int, size: tuple[int, int] | None) -> np.ndarray:
        return to_chw(self._decoded(camera, episode, index), size)

    def frames(self, camera: str, episode: int) -> np.ndarray:
        length = self.episode(episode).length
        return np.stack([self.frame(camera, episode, i) for i in range(length)])

    def native_stats(self) -> dict[str, dict[str, Any]]:
        where = self.location.join(STATS_PATH)
        return where.read_json() if where.is_file() else {}

    def close(self) -> None:
        if self._own_videos is not None:        # a cache passed in belongs to the caller
            self._own_videos.close()
            self._own_videos = self.videos = None


# ------------------------------------------------------------------------------------------ format
def recognizes(location: Location) -> bool:
    return location.join(INFO_PATH).is_file()


def verify(location: Location, record: ShardRecord) -> list[str]:
    """Re-open the shard with LeRobot's own `LeRobotDataset` (a local copy for object-store shards)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if location.is_url:
        from shards.objectstore import download_tree

        with tempfile.TemporaryDirectory(prefix="psi0-verify-") as tmp:
            download_tree(location.uri, Path(tmp))
            return _verify_local(Path(tmp), record)
    return _verify_local(location.path, record)


def _verify_local(path: Path, record: ShardRecord) -> list[str]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(f"psi0/{record.shard_id}", root=path, video_backend="pyav")
    problems = []
    if ds.num_episodes != record.episodes or ds.num_frames != record.frames:
        problems.append(f"{record.path}: LeRobot sees {ds.num_episodes} episodes / {ds.num_frames} frames, "
                        f"catalog {record.episodes} / {record.frames}")
    for i in np.linspace(0, len(ds) - 1, 3).astype(int):
        item = ds[int(i)]
        for key, value in item.items():
            if hasattr(value, "isfinite") and value.dtype.is_floating_point and not bool(value.isfinite().all()):
                problems.append(f"{record.path}: non-finite {key} at frame {i}")
    return problems


FORMAT = ShardFormat(NAME, "", LeRobotSink, LeRobotReader, recognizes, verify)
