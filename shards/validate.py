"""`psi0 validate OUT` — re-open every shard through psi0's reader and with its format's own
independent reader (LeRobot's `LeRobotDataset`, zarr-python), and check each against the catalog and
against its own `shard.json` (episode and frame counts, inputs, sampled values, content hashes, and
every file's own hash, naming the files that changed).

With `--stamp`, each shard found sound gets a `validated.json` (its files' sizes and mtimes): readers
(training, the dashboard) then trust it without re-hashing until a file changes."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from schemas.catalog import ShardRecord
from schemas.names import SHARD_FILE
from shards import formats, integrity
from shards.objectstore import remote_content_hash
from shards.reader import Output, open_output


def validate(out_root: str | Path, sample_frames: int = 3, stamp: bool = False) -> list[str]:
    """Problems found (empty list = valid). `out_root`: an output root, a bare shard, or a URL of one.
    `stamp`: write `validated.json` into every shard that showed no problem (`shards.integrity`)."""
    with integrity.skipped():         # this function re-hashes every shard itself, and reports instead of raising
        return _validate(out_root, sample_frames, stamp)


def _validate(out_root: str | Path, sample_frames: int, stamp: bool) -> list[str]:
    out = open_output(out_root)
    catalog = out.catalog
    problems: list[str] = []
    ingested = {k: v for k, v in catalog.inputs.items() if v["status"] == "ingested"}
    for record in catalog.shards:
        try:
            where = out.location(record)
        except PermissionError:
            problems.append(f"{record.path}: points outside the output root")
            continue
        marker = where.join(SHARD_FILE)
        if not marker.is_file():
            problems.append(f"{record.path}: missing")
            continue
        before = len(problems)
        own_json = marker.read_json()
        if where.is_url:
            actual, files = remote_content_hash(where.uri), None
        else:
            actual, files = integrity.hash_files(where.path)
        if actual != record.content_hash:
            problems.append(f"{record.path}: content hash differs from the catalog")
        own = own_json.get("record", {})
        if actual != own.get("content_hash"):
            problems.append(f"{record.path}: content hash differs from its own {SHARD_FILE}")
        table = own_json.get("files")
        if files is not None and isinstance(table, dict):
            for rel in sorted(set(table) | set(files), key=lambda r: r.split("/")):
                if rel not in files:
                    problems.append(f"{record.path}: {rel} is missing")
                elif rel not in table:
                    problems.append(f"{record.path}: {rel} was not written with the shard")
                elif files[rel] != table[rel]:
                    problems.append(f"{record.path}: {rel} differs from {SHARD_FILE} (modified after it was written)")
        expected = [k for k, v in ingested.items() if v["shard"] == record.shard_id]
        if sorted(expected) != sorted(record.inputs):
            problems.append(f"{record.path}: catalog lists {len(expected)} inputs, shard {len(record.inputs)}")
        if record.episodes == 0:      # every input rejected: the shard only records their fates
            if stamp and len(problems) == before:
                integrity.write_stamp(where)
            continue
        if record.format not in formats.names():
            problems.append(f"{record.path}: format {record.format!r} is not registered")
            continue
        fmt = formats.get(record.format)
        try:
            problems += _check_reader(out, record, sample_frames)
            if fmt.verify is not None:
                problems += fmt.verify(where, record)
        except Exception as exc:  # noqa: BLE001 - reported, not raised: validate must see every shard
            problems.append(f"{record.path}: reader failed: {type(exc).__name__}: {exc}")
        if stamp and len(problems) == before:
            integrity.write_stamp(where)
    shard_frames = sum(r.frames for r in catalog.shards if r.format == catalog.shards[0].format) if catalog.shards else 0
    if shard_frames != sum(v["frames"] for v in ingested.values()):
        problems.append(f"frames in shards ({shard_frames}) != frames in catalog inputs")
    return problems


def _check_reader(out: Output, record: ShardRecord, sample_frames: int) -> list[str]:
    """psi0's own reader sees what the record says: episodes in input order, frame counts, finite values."""
    reader = out.open_shard(record)
    problems = []
    try:
        info, episodes = reader.info(), reader.episodes()
        if len(episodes) != record.episodes or info.frames != record.frames:
            problems.append(f"{record.path}: reader sees {len(episodes)} episodes / {info.frames} frames, "
                            f"record {record.episodes} / {record.frames}")
        if tuple(e.source_id for e in episodes) != tuple(record.inputs):
            problems.append(f"{record.path}: episodes are not the record's inputs in order")
        if sum(e.length for e in episodes) != info.frames:
            problems.append(f"{record.path}: episode lengths sum to {sum(e.length for e in episodes)}, "
                            f"not {info.frames}")
        for e in episodes[:: max(1, len(episodes) // max(1, sample_frames))][:sample_frames]:
            for key, values in reader.columns(None, episode=e.index).items():
                if len(values) != e.length:
                    problems.append(f"{record.path}: {key} has {len(values)} rows in episode {e.index}, "
                                    f"expected {e.length}")
                elif np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
                    problems.append(f"{record.path}: non-finite {key} in episode {e.index}")
    finally:
        reader.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="psi0 validate", description=__doc__,
                                 epilog="example: psi0 validate out/egodex s3://bucket/out/he  (exit 1 on any problem)")
    ap.add_argument("roots", nargs="+", help="output roots (catalog.json), bare shard folders, or s3:// URLs of them")
    ap.add_argument("--stamp", action="store_true",
                    help="write validated.json into every shard found sound: training and the dashboard then check "
                         "only file sizes and mtimes when they open it, instead of re-hashing it once per process")
    args = ap.parse_args(argv)
    bad = 0
    for root in args.roots:
        problems = validate(root, stamp=args.stamp)
        status = "OK" if not problems else f"{len(problems)} problem(s)"
        print(f"{root}: {status}")
        for p in problems:
            print(f"  - {p}")
        bad += len(problems)
    return 1 if bad else 0

