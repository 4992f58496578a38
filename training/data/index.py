"""Find shards (output roots, catalogs, single shard folders of any registered format, local or
`s3://...`) and their per-source statistics, through `shards.reader`.

The index holds only metadata (ids, sources, frame counts, locations, stats) so it is cheap to build,
pickle into DataLoader workers and keep in the trainer; columns and video are opened lazily by the
dataset, per process. A view (`shards.views`) opens like an output root; its entries carry the episodes
of each shard it holds (`ShardEntry.episodes`) and its feature renames, and its stats are per source over
exactly those episodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from schemas.catalog import Catalog
from schemas.names import CATALOG_FILE, SHARD_FILE
from schemas.stats import FeatureStats, merge_all
from shards import formats
from shards.location import Location
from shards.reader import open_output

STAT_KEYS = ("min", "max", "mean", "std", "q01", "q99")


@dataclass
class ShardEntry:
    """One logical shard; `paths` holds the twins that exist ({"lerobot": dir, "zarr": store}) — local
    Paths, or URL strings for shards on an object store."""

    shard_id: str
    source: str
    frames: int
    paths: dict[str, Path | str]
    catalog: str | None = None           # the output root whose catalog listed it (stats may come from there)
    episodes: tuple[int, ...] | None = None     # the episodes a view holds (sorted); None: the whole shard
    renames: dict[str, str] = field(default_factory=dict)    # a view's feature renames, old -> new

    def path(self, preferred: str) -> tuple[str, Path | str]:
        if preferred in self.paths:
            return preferred, self.paths[preferred]
        fmt = next((name for name in formats.names() if name in self.paths), sorted(self.paths)[0])
        return fmt, self.paths[fmt]


@dataclass
class ShardIndex:
    """Shards grouped by source, with mixing weights (sum to 1 over sources with weight > 0)."""

    shards: list[ShardEntry]
    weights: dict[str, float]
    catalogs: dict[str, Catalog] = field(default_factory=dict)
    view_stats: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)   # view -> source -> stats
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
    """Index shards from output roots (with catalog.json), catalog.json files, shard folders of any
    registered format (LeRobot v3 dirs, .zarr stores, ...), local or URLs. `weights` (by source name)
    default to each source's share of frames."""
    by_key: dict[str, ShardEntry] = {}
    catalogs: dict[str, Catalog] = {}
    view_stats: dict[str, dict[str, dict[str, Any]]] = {}
    paths = list(paths)
    if not paths:
        raise ValueError("open_shards: no paths given")
    for raw in paths:
        for key, entry in _entries(raw, catalogs, view_stats):
            if key in by_key:
                old = by_key[key]
                if old.episodes != entry.episodes or old.renames != entry.renames:
                    raise ValueError(f"shard {entry.shard_id} is opened twice with different episodes or feature "
                                     "names (two views over it?); merge them into one view: psi0 dataset merge")
                old.paths.update(entry.paths)
                old.catalog = old.catalog or entry.catalog
            else:
                by_key[key] = entry
    shards = sorted(by_key.items(), key=lambda kv: (kv[1].source, kv[1].shard_id, kv[0]))
    shards = [s for _, s in shards if s.frames > 0]
    if not shards:
        raise ValueError(f"no non-empty shards found in {[str(p) for p in paths]}")
    return ShardIndex(shards, _normalize_weights(shards, weights), catalogs, view_stats)


def _entries(raw: str | Path, catalogs: dict[str, Catalog],
             view_stats: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, ShardEntry]]:
    """(twin key, entry) for every readable shard `raw` names; twins share the key (folder minus suffix)."""
    out = open_output(raw)
    root = None if out.synthesized else out.root.uri
    if root is not None:
        catalogs[root] = Catalog(shards=out.catalog.shards, stats=out.catalog.stats)   # fates: not needed here
        if out.is_view:
            view_stats[root] = out.source_stats()
    found = []
    for rec in out.catalog.shards:
        if rec.format not in formats.names():
            continue
        where = out.location(rec)
        if root is not None and not where.is_dir():
            raise FileNotFoundError(f"catalog {out.root.join(CATALOG_FILE)} lists {rec.path}, which is missing")
        twin = where.parent.join(formats.get(rec.format).shard_id(where.name)).uri
        found.append((twin, ShardEntry(rec.shard_id, rec.source, rec.frames, {rec.format: where.local()}, root,
                                       out.selection(rec), out.renames(rec))))
    return found


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
    views = roots & set(index.view_stats)
    if views:
        if len(roots) != 1:
            raise ValueError(f"source {source!r} comes from several inputs, at least one a view ({sorted(views)[0]}): "
                             "merge them into one view (psi0 dataset merge) so its stats cover exactly the frames "
                             "trained on")
        stats = index.view_stats[next(iter(views))].get(source, {})
        return _as_arrays(stats[feature]) if feature in stats else None
    if len(roots) == 1 and None not in roots:
        root = next(iter(roots))
        catalog = index.catalogs[root]
        listed = {r.shard_id for r in catalog.shards if r.source == source}
        if listed == {s.shard_id for s in entries} and feature in catalog.stats:
            return _as_arrays(catalog.stats[feature])
    parts, lerobot_style = [], []
    for entry in entries:
        shard_json = next((m for m in (Location.of(p).join(SHARD_FILE) for p in entry.paths.values())
                           if m.is_file()), None)
        if shard_json is not None:
            stats = shard_json.read_json()["stats"]
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
    """The stats a shard's format stores itself (LeRobot meta/stats.json, Zarr attrs)."""
    fmt, path = entry.path(formats.names()[0])
    reader = formats.get(fmt).open(Location.of(path))
    try:
        stats = reader.native_stats()
    finally:
        reader.close()
    return _as_arrays(stats[feature]) if feature in stats else None


def _as_arrays(stats: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(stats[k], np.float64).reshape(-1) for k in STAT_KEYS if k in stats}
