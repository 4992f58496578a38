"""One fsspec layer for object-store URLs (`s3://bucket/key`): what readers, the shard writer and the
shard readers use to list, open, read and put bytes; local paths never go through it.

Readers keep their local code paths untouched and branch on `is_url` only where a file is listed or
opened, so a local job is byte-for-byte what it was. Remote URIs stay in `SourceRef`/`VideoRef` as full
URLs (`s3://...`), which keeps reject messages and outputs free of temp paths (deterministic).

Endpoint and credentials come from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) or from
fsspec's own configuration (`FSSPEC_S3='{"endpoint_url": ...}'`, set by the jobs' `--storage-option`).
"""
from __future__ import annotations

import posixpath
from typing import Any, BinaryIO

REMOTE_BLOCK_SIZE = 4 << 20
"""Range-request size for remote file objects: big enough to stream a video in a few requests, small
enough that a seek back (zip central directory, MP4 index) does not refetch tens of MB."""


def is_url(path: str) -> bool:
    """True for `proto://...` other than `file://` (those are opened as local paths)."""
    return "://" in str(path) and not str(path).startswith("file://")


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path without protocol) for `url`."""
    import fsspec

    return fsspec.core.url_to_fs(url)


def join(base: str, *parts: str) -> str:
    """URL-safe join (`os.path.join` semantics for the path part)."""
    return posixpath.join(base.rstrip("/"), *parts) if parts else base


PROBE_BLOCK_SIZE = 256 << 10
"""Range-request size for header-only reads (MP4 probe and box scan): a few small GETs, not the stream."""


def open_remote(url: str, cache: str = "readahead", block_size: int = REMOTE_BLOCK_SIZE) -> BinaryIO:
    """A seekable binary file object over `url`. `cache="blockcache"` keeps a few blocks (for files read
    at interleaved positions, e.g. a zip shared by a prefetch thread and the writer)."""
    fs, path = filesystem(url)
    options = {"maxblocks": 8} if cache == "blockcache" else None
    return fs.open(path, "rb", block_size=block_size, cache_type=cache, cache_options=options)


def read_bytes(url: str) -> bytes:
    """The whole object in one GET (small files: HDF5 poses, JSON)."""
    fs, path = filesystem(url)
    return fs.cat_file(path)


def exists(url: str) -> bool:
    """True when `url` is a file (the listing cache is dropped first: another process may have written it)."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    return fs.isfile(path)


def put_bytes(url: str, data: bytes) -> None:
    """One PUT: on S3 the object appears whole or not at all."""
    fs, path = filesystem(url)
    fs.pipe_file(path, data)


def info(url: str) -> dict[str, Any] | None:
    """fsspec `info` of a file, or None when absent (or a directory)."""
    fs, path = filesystem(url)
    try:
        found = fs.info(path)
    except (FileNotFoundError, OSError):
        return None
    return found if found.get("type") == "file" else None


def list_files(root: str) -> list[str]:
    """Every file (full URL) under `root`, sorted. Empty when `root` does not exist."""
    fs, path = filesystem(root)
    fs.invalidate_cache(path)
    try:
        found = fs.find(path, withdirs=False)
    except FileNotFoundError:
        return []
    return sorted(fs.unstrip_protocol(p) for p in found)


def relative(url: str, root: str) -> str:
    """`url` relative to `root` (both full URLs)."""
    base = root.rstrip("/") + "/"
    if not url.startswith(base):
        raise ValueError(f"{url} is not under {root}")
    return url[len(base):]
