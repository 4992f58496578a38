"""`psi0 validate OUT` — re-open every shard with LeRobot's and zarr-python's own readers and check
them against the catalog (episode and frame counts, sampled values, content hashes)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from schemas.names import SHARD_FILE
from shards.catalog import load_catalog
from shards.commit import content_hash


def validate(out_root: str | Path, sample_frames: int = 3) -> list[str]:
    """Problems found (empty list = valid)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out_root = Path(out_root)
    catalog = load_catalog(out_root)
    problems: list[str] = []
    ingested = {k: v for k, v in catalog.inputs.items() if v["status"] == "ingested"}
    for record in catalog.shards:
        path = out_root / record.path
        if not (path / SHARD_FILE).is_file():
            problems.append(f"{record.path}: missing")
            continue
        if content_hash(path) != record.content_hash:
            problems.append(f"{record.path}: content hash differs from the catalog")
        expected = [k for k, v in ingested.items() if v["shard"] == record.shard_id]
        if sorted(expected) != sorted(record.inputs):
            problems.append(f"{record.path}: catalog lists {len(expected)} inputs, shard {len(record.inputs)}")
        if record.episodes == 0:      # every input rejected: the shard only records their fates
            continue
        try:
            problems += _check_lerobot(path, record) if record.format == "lerobot" else _check_zarr(path, record)
        except Exception as exc:  # noqa: BLE001 - reported, not raised: validate must see every shard
            problems.append(f"{record.path}: reader failed: {type(exc).__name__}: {exc}")
    shard_frames = sum(r.frames for r in catalog.shards if r.format == catalog.shards[0].format) if catalog.shards else 0
    if shard_frames != sum(v["frames"] for v in ingested.values()):
        problems.append(f"frames in shards ({shard_frames}) != frames in catalog inputs")
    return problems


def _check_lerobot(path: Path, record) -> list[str]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(f"psi0/{record.shard_id}", root=path, video_backend="pyav")
    problems = []
    if ds.num_episodes != record.episodes or ds.num_frames != record.frames:
        problems.append(f"{record.path}: LeRobot sees {ds.num_episodes} episodes / {ds.num_frames} frames, "
                        f"catalog {record.episodes} / {record.frames}")
    for i in np.linspace(0, len(ds) - 1, 3).astype(int):
        item = ds[int(i)]
        for key, value in item.items():
            if hasattr(value, "isfinite") and value.dtype.is_floating_point and not bool(value.isfinite().all()):
                problems.append(f"{record.path}: non-finite {key} at frame {i}")
    return problems


def _check_zarr(path: Path, record) -> list[str]:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    ends = group["meta/episode_ends"][:]
    problems = []
    if len(ends) != record.episodes or (len(ends) and int(ends[-1]) != record.frames):
        problems.append(f"{record.path}: zarr has {len(ends)} episodes / {int(ends[-1]) if len(ends) else 0} frames")
    for key in group["data"].array_keys():
        if group["data"][key].shape[0] != record.frames:
            problems.append(f"{record.path}: data/{key} has {group['data'][key].shape[0]} rows, expected {record.frames}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="psi0 validate", description=__doc__)
    ap.add_argument("roots", nargs="+")
    args = ap.parse_args(argv)
    bad = 0
    for root in args.roots:
        problems = validate(root)
        status = "OK" if not problems else f"{len(problems)} problem(s)"
        print(f"{root}: {status}")
        for p in problems:
            print(f"  - {p}")
        bad += len(problems)
    return 1 if bad else 0
