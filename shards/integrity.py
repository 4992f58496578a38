"""Content hashes, checked whenever a shard is opened for reading.

The writer records in `shard.json` a sha256 of every file (`files`) beside the whole-shard
`content_hash`. Every shard reader (`shards.formats.base.BaseReader`, so every format and every
consumer: training, the dashboard, validate, tokenizer fitting) calls `verify_shard` when it opens a
shard folder, and refuses a shard whose bytes are not the ones written, naming the file:

    ShardIntegrityError: out/shards/egodex-00000: data/chunk-000/file-000.parquet differs from
    shard.json (sha256 3f2a... recorded, 9c01... on disk): the shard was modified after it was written

Cost. A shard is hashed once per process (a repeat open with unchanged file sizes and mtimes is free),
and not at all when `psi0 validate --stamp` has vouched for it: the stamp (`validated.json` in the
shard folder) lists every file's size and mtime (ETag on an object store) at the moment validate
re-hashed it, and an open whose listing still matches trusts it. Anything else that changed a file
changes its size or mtime, and the shard is hashed again.

Shards without `shard.json` (LeRobot datasets written by LeRobot, replay-buffer stores written
elsewhere) carry no hashes: they are opened unverified. `PSI0_VERIFY_SHARDS=0` turns the check off for a
process (e.g. a dashboard over a very large object-store root); it is on by default.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from schemas.names import SHARD_FILE
from shards.location import Location

log = logging.getLogger("psi0.shards.integrity")

STAMP_FILE = "validated.json"
"""`psi0 validate --stamp` writes it into each shard it found sound (not part of the shard's content hash)."""
STAMP_FORMAT = "psi0.validated/1"
UNHASHED = (SHARD_FILE, STAMP_FILE)
"""Files inside a shard folder that its content hash does not cover: they describe the others."""
ENV = "PSI0_VERIFY_SHARDS"
BLOCK = 1 << 20

_verified: set[tuple[Any, ...]] = set()
_lock = threading.Lock()
_state = threading.local()
_parsed: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
"""Local shard.json files already parsed: path -> ((size, mtime_ns), hashes). A root's shard is opened twice
per open (Output.open_shard, then the reader): parse each version once, keep only its hashes."""
stats = {"shards_hashed": 0, "files_hashed": 0, "bytes_hashed": 0, "stamps_trusted": 0}
"""Counters for this process (what the cheap paths saved is visible in tests and logs)."""


class ShardIntegrityError(ValueError):
    """A shard whose files are not the ones its `shard.json` (or its catalog) records.

    One-argument constructible (a DataLoader worker re-raises exceptions as `type(exc)(message)`)."""

    def __init__(self, message: str, shard: str = "", path: str = ""):
        super().__init__(message)
        self.shard, self.path = shard, path


class ShardReadError(ValueError):
    """A shard file that cannot be parsed (truncated or corrupt), named."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


# ------------------------------------------------------------------------------------------ hashing
def _files(root: Path, exclude: tuple[str, ...]) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file below `root`, in `shards.commit.content_hash` order."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel not in exclude:
            out.append((rel, path))
    return out


def hash_files(root: Path, exclude: tuple[str, ...] = UNHASHED) -> tuple[str, dict[str, str]]:
    """(content hash, {relative path: sha256}) of a local folder, in one read of every file. The content
    hash is `shards.commit.content_hash`'s: sha256 over (path, bytes) of every file in sorted order."""
    whole = hashlib.sha256()
    table: dict[str, str] = {}
    for rel, path in _files(Path(root), exclude):
        one = hashlib.sha256()
        whole.update(rel.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(BLOCK), b""):
                whole.update(block)
                one.update(block)
        table[rel] = one.hexdigest()
    return whole.hexdigest(), table


def _listing(where: Location) -> dict[str, tuple[Any, Any]]:
    """{relative path: (size, mtime_ns or ETag)} of the shard's hashed files: what a stamp records."""
    if not where.is_url:
        root = where.path
        out = {}
        for rel, path in _files(root, UNHASHED):
            st = path.stat()
            out[rel] = (st.st_size, st.st_mtime_ns)
        return out
    fs, path = where.filesystem()
    fs.invalidate_cache(path)
    base = path.rstrip("/") + "/"
    found = fs.find(path, withdirs=False, detail=True)
    out = {}
    for key, info in found.items():
        rel = key[len(base):]
        if rel in UNHASHED:
            continue
        version = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime")
        out[rel] = (int(info.get("size") or 0), str(version) if version is not None else None)
    return dict(sorted(out.items(), key=lambda kv: kv[0].split("/")))


def _read_blocks(where: Location, rel: str) -> Iterator[bytes]:
    if not where.is_url:
        with open(where.path / rel, "rb") as fh:
            yield from iter(lambda: fh.read(BLOCK), b"")
        return
    fs, path = where.filesystem()
    with fs.open(path.rstrip("/") + "/" + rel, "rb", cache_type="none") as fh:
        yield from iter(lambda: fh.read(BLOCK), b"")


# ------------------------------------------------------------------------------------------ verify
def enabled() -> bool:
    """Verification is on unless `PSI0_VERIFY_SHARDS=0` or inside `skipped()`."""
    return os.environ.get(ENV, "1") != "0" and not getattr(_state, "skip", False)


@contextlib.contextmanager
def skipped() -> Iterator[None]:
    """Open readers without verification in this thread (`psi0 validate` hashes shards itself)."""
    before = getattr(_state, "skip", False)
    _state.skip = True
    try:
        yield
    finally:
        _state.skip = before


def _shard_json(where: Location) -> dict[str, Any] | None:
    marker = where.join(SHARD_FILE)
    if not marker.is_url:
        try:
            st = os.stat(marker.uri)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        version = (st.st_size, st.st_mtime_ns)
        with _lock:
            hit = _parsed.get(marker.uri)
        if hit is not None and hit[0] == version:
            return hit[1]
        data = _parse_shard_json(where, marker)
        with _lock:
            _parsed[marker.uri] = (version, data)
        return data
    if not marker.is_file():
        return None
    return _parse_shard_json(where, marker)


def _parse_shard_json(where: Location, marker: Location) -> dict[str, Any]:
    """The part of shard.json integrity checks use: `record.content_hash` and the `files` table (the
    cache keeps only these: the full file is mostly stats grids, ~3.5 MB for an EgoDex shard)."""
    try:
        data = marker.read_json()
        record = data["record"]
        if not isinstance(record.get("content_hash"), str):
            raise TypeError("record.content_hash is not a string")
        files = data.get("files")
        if files is not None and not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())):
            raise TypeError("files is not a {path: sha256} table")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ShardIntegrityError(f"{where}: {SHARD_FILE} is unreadable ({type(exc).__name__}: {exc})",
                                  str(where), SHARD_FILE) from None
    return {"record": {"content_hash": record["content_hash"]}, "files": files}


def verify_shard(where: str | Path | Location, expected: str | None = None) -> bool:
    """Check a shard folder's files against its `shard.json` (and `expected`, the catalog's content hash,
    when given). True: verified (now or before in this process, or by a matching stamp); False: the shard
    has no `shard.json` (not written by psi0) or verification is off. Raises ShardIntegrityError naming
    the first file that differs, is missing, or was not written with the shard."""
    where = Location.of(where)
    if not enabled():
        return False
    data = _shard_json(where)
    if data is None:
        return False
    recorded = data["record"]["content_hash"]
    if expected and expected != recorded:
        raise ShardIntegrityError(f"{where}: the catalog records content hash {expected[:12]}..., its own "
                                  f"{SHARD_FILE} {recorded[:12]}...: one of them was rewritten", str(where), SHARD_FILE)
    listing = _listing(where)
    key = (where.uri, recorded, tuple((k, *v) for k, v in listing.items()))
    with _lock:
        if key in _verified:
            return True
    if _stamp_matches(where, recorded, listing):
        stats["stamps_trusted"] += 1
    else:
        _hash_and_compare(where, recorded, data.get("files"), listing)
    with _lock:
        _verified.add(key)
    return True


def _stamp_matches(where: Location, recorded: str, listing: dict[str, tuple[Any, Any]]) -> bool:
    stamp_at = where.join(STAMP_FILE)
    if not stamp_at.is_file():
        return False
    try:
        stamp = stamp_at.read_json()
        files = {k: tuple(v) for k, v in stamp["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("%s: unreadable %s ignored: re-hashing", where, STAMP_FILE)
        return False
    return stamp.get("format") == STAMP_FORMAT and stamp.get("content_hash") == recorded and files == listing


def _hash_and_compare(where: Location, recorded: str, table: dict[str, str] | None,
                      listing: dict[str, tuple[Any, Any]]) -> None:
    start = time.monotonic()
    rels = list(listing)
    if table is not None:
        missing = sorted(set(table) - set(rels), key=lambda r: r.split("/"))
        if missing:
            raise ShardIntegrityError(f"{where}: {missing[0]} is missing (listed in {SHARD_FILE})"
                                      + (f", and {len(missing) - 1} more" if len(missing) > 1 else ""),
                                      str(where), missing[0])
        extra = [r for r in rels if r not in table]
        if extra:
            raise ShardIntegrityError(f"{where}: {extra[0]} was not written with the shard (not in {SHARD_FILE})",
                                      str(where), extra[0])
    whole = hashlib.sha256()
    for rel in rels:
        one = hashlib.sha256()
        whole.update(rel.encode() + b"\0")
        for block in _read_blocks(where, rel):
            whole.update(block)
            one.update(block)
            stats["bytes_hashed"] += len(block)
        stats["files_hashed"] += 1
        if table is not None and one.hexdigest() != table[rel]:
            raise ShardIntegrityError(f"{where}: {rel} differs from {SHARD_FILE} (sha256 {table[rel][:12]}... "
                                      f"recorded, {one.hexdigest()[:12]}... on disk): the shard was modified after "
                                      "it was written", str(where), rel)
    stats["shards_hashed"] += 1
    if whole.hexdigest() != recorded:
        what = (f"{SHARD_FILE}'s file table agrees with the files but not with its content hash"
                if table is not None else
                "its files differ from the content hash in its shard.json (a shard written before per-file "
                "hashes: `psi0 validate` lists its files; re-ingest it to find which one changed)")
        raise ShardIntegrityError(f"{where}: {what}", str(where), SHARD_FILE if table is not None else "")
    took = time.monotonic() - start
    if took > 5.0:
        log.info("%s: verified in %.1f s; `psi0 validate --stamp` makes later opens check sizes and mtimes only",
                 where, took)


# ------------------------------------------------------------------------------------------ stamp
def write_stamp(where: str | Path | Location) -> dict[str, Any]:
    """Record that `where` was just verified in full: every hashed file's size and mtime (ETag). Call only
    after the shard's content hash was recomputed and matched (`psi0 validate --stamp` does)."""
    where = Location.of(where)
    data = _shard_json(where)
    if data is None:
        raise FileNotFoundError(f"{where}: no {SHARD_FILE}: nothing to vouch for")
    stamp = {"format": STAMP_FORMAT, "content_hash": data["record"]["content_hash"],
             "files": {k: list(v) for k, v in _listing(where).items()},
             "validated_unix": round(time.time(), 3)}
    text = json.dumps(stamp, indent=1, sort_keys=True) + "\n"
    if where.is_url:
        from schemas import remote

        remote.put_bytes(where.join(STAMP_FILE).uri, text.encode())
    else:
        from schemas.durable import write_json_atomic

        write_json_atomic(where.path / STAMP_FILE, None, text)
    return stamp


def forget() -> None:
    """Drop this process's memory of verified shards (tests; a long-lived process that wants to re-check)."""
    with _lock:
        _verified.clear()
        _parsed.clear()
