"""Shards on an object store (`s3://bucket/prefix`, any fsspec URL): exactly-once without rename.

S3 has no atomic directory rename, so a shard is published in an order that makes its marker mean
"complete" (the local writer's `shard.json` is that marker, byte for byte the local one):

1. a shard is written and committed in a local staging root (`shards.writer.write_shard`);
2. whatever an earlier, interrupted attempt left under `shards/<name>/` is deleted, marker first;
3. every file except `shard.json` is uploaded; then `shard.json` — the commit — last.

Readers (`committed_shard`, `committed_shards`) trust a shard only when its marker exists *and* its
content still matches: on S3 the marker carries (object metadata) a fingerprint of the data objects'
listing — key, size, ETag — taken right after they were uploaded, so one LIST + one HEAD proves nothing
was rewritten, lost or added since; elsewhere, or with verify="content", the sha256 content hash in
shard.json is recomputed from the bytes. A half-uploaded or later-changed shard is treated as absent
and redone on rerun. `catalog.json` is one PUT (atomic), written after every shard.

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
from schemas.remote import REMOTE_BLOCK_SIZE as BLOCK_SIZE
from schemas.remote import filesystem, join
from shards.integrity import UNHASHED

log = logging.getLogger("psi0.shards")
VERIFY_THREADS = 8


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


def upload_tree(local: Path, url: str, last: str | None = None, after_data: Callable[[], None] | None = None,
                last_metadata: Callable[[], dict[str, str]] | None = None) -> list[str]:
    """Upload every file under `local` to `url/<relative path>`, the file named `last` after all others
    (with object metadata `last_metadata()` where the store keeps it). `after_data` runs between the two
    (crash tests kill the process there). Returns the relative paths."""
    fs, path = filesystem(url)
    rels = sorted((p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()),
                  key=lambda r: r.split("/"))
    data = [r for r in rels if r != last]
    if data:
        fs.put([str(local / r) for r in data], [posixpath.join(path, r) for r in data])
    if after_data is not None:
        after_data()
    if last is not None and last in rels:
        metadata = last_metadata() if last_metadata is not None else None
        if metadata and _keeps_metadata(fs):
            fs.pipe_file(posixpath.join(path, last), (local / last).read_bytes(), Metadata=metadata)
        else:
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
LISTING_KEY = "psi0-listing"
"""Marker object metadata: sha256 of the shard's object listing (key, size, ETag) taken right after its
data was uploaded. A later check compares one LIST + one HEAD against it instead of reading every byte
back; any rewritten, missing or extra object changes the listing."""


def _keeps_metadata(fs: Any) -> bool:
    return "s3" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))


def listing_fingerprint(url: str, exclude: tuple[str, ...] = UNHASHED) -> str | None:
    """sha256 over the sorted (relative key, size, ETag) of the objects under `url/`; None when the
    store gives no ETags."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    base = path.rstrip("/") + "/"
    rows = []
    for key, info in sorted(fs.find(path, withdirs=False, detail=True).items()):
        rel = key[len(base):]
        if rel in exclude:
            continue
        tag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
        if not tag:
            return None
        rows.append([rel, int(info.get("size") or 0), str(tag).strip('"')])
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def publish_shard(local_shard: Path, url: str, after_data: Callable[[], None] | None = None) -> None:
    """Replace whatever is at `url` with the committed local shard `local_shard`, marker last (carrying
    the fingerprint of the data objects as uploaded, where the store keeps object metadata)."""
    remove_tree(url)

    def marker_metadata() -> dict[str, str]:
        fingerprint = listing_fingerprint(url)
        return {LISTING_KEY: fingerprint} if fingerprint else {}

    upload_tree(local_shard, url, last=SHARD_FILE, after_data=after_data, last_metadata=marker_metadata)


def remote_content_hash(url: str, exclude: tuple[str, ...] = UNHASHED) -> str:
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


def committed_shard(url: str, verify: str = "auto") -> dict[str, Any] | None:
    """The parsed `shard.json` at `url` if the shard there is complete and intact, else None.

    verify="content": recompute the sha256 content hash from the bytes under `url/` and compare it with
    the one in shard.json. "auto" (default): where the marker carries the listing fingerprint written at
    publish time, compare that instead (one LIST + one HEAD, no bytes read back); else as "content"."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    marker = posixpath.join(path, SHARD_FILE)
    try:
        data = json.loads(fs.cat_file(marker))
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("%s: unreadable %s; treating the shard as absent", url, SHARD_FILE)
        return None
    if verify == "auto" and _keeps_metadata(fs):
        try:
            recorded = fs.metadata(marker).get(LISTING_KEY)
        except (FileNotFoundError, OSError):
            return None
        if recorded:
            if listing_fingerprint(url) == recorded:
                return data
            log.warning("%s: objects changed since the shard was committed; treating it as absent", url)
            return None
    expected = data.get("record", {}).get("content_hash")
    actual = remote_content_hash(url)
    if actual != expected:
        log.warning("%s: content hash %s != %s in %s; treating the shard as absent", url, actual[:12],
                    str(expected)[:12], SHARD_FILE)
        return None
    return data


def committed_shards(out_url: str, verify: str = "auto") -> dict[str, dict[str, Any]]:
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
        found = list(pool.map(lambda name: committed_shard(join(root, name), verify), names))
    return {name: data for name, data in zip(names, found) if data is not None}
