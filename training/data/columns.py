"""A shard's per-frame columns as numpy, read once per process (LeRobot parquet or Zarr arrays).

Video stays where it is: LeRobot frames are decoded on demand (`video.py`), Zarr frames are read
from their chunked array per sample.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.episode import column_to_numpy

FRAME_KEYS = ("episode_index", "frame_index", "task_index")
TIMESTAMP = "timestamp"


@dataclass
class ShardColumns:
    """Everything about one shard a sample needs except pixels."""

    fmt: str
    path: Path
    fps: float
    frames: int
    state: np.ndarray | None              # (N, Ds) float32
    action: np.ndarray | None             # (N, Da) float32, present action keys concatenated
    action_keys: tuple[str, ...]          # those present, in order
    tokens: np.ndarray | None             # (N, W) int32
    tokens_len: np.ndarray | None         # (N,) int
    episode_index: np.ndarray             # (N,) int64
    frame_index: np.ndarray               # (N,) int64
    task_index: np.ndarray                # (N,) int64
    tasks: list[str]
    episode_row: dict[int, int]           # episode_index -> row in the episode tables below
    episode_end: np.ndarray               # (E,) end row (exclusive) of each episode within the shard
    embodiment: list[str]                 # (E,)
    video: dict[str, list[tuple[Path, float]]] = field(default_factory=dict)  # camera -> per episode (file, from_ts)
    timestamp: np.ndarray | None = None   # (N,) seconds within the episode (LeRobot locates frames by it)
    zarr_group: Any = None

    def end_row(self, row: int) -> int:
        return int(self.episode_end[self.episode_row[int(self.episode_index[row])]])


def load_columns(fmt: str, path: Path, action_keys: tuple[str, ...], state_key: str, tokens_key: str,
                 tokens_len_key: str, cameras: tuple[str, ...]) -> ShardColumns:
    if fmt == "lerobot":
        return _lerobot(path, action_keys, state_key, tokens_key, tokens_len_key, cameras)
    return _zarr(path, action_keys, state_key, tokens_key, tokens_len_key)


def _concat(parts: list[np.ndarray]) -> np.ndarray | None:
    if not parts:
        return None
    return np.ascontiguousarray(np.concatenate([p.reshape(len(p), -1).astype(np.float32) for p in parts], axis=1))


def _lerobot(path: Path, action_keys, state_key, tokens_key, tokens_len_key, cameras) -> ShardColumns:
    info = json.loads((path / "meta" / "info.json").read_text())
    features = info["features"]
    wanted = [k for k in (*action_keys, state_key, tokens_key, tokens_len_key, *FRAME_KEYS, TIMESTAMP)
              if k in features or k == TIMESTAMP]
    files = sorted((path / "data").rglob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f, columns=wanted, memory_map=True) for f in files])
    col = {k: column_to_numpy(table.column(k)) for k in wanted}
    episodes = pa.concat_tables([pq.read_table(f) for f in sorted((path / "meta" / "episodes").rglob("*.parquet"))])
    ep = {k: episodes.column(k).to_pylist() for k in episodes.column_names}
    tasks_tab = pq.read_table(path / "meta" / "tasks.parquet")
    name_col = "task" if "task" in tasks_tab.column_names else "__index_level_0__"
    task_of = dict(zip(tasks_tab.column("task_index").to_pylist(), tasks_tab.column(name_col).to_pylist()))
    tasks = [task_of[i] for i in range(max(task_of) + 1)] if task_of else []
    ep_index = [int(i) for i in ep["episode_index"]]
    starts = np.asarray(ep["dataset_from_index"], np.int64)
    # rows of this shard's data start at the first episode's dataset_from_index
    ends = np.asarray(ep["dataset_to_index"], np.int64) - (starts.min() if len(starts) else 0)
    robot = info.get("robot_type") or ""
    embodiment = [str(e) for e in ep.get("psi0/embodiment", [robot] * len(ep_index))]
    video = {}
    for cam in cameras:
        if f"videos/{cam}/file_index" not in ep:
            continue
        video[cam] = [(path / info["video_path"].format(video_key=cam, chunk_index=int(c), file_index=int(f)), float(t))
                      for c, f, t in zip(ep[f"videos/{cam}/chunk_index"], ep[f"videos/{cam}/file_index"],
                                         ep[f"videos/{cam}/from_timestamp"])]
    present = tuple(k for k in action_keys if k in col)
    return ShardColumns(
        "lerobot", path, float(info["fps"]), int(table.num_rows),
        _concat([col[state_key]]) if state_key in col else None,
        _concat([col[k] for k in present]), present,
        col[tokens_key].reshape(table.num_rows, -1).astype(np.int32) if tokens_key in col else None,
        col[tokens_len_key].reshape(-1).astype(np.int64) if tokens_len_key in col else None,
        col["episode_index"].astype(np.int64), col["frame_index"].astype(np.int64),
        col["task_index"].astype(np.int64), tasks, {e: i for i, e in enumerate(ep_index)}, ends, embodiment, video,
        col[TIMESTAMP].astype(np.float64))


def _zarr(path: Path, action_keys, state_key, tokens_key, tokens_len_key) -> ShardColumns:
    import zarr
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    data = group["data"]
    names = set(data.array_keys())
    ends = np.asarray(group["meta/episode_ends"][:], np.int64)
    n = int(ends[-1]) if len(ends) else 0
    read = {k: np.asarray(data[k][:]) for k in (*action_keys, state_key, tokens_key, tokens_len_key, *FRAME_KEYS)
            if k in names}
    episodes = attrs.get("episodes", [])
    if "episode_index" not in read:
        read["episode_index"] = np.repeat(np.arange(len(ends)), np.diff(np.concatenate([[0], ends])))
    if "frame_index" not in read:
        starts = np.concatenate([[0], ends[:-1]])
        read["frame_index"] = np.arange(n) - np.repeat(starts, np.diff(np.concatenate([[0], ends])))
    tasks = list(attrs.get("tasks", []))
    if "task_index" not in read:
        per_ep = [tasks.index(e["task"]) if e.get("task") in tasks else 0 for e in episodes] or [0] * len(ends)
        read["task_index"] = np.repeat(np.asarray(per_ep), np.diff(np.concatenate([[0], ends])))
    present = tuple(k for k in action_keys if k in read)
    embodiment = [str(e.get("embodiment", "")) for e in episodes] or [""] * len(ends)
    return ShardColumns(
        "zarr", path, float(attrs.get("fps", 30.0)), n,
        _concat([read[state_key]]) if state_key in read else None,
        _concat([read[k] for k in present]), present,
        read[tokens_key].reshape(n, -1).astype(np.int32) if tokens_key in read else None,
        read[tokens_len_key].reshape(-1).astype(np.int64) if tokens_len_key in read else None,
        read["episode_index"].astype(np.int64), read["frame_index"].astype(np.int64),
        read["task_index"].astype(np.int64), tasks, {i: i for i in range(len(ends))}, ends, embodiment,
        zarr_group=data)
