"""`schemas.durable.fsync_tree`: concurrent fsyncs keep the one-at-a-time guarantee (every file, then every
folder, then the root) and do not swallow errors."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from schemas import durable


def _tree(root: Path) -> tuple[set[str], set[str]]:
    files, dirs = set(), set()
    for d in ("a", "a/b", "c"):
        (root / d).mkdir(parents=True, exist_ok=True)
        dirs.add(str(root / d))
    for name in ("x.bin", "a/y.bin", "a/b/z.bin", "c/w.bin", "c/v.bin"):
        (root / name).write_bytes(os.urandom(4096))
        files.add(str(root / name))
    return files, dirs


def test_every_file_then_every_folder_then_the_root(tmp_path, monkeypatch):
    root = tmp_path / "staged"
    files, dirs = _tree(root)
    order: list[str] = []
    lock = threading.Lock()
    real = os.fsync

    def recording(fd: int) -> None:
        real(fd)
        with lock:
            order.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(durable.os, "fsync", recording)
    durable.fsync_tree(root)
    assert sorted(order) == sorted(files | dirs | {str(root)})        # each exactly once
    assert set(order[:len(files)]) == files                           # no folder before every file is synced
    assert set(order[len(files):-1]) == dirs and order[-1] == str(root)


def test_an_fsync_error_is_raised(tmp_path, monkeypatch):
    root = tmp_path / "staged"
    files, _ = _tree(root)
    bad = sorted(files)[2]
    real = os.fsync

    def failing(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == bad:
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(durable.os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output error"):
        durable.fsync_tree(root)
