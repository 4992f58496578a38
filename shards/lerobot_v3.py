"""The LeRobot v3.0 on-disk layout (as lerobot 0.4.4 writes and reads it), built from Arrow tables.

Layout of one shard: meta/info.json, meta/stats.json, meta/tasks.parquet,
meta/episodes/chunk-000/file-000.parquet, data/chunk-000/file-000.parquet and
videos/<key>/chunk-000/file-<episode>.mp4 — one MP4 per episode (v3 allows any file index per
episode; per-episode files make a failed episode's removal atomic and keep files seekable).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.episode import FeatureSpec

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
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
