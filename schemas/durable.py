"""Durable writes: fsync and atomic replace. One helper serves shards, teleop recordings and checkpoints.

A reader after a crash or power loss sees either the old file or the complete new one, never a torn
one: write to a sibling temp file, fsync it, `os.replace` it over the target, fsync the directory.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

FSYNC_WORKERS = 16
"""fsyncs in flight at once in `fsync_tree`: a journaling filesystem commits concurrent fsyncs together (ext4
groups them into one journal commit), so a shard's ~25 files and folders sync in about half the time of
one-after-another (measured here: 3.2 vs 6.5 ms median for 18 files in 7 folders, 5 vs 17-21 ms when the disk
is busy)."""


def write_json_atomic(path: Path, data: Any, text: str | None = None) -> None:
    """Write `text` (or `data` as indented, key-sorted JSON) to `path` atomically and durably."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text if text is not None else json.dumps(data, indent=1, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """fsync a directory (its entries: renames, new files) or a file, opened read-only."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file below `root`, then every directory below it, then `root` itself. Each level's
    fsyncs run concurrently (`FSYNC_WORKERS`); a level starts only when the one before has finished, so the
    guarantee is the one-at-a-time loop's: when this returns, every file's bytes and every entry are on disk."""
    root = Path(root)
    below = sorted(root.rglob("*"))
    _each(_fsync_file, [p for p in below if p.is_file()])
    _each(fsync_dir, [p for p in reversed(below) if p.is_dir()])
    fsync_dir(root)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _each(sync: Callable[[Path], None], paths: Sequence[Path]) -> None:
    """`sync(path)` for every path, `FSYNC_WORKERS` at a time; the first error is raised once all are done."""
    if len(paths) < 2:
        for path in paths:
            sync(path)
        return
    with ThreadPoolExecutor(min(FSYNC_WORKERS, len(paths)), thread_name_prefix="fsync") as pool:
        for done in [pool.submit(sync, path) for path in paths]:
            done.result()
