"""A shard's per-frame columns as numpy, read once per process through the shard's reader.

Pixels stay where they are: the reader decodes a LeRobot MP4 frame or reads a Zarr chunk per sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shards.formats import ShardReader

FRAME_KEYS = ("episode_index", "frame_index", "task_index")


@dataclass
class ShardColumns:
    """Everything about one shard a sample needs except pixels (which `reader` gives)."""

    reader: ShardReader
    frames: int
    state: np.ndarray | None              # (N, Ds) float32
    action: np.ndarray | None             # (N, Da) float32, present action keys concatenated
    action_keys: tuple[str, ...]          # those present, in order
    action_valid: np.ndarray | None       # (N, Da) bool: False where a dim of the action is no label (action.mask)
    tokens: np.ndarray | None             # (N, W) int32
    tokens_len: np.ndarray | None         # (N,) int
    episode_index: np.ndarray             # (N,) int64
    frame_index: np.ndarray               # (N,) int64
    task_index: np.ndarray                # (N,) int64
    tasks: list[str]
    episode_row: dict[int, int]           # episode_index -> row in the episode tables below
    episode_end: np.ndarray               # (E,) end row (exclusive) of each episode within the shard
    embodiment: list[str]                 # (E,)
    cameras: frozenset[str] = frozenset()
    rows: np.ndarray | None = None        # a view's episodes: sample k of the shard is row rows[k]

    def end_row(self, row: int) -> int:
        return int(self.episode_end[self.episode_row[int(self.episode_index[row])]])


def _concat(parts: list[np.ndarray]) -> np.ndarray | None:
    if not parts:
        return None
    return np.ascontiguousarray(np.concatenate([p.reshape(len(p), -1).astype(np.float32) for p in parts], axis=1))


def _valid(col: dict[str, Any], present: tuple[str, ...], mask_key: str | None, n: int) -> np.ndarray | None:
    """Per-frame validity of the concatenated action: the mask column over `action`'s dims, True elsewhere."""
    if mask_key is None or mask_key not in col or "action" not in present:
        return None
    parts = []
    for key in present:
        width = int(np.prod(col[key].shape[1:])) if col[key].ndim > 1 else 1
        parts.append(col[mask_key].reshape(n, -1) > 0.5 if key == "action" else np.ones((n, width), bool))
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def load_columns(reader: ShardReader, action_keys: tuple[str, ...], state_key: str, tokens_key: str,
                 tokens_len_key: str, mask_key: str | None = None) -> ShardColumns:
    wanted = [*action_keys, state_key, tokens_key, tokens_len_key, *FRAME_KEYS] + ([mask_key] if mask_key else [])
    col: dict[str, Any] = reader.columns(wanted)
    episodes = reader.episodes()
    n = len(col["episode_index"]) if "episode_index" in col else reader.info().frames
    present = tuple(k for k in action_keys if k in col)
    tasks = reader.tasks()
    return ShardColumns(
        reader, int(n),
        _concat([col[state_key]]) if state_key in col else None,
        _concat([col[k] for k in present]), present, _valid(col, present, mask_key, int(n)),
        col[tokens_key].reshape(n, -1).astype(np.int32) if tokens_key in col else None,
        col[tokens_len_key].reshape(-1).astype(np.int64) if tokens_len_key in col else None,
        col["episode_index"].reshape(-1).astype(np.int64), col["frame_index"].reshape(-1).astype(np.int64),
        col["task_index"].reshape(-1).astype(np.int64), tasks, {e.index: i for i, e in enumerate(episodes)},
        np.asarray([e.start + e.length for e in episodes], np.int64), [e.embodiment for e in episodes],
        frozenset(c.key for c in reader.info().cameras))
