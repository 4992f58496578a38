"""`catalog.json`: built only from committed shards' `shard.json` files plus plan-level rejects.

Because every shard records the fate of each input it was given, finalize is a pure function of
what is on disk: idempotent, resumable, and identical whichever runner wrote the shards.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.catalog import Catalog, ShardRecord
from schemas.names import CATALOG_FILE
from schemas.stats import FeatureStats, merge_all
from schemas import remote
from shards import objectstore
from schemas.durable import write_json_atomic
from shards.commit import committed_shards
from shards.location import Location


class CatalogError(RuntimeError):
    pass


def build_catalog(out_root: str | Path, plan_rejects: dict[str, dict[str, Any]] | None = None,
                  expected_inputs: list[str] | None = None, config: dict[str, Any] | None = None,
                  tokenizer: dict[str, Any] | None = None) -> Catalog:
    """Merge committed shards (+ rejects decided before any shard, e.g. duplicates)."""
    catalog = Catalog(config=dict(config or {}), tokenizer=tokenizer)
    stats_parts: list[dict[str, FeatureStats]] = []
    seen_shard_ids: set[str] = set()
    committed = (objectstore.committed_shards(str(out_root)) if remote.is_url(out_root)
                 else committed_shards(Path(out_root)))
    for _, data in committed.items():
        record = ShardRecord(**{**data["record"], "inputs": tuple(data["record"]["inputs"])})
        catalog.shards.append(record)
        if record.shard_id in seen_shard_ids:      # the zarr twin of a lerobot shard: same fates, same stats
            continue
        seen_shard_ids.add(record.shard_id)
        for source_id, fate in data["fates"].items():
            catalog.inputs[source_id] = fate
        stats_parts.append({k: FeatureStats.from_json(v) for k, v in data["stats"].items()})
    for source_id, fate in (plan_rejects or {}).items():
        catalog.inputs[source_id] = fate
    catalog.stats = {k: s.to_lerobot() for k, s in sorted(merge_all(stats_parts).items())}
    if expected_inputs is not None:
        missing = sorted(set(expected_inputs) - set(catalog.inputs))
        extra = sorted(set(catalog.inputs) - set(expected_inputs))
        if missing or extra:
            raise CatalogError(f"inputs != ingested + rejected: {len(missing)} missing (e.g. {missing[:3]}), "
                               f"{len(extra)} unexpected (e.g. {extra[:3]})")
    return catalog


def finalize(out_root: str | Path, **kwargs: Any) -> Catalog:
    """Build and atomically write `catalog.json`."""
    catalog = build_catalog(out_root, **kwargs)
    if remote.is_url(out_root):        # one PUT, after every shard: atomic on S3
        remote.put_bytes(remote.join(str(out_root), CATALOG_FILE), catalog.dumps().encode())
    else:
        write_json_atomic(Path(out_root) / CATALOG_FILE, None, catalog.dumps())
    return catalog


def load_catalog(out_root: str | Path) -> Catalog:
    """The catalog of an output root (local or URL). To read shards too, use `shards.reader.open_output`."""
    where = Location.of(out_root).join(CATALOG_FILE)
    if not where.is_file():
        raise FileNotFoundError(f"no {CATALOG_FILE} in {out_root}: run a job (or finalize) first")
    return Catalog.from_json(where.read_json())
