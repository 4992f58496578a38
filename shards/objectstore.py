"""Shards on an object store (`s3://bucket/prefix`, any fsspec URL): exactly-once without rename.

S3 has no atomic directory rename, so a shard is published in an order that makes its marker mean
"complete" (the local writer's `shard.json` is that marker, byte for byte the local one):

1. a shard is written and committed in a local staging root (`shards.writer.write_shard`);
2. whatever an earlier, interrupted attempt left under `shards/<name>/` is deleted, marker first;
3. every file except `shard.json` is uploaded; then `shard.json` — the commit — last.

Readers (`committed_shard`, `committed_shards`) trust a shard only when its marker exists *and* the
sha256 content hash it records matches the bytes now under the prefix (recomputed by streaming them),
so a half-uploaded or later-tampered shard is treated as absent and redone on rerun. `catalog.json`
is one PUT (atomic), written after every shard.

Endpoint and credentials: standard AWS environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) or
fsspec configuration (`FSSPEC_S3='{"endpoint_url": ...}'`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from schemas.names import SHARD_FILE, SHARDS_DIR

log = logging.getLogger("psi0.shards")
BLOCK_SIZE = 4 << 20
VERIFY_THREADS = 8


def is_url(path: str | Path) -> bool:
    """True for `proto://...` other than `file://` (handled as a local path)."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def filesystem(url: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url)


def join(base: str, *parts: str) -> str:
    return posixpath.join(str(base).rstrip("/"), *parts)


def open_input(url: str) -> BinaryIO:
    """Seekable binary file object over `url` (read-ahead in 4 MB range requests)."""
    fs, path = filesystem(url)
    return fs.open(path, "rb", block_size=BLOCK_SIZE, cache_type="readahead")


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    return fs.cat_file(path)


def prefetch(base: str, names: tuple[str, ...] | list[str], batch: int = 32) -> Iterator[bytes]:
    """Bytes of `base/<name>` for each name, in order, fetched `batch` at a time concurrently (one GET
    per image frame would otherwise be a round trip each)."""
    fs, path = filesystem(base)
    keys = [posixpath.join(path, n) for n in names]
    for start in range(0, len(keys), batch):
        chunk = keys[start:start + batch]
        blobs = fs.cat(chunk, on_error="return")
        for key in chunk:
            blob = blobs[key]
            if isinstance(blob, BaseException):
                raise blob
            yield blob


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    return fs.isfile(path)


def put_bytes(url: str, data: bytes) -> None:
    """One PUT: on S3 the object appears whole or not at all."""
    fs, path = filesystem(url)
    fs.pipe_file(path, data)


def remove_tree(url: str) -> None:
    """Delete everything under `url/`, its `shard.json` first (so no reader sees a marker over a partial set)."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    try:
        fs.rm_file(posixpath.join(path, SHARD_FILE))
    except (FileNotFoundError, OSError):
        pass
    try:
        keys = fs.find(path, withdirs=False)
    except FileNotFoundError:
        keys = []
    if keys:
        fs.rm(keys)
    fs.invalidate_cache(path)


def upload_tree(local: Path, url: str, last: str | None = None,
                after_data: Callable[[], None] | None = None) -> list[str]:
    """Upload every file under `local` to `url/<relative path>`, the file named `last` after all others.
    `after_data` runs between the two (crash tests kill the process there). Returns the relative paths."""
    fs, path = filesystem(url)
    rels = sorted((p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()),
                  key=lambda r: r.split("/"))
    data = [r for r in rels if r != last]
    if data:
        fs.put([str(local / r) for r in data], [posixpath.join(path, r) for r in data])
    if after_data is not None:
        after_data()
    if last is not None and last in rels:
        fs.put_file(str(local / last), posixpath.join(path, last))
    fs.invalidate_cache(path)
    return rels


def download_tree(url: str, local: Path) -> list[str]:
    """Copy every object under `url/` into `local` (created); returns the relative paths."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    keys = sorted(fs.find(path, withdirs=False))
    rels = [k[len(path.rstrip("/")) + 1:] for k in keys]
    for rel in rels:
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
    if keys:
        fs.get(keys, [str(local / r) for r in rels])
    return rels


# ---------------------------------------------------------------- shards
def publish_shard(local_shard: Path, url: str, after_data: Callable[[], None] | None = None) -> None:
    """Replace whatever is at `url` with the committed local shard `local_shard`, marker last."""
    remove_tree(url)
    upload_tree(local_shard, url, last=SHARD_FILE, after_data=after_data)


def remote_content_hash(url: str, exclude: tuple[str, ...] = (SHARD_FILE,)) -> str:
    """`shards.commit.content_hash` of the objects under `url/`, streamed (same order, same bytes)."""
    fs, path = filesystem(url)
    base = path.rstrip("/") + "/"
    sizes = {k[len(base):]: int(v.get("size") or 0) for k, v in fs.find(path, withdirs=False, detail=True).items()}
    rels = [r for r in sorted(sizes, key=lambda r: r.split("/")) if r not in exclude]
    digest = hashlib.sha256()
    for batch in _batches(rels, sizes):
        if len(batch) == 1 and sizes[batch[0]] > BATCH_BYTES:       # a big file: streamed
            digest.update(batch[0].encode() + b"\0")
            with fs.open(base + batch[0], "rb", block_size=BLOCK_SIZE, cache_type="none") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            continue
        blobs = fs.cat([base + r for r in batch])                  # small files: fetched concurrently
        for rel in batch:
            digest.update(rel.encode() + b"\0")
            digest.update(blobs[base + rel])
    return digest.hexdigest()


BATCH_BYTES = 32 << 20


def _batches(rels: list[str], sizes: dict[str, int]) -> list[list[str]]:
    """Consecutive runs of files totalling at most BATCH_BYTES (bounded memory), a big file alone."""
    out: list[list[str]] = []
    current: list[str] = []
    total = 0
    for rel in rels:
        if current and total + sizes[rel] > BATCH_BYTES:
            out.append(current)
            current, total = [], 0
        current.append(rel)
        total += sizes[rel]
    if current:
        out.append(current)
    return out


def committed_shard(url: str) -> dict[str, Any] | None:
    """The parsed `shard.json` at `url` if the shard there is complete and intact, else None."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    try:
        data = json.loads(fs.cat_file(posixpath.join(path, SHARD_FILE)))
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("%s: unreadable %s; treating the shard as absent", url, SHARD_FILE)
        return None
    expected = data.get("record", {}).get("content_hash")
    actual = remote_content_hash(url)
    if actual != expected:
        log.warning("%s: content hash %s != %s in %s; treating the shard as absent", url, actual[:12],
                    str(expected)[:12], SHARD_FILE)
        return None
    return data


def committed_shards(out_url: str) -> dict[str, dict[str, Any]]:
    """{shard dir name: parsed shard.json} for every complete, intact shard under `out_url/shards/`."""
    fs, path = filesystem(join(out_url, SHARDS_DIR))
    fs.invalidate_cache(path)
    base = path.rstrip("/") + "/"
    try:
        keys = fs.find(path, withdirs=False)
    except FileNotFoundError:
        return {}
    rels = [k[len(base):] for k in keys if k.startswith(base)]
    names = sorted({r.split("/", 1)[0] for r in rels if r.count("/") == 1 and r.endswith("/" + SHARD_FILE)})
    root = join(out_url, SHARDS_DIR)
    with ThreadPoolExecutor(max_workers=VERIFY_THREADS, thread_name_prefix="verify") as pool:
        found = list(pool.map(lambda name: committed_shard(join(root, name)), names))
    return {name: data for name, data in zip(names, found) if data is not None}
