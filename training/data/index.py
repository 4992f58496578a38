"""Find shards (output roots, catalogs, single LeRobot dirs, Zarr stores) and their per-source statistics.

The index holds only metadata (ids, sources, frame counts, paths, stats) so it is cheap to build,
pickle into DataLoader workers and keep in the trainer; columns and video are opened lazily by the
dataset, per process.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from schemas.catalog import Catalog
from schemas.names import CATALOG_FILE, SHARD_FILE
from schemas.stats import FeatureStats, merge_all

STAT_KEYS = ("min", "max", "mean", "std", "q01", "q99")


@dataclass
class ShardEntry:
    """One logical shard; `paths` holds the twins that exist ({"lerobot": dir, "zarr": store})."""

    shard_id: str
    source: str
    frames: int
    paths: dict[str, Path]
    catalog: Path | None = None          # the catalog that listed it (stats may come from there)

    def path(self, preferred: str) -> tuple[str, Path]:
        if preferred in self.paths:
            return preferred, self.paths[preferred]
        fmt = sorted(self.paths)[0]
        return fmt, self.paths[fmt]


@dataclass
class ShardIndex:
    """Shards grouped by source, with mixing weights (sum to 1 over sources with weight > 0)."""

    shards: list[ShardEntry]
    weights: dict[str, float]
    catalogs: dict[Path, Catalog] = field(default_factory=dict)
    _stats_cache: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def sources(self) -> list[str]:
        return sorted({s.source for s in self.shards})

    def frames(self, source: str | None = None) -> int:
        return sum(s.frames for s in self.shards if source is None or s.source == source)

    def stats(self, source: str, feature: str) -> dict[str, np.ndarray] | None:
        """LeRobot-style stats (min, max, mean, std, q01, q99 as float64 arrays) of `feature` over the
        source's shards in this index; None if the feature is not recorded for that source."""
        key = (source, feature)
        if key not in self._stats_cache:
            self._stats_cache[key] = _source_stats(self, source, feature)
        return self._stats_cache[key]

    def to_json(self) -> dict[str, Any]:
        """What a checkpoint needs to reproduce normalization at deploy time."""
        return {"weights": self.weights,
                "shards": [{"shard_id": s.shard_id, "source": s.source, "frames": s.frames} for s in self.shards]}


def open_shards(paths: Iterable[str | Path], weights: dict[str, float] | None = None) -> ShardIndex:
    """Index shards from output roots (with catalog.json), catalog.json files, LeRobot shard dirs or
    .zarr stores. `weights` (by source name) default to each source's share of frames."""
    by_key: dict[str, ShardEntry] = {}
    catalogs: dict[Path, Catalog] = {}
    paths = list(paths)
    if not paths:
        raise ValueError("open_shards: no paths given")
    for raw in paths:
        for entry in _entries(Path(raw), catalogs):
            key = _twin_key(entry)
            if key in by_key:
                old = by_key[key]
                old.paths.update(entry.paths)
                old.catalog = old.catalog or entry.catalog
            else:
                by_key[key] = entry
    shards = sorted(by_key.values(), key=lambda s: (s.source, s.shard_id, _twin_key(s)))
    shards = [s for s in shards if s.frames > 0]
    if not shards:
        raise ValueError(f"no non-empty shards found in {[str(p) for p in paths]}")
    return ShardIndex(shards, _normalize_weights(shards, weights), catalogs)


def _twin_key(entry: ShardEntry) -> str:
    _, path = sorted(entry.paths.items())[0]
    path = path.resolve()
    return str(path.with_name(path.name[:-5]) if path.name.endswith(".zarr") else path)


def _entries(path: Path, catalogs: dict[Path, Catalog]) -> list[ShardEntry]:
    if path.is_file() and path.name == CATALOG_FILE:
        return _catalog_entries(path.parent, catalogs)
    if (path / CATALOG_FILE).is_file():
        return _catalog_entries(path, catalogs)
    if (path / "zarr.json").is_file():
        return [_zarr_entry(path)]
    if (path / "meta" / "info.json").is_file():
        return [_lerobot_entry(path)]
    if (path / "shards").is_dir():
        raise FileNotFoundError(f"{path} has shards/ but no {CATALOG_FILE}: finish the job (finalize) first")
    raise FileNotFoundError(f"{path}: not an output root, {CATALOG_FILE}, LeRobot v3 shard or .zarr store")


def _catalog_entries(root: Path, catalogs: dict[Path, Catalog]) -> list[ShardEntry]:
    root = root.resolve()
    catalog = Catalog.from_json(json.loads((root / CATALOG_FILE).read_text()))
    catalogs[root] = Catalog(shards=catalog.shards, stats=catalog.stats)   # drop per-input fates: not needed here
    out = []
    for rec in catalog.shards:
        shard_path = root / rec.path
        if not shard_path.exists():
            raise FileNotFoundError(f"catalog {root / CATALOG_FILE} lists {rec.path}, which is missing")
        out.append(ShardEntry(rec.shard_id, rec.source, rec.frames, {rec.format: shard_path}, root))
    return out


def _shard_record(path: Path) -> dict[str, Any] | None:
    f = path / SHARD_FILE
    return json.loads(f.read_text())["record"] if f.is_file() else None


def _lerobot_entry(path: Path) -> ShardEntry:
    rec = _shard_record(path)
    if rec is not None:
        return ShardEntry(rec["shard_id"], rec["source"], int(rec["frames"]), {"lerobot": path.resolve()})
    info = json.loads((path / "meta" / "info.json").read_text())
    return ShardEntry(path.name, path.name, int(info["total_frames"]), {"lerobot": path.resolve()})


def _zarr_entry(path: Path) -> ShardEntry:
    rec = _shard_record(path)
    if rec is not None:
        return ShardEntry(rec["shard_id"], rec["source"], int(rec["frames"]), {"zarr": path.resolve()})
    import zarr
    group = zarr.open_group(str(path), mode="r")
    ends = group["meta/episode_ends"][:]
    name = path.name[:-5] if path.name.endswith(".zarr") else path.name
    return ShardEntry(name, name, int(ends[-1]) if len(ends) else 0, {"zarr": path.resolve()})


def _normalize_weights(shards: list[ShardEntry], weights: dict[str, float] | None) -> dict[str, float]:
    sources = sorted({s.source for s in shards})
    if weights is None:
        raw = {src: float(sum(s.frames for s in shards if s.source == src)) for src in sources}
    else:
        unknown = sorted(set(weights) - set(sources))
        if unknown:
            raise ValueError(f"weights for unknown source(s) {unknown}; sources here: {sources}")
        if any(w < 0 or not np.isfinite(w) for w in weights.values()):
            raise ValueError(f"weights must be finite and >= 0, got {weights}")
        raw = {src: float(weights.get(src, 0.0)) for src in sources}
    total = sum(raw.values())
    if total <= 0:
        raise ValueError(f"all source weights are zero: {raw}")
    return {src: w / total for src, w in raw.items()}


def _source_stats(index: ShardIndex, source: str, feature: str) -> dict[str, np.ndarray] | None:
    """The catalog's merged stats when this index holds exactly one catalog's shards of `source`
    (no re-merge); otherwise a fresh merge of the shards' own mergeable stats (`shard.json`)."""
    entries = [s for s in index.shards if s.source == source]
    roots = {s.catalog for s in entries}
    if len(roots) == 1 and None not in roots:
        root = next(iter(roots))
        catalog = index.catalogs[root]
        listed = {r.shard_id for r in catalog.shards if r.source == source}
        if listed == {s.shard_id for s in entries} and feature in catalog.stats:
            return _as_arrays(catalog.stats[feature])
    parts, lerobot_style = [], []
    for entry in entries:
        shard_json = next((p / SHARD_FILE for p in entry.paths.values() if (p / SHARD_FILE).is_file()), None)
        if shard_json is not None:
            stats = json.loads(shard_json.read_text())["stats"]
            if feature in stats:
                parts.append({feature: FeatureStats.from_json(stats[feature])})
            continue
        lerobot_style.append(_native_stats(entry, feature))
    if lerobot_style:
        if len(entries) != 1:
            raise ValueError(f"source {source!r}: shards without {SHARD_FILE} have no mergeable stats; "
                             "open them one per source")
        return lerobot_style[0]
    if not parts:
        return None
    return _as_arrays(merge_all(parts)[feature].to_lerobot())


def _native_stats(entry: ShardEntry, feature: str) -> dict[str, np.ndarray] | None:
    fmt, path = entry.path("lerobot")
    if fmt == "lerobot":
        stats = json.loads((path / "meta" / "stats.json").read_text())
    else:
        import zarr
        stats = dict(zarr.open_group(str(path), mode="r").attrs).get("stats", {})
    return _as_arrays(stats[feature]) if feature in stats else None


def _as_arrays(stats: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(stats[k], np.float64).reshape(-1) for k in STAT_KEYS if k in stats}
