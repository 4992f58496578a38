"""Atomic shard commit: write under `.tmp-<id>`, fsync every file, rename into place.

A shard directory therefore either exists complete (with its `shard.json`) or not at all, and a
crashed job leaves only `.tmp-*` debris that the next run removes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from schemas.durable import fsync_dir, fsync_tree
from schemas.names import SHARD_FILE, SHARDS_DIR, STAGING_PREFIX
from shards.integrity import UNHASHED


def shards_dir(out_root: Path) -> Path:
    return Path(out_root) / SHARDS_DIR


def staging_path(out_root: Path, name: str) -> Path:
    path = shards_dir(out_root) / f"{STAGING_PREFIX}{name}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def content_hash(root: Path, exclude: tuple[str, ...] = UNHASHED) -> str:
    """sha256 over (relative path, bytes) of every file, in sorted path order (`shard.json` and a validate
    stamp excluded: they describe the others)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        digest.update(rel.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def commit(staging: Path, final: Path) -> None:
    """fsync the staged tree, then rename it to `final` (replacing a stale copy if one exists)."""
    fsync_tree(staging)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    fsync_dir(final.parent)


def clean_staging(out_root: Path) -> list[str]:
    """Remove debris of interrupted writes; returns what was removed."""
    removed = []
    base = shards_dir(out_root)
    if base.exists():
        for path in sorted(base.glob(f"{STAGING_PREFIX}*")):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def committed_shards(out_root: Path) -> dict[str, dict[str, Any]]:
    """{shard dir name: parsed shard.json} for every committed shard under the output root."""
    base = shards_dir(out_root)
    found: dict[str, dict[str, Any]] = {}
    if not base.exists():
        return found
    for path in sorted(base.iterdir()):
        if path.name.startswith(STAGING_PREFIX) or not (path / SHARD_FILE).is_file():
            continue
        found[path.name] = json.loads((path / SHARD_FILE).read_text())
    return found
