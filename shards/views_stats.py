"""Stats of exactly a view's frames, merged from mergeable sketches (`schemas.stats.FeatureStats`).

A shard the view holds whole contributes the sketch its writer stored in `shard.json` (nothing is
read but that file). A shard the view holds only part of contributes a sketch of just the selected
episodes' frames, computed from their vector columns (parquet / zarr arrays, never video). Merging is
Chan's formula for mean/std (exact) and the grid CDF for quantiles (within 1/(G-1) = 0.25 % in rank of
the exact values, whatever the distribution): the same guarantee as an ingest catalog's stats.

`mode="parent"` skips the partial reads and uses whole-shard sketches for every shard the view touches
(metadata only; the stats then describe a superset, and the view says so: `stats_basis: "parent"`).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.names import SHARD_FILE
from schemas.stats import QUANTILE_KEYS, QUANTILES, FeatureStats, merge_all
from shards import formats
from shards.views_table import EpisodeTable, iter_shard_groups

MODES = ("exact", "parent", "none")


def merged_quantiles(st: FeatureStats, qs: tuple[float, ...] = QUANTILES) -> np.ndarray:
    """(len(qs), D): `FeatureStats.quantile` for a merge of many parts, in O(P log P) per dimension.

    The merged CDF at v is sum over parts of c_i * (#grid points <= v - 1)^+ / (g_i - 1) / N: every grid point
    but a part's first carries weight c_i / (g_i - 1). Sorting all grid points with their weights, the
    smallest point whose cumulative weight reaches q*N is the same smallest grid value with cdf >= q that
    `FeatureStats.quantile` finds by bisection (which re-evaluates the CDF over every part at each step:
    ~35 s for 1000 shards x 48 dims; this takes well under a second)."""
    if len(st.grids) == 1:
        return np.stack([st.quantile(q) for q in qs])
    values = np.concatenate([g for _, g in st.grids])                       # (P, D)
    weights = np.concatenate([np.r_[0.0, np.full(len(g) - 1, c / (len(g) - 1))] for c, g in st.grids])
    out = np.empty((len(qs), values.shape[1]))
    for d in range(values.shape[1]):
        order = np.argsort(values[:, d])
        cum = np.cumsum(weights[order]) / st.count
        idx = np.minimum(np.searchsorted(cum, np.asarray(qs) - 1e-12, side="left"), len(order) - 1)
        out[:, d] = values[order[idx], d]
    return out


def lerobot_stats(st: FeatureStats) -> dict[str, list]:
    """`FeatureStats.to_lerobot` with `merged_quantiles` (the same keys and values up to the tie-break of
    floating-point sums)."""
    out: dict[str, list] = {"min": st.min.tolist(), "max": st.max.tolist(), "mean": st.mean.tolist(),
                            "std": st.std.tolist(), "count": [int(st.count)]}
    for key, row in zip(QUANTILE_KEYS, merged_quantiles(st)):
        out[key] = row.tolist()
    return out
SKIP = ("episode_index", "index", "task_index")
THREADS = 4


@dataclass
class ViewStats:
    stats: dict[str, dict[str, Any]]
    by_source: dict[str, dict[str, dict[str, Any]]]
    basis: str
    shards_whole: int = 0
    shards_partial: int = 0
    frames_read: int = 0

    def info(self) -> dict[str, Any]:
        return {"basis": self.basis, "shards_from_sketch": self.shards_whole, "shards_recomputed": self.shards_partial,
                "frames_read": self.frames_read}


class SketchCache:
    """The shards' stored sketches of one root, kept as binary arrays (`<key>.sketches.parquet` in the view
    cache): a shard.json holds its quantile grids as JSON text (~0.5 MB a shard for two 36-D features), which
    takes ~50 ms to parse; the cache makes the next view over the same root read them in microseconds."""

    def __init__(self, root: Any):
        import hashlib

        from shards.views_table import cache_dir

        base = cache_dir()
        key = hashlib.sha256(f"{root.uri}\0{root.sha256}".encode()).hexdigest()
        self.path = None if base is None else base / f"{key}.sketches.parquet"
        self.known: dict[str, dict[str, FeatureStats] | None] = {}
        self.new = False
        if self.path is not None and self.path.is_file():
            try:
                self.known = _read_sketches(self.path)
            except Exception:  # noqa: BLE001 - rebuilt as shards are read
                self.known = {}

    def save(self) -> None:
        if self.new and self.path is not None:
            _write_sketches(self.path, self.known)
            self.new = False


def _write_sketches(path: Any, known: dict[str, dict[str, FeatureStats] | None]) -> None:
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: dict[str, list[Any]] = {k: [] for k in ("shard", "feature", "count", "mean", "m2", "min", "max",
                                                  "grid_counts", "grid_points", "grids")}
    for shard, stats in sorted(known.items()):
        for feature, st in sorted((stats or {"": None}).items()):
            rows["shard"].append(shard)
            rows["feature"].append(feature if st is not None else None)
            if st is None:
                for k in ("count", "mean", "m2", "min", "max", "grid_counts", "grid_points", "grids"):
                    rows[k].append(None)
                continue
            rows["count"].append(int(st.count))
            for k in ("mean", "m2", "min", "max"):
                rows[k].append(np.asarray(getattr(st, k), np.float64).tobytes())
            rows["grid_counts"].append([int(c) for c, _ in st.grids])
            rows["grid_points"].append(int(st.grids[0][1].shape[0]))
            rows["grids"].append(np.concatenate([g for _, g in st.grids]).astype(np.float64).tobytes())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        pq.write_table(pa.table({k: pa.array(v) for k, v in rows.items()}), tmp)
        os.replace(tmp, path)
    except OSError:
        pass


def _read_sketches(path: Any) -> dict[str, dict[str, FeatureStats] | None]:
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pydict()
    out: dict[str, dict[str, FeatureStats] | None] = {}
    for i, shard in enumerate(table["shard"]):
        feature = table["feature"][i]
        if feature is None:
            out[shard] = None
            continue
        vec = {k: np.frombuffer(table[k][i], np.float64) for k in ("mean", "m2", "min", "max")}
        dims = len(vec["mean"])
        grids = np.frombuffer(table["grids"][i], np.float64).reshape(-1, table["grid_points"][i], dims)
        out.setdefault(shard, {})[feature] = FeatureStats(
            int(table["count"][i]), vec["mean"], vec["m2"], vec["min"], vec["max"],
            [(int(c), g) for c, g in zip(table["grid_counts"][i], grids)])
    return out


def shard_sketch(table: EpisodeTable, srow: int, renames: dict[str, str],
                 cache: SketchCache | None = None) -> dict[str, FeatureStats] | None:
    """The shard's stored mergeable stats (renamed), None when it has no shard.json."""
    row = table.shards[srow]
    if cache is not None and row.shard_id in cache.known:
        stats = cache.known[row.shard_id]
    else:
        rec = row.record
        marker = table.roots[row.root].location.child(rec.path).join(SHARD_FILE)
        stats = ({k: FeatureStats.from_json(v) for k, v in marker.read_json().get("stats", {}).items()}
                 if marker.is_file() else None)
        if cache is not None:
            cache.known[row.shard_id] = stats
            cache.new = True
    if stats is None:
        return None
    return {renames.get(k, k): v for k, v in stats.items()}


def selected_sketch(table: EpisodeTable, srow: int, episodes: np.ndarray, renames: dict[str, str],
                    keys: list[str] | None) -> tuple[dict[str, FeatureStats], int]:
    """Exact sketches of the chosen episodes' frames of one shard (vector columns only)."""
    row = table.shards[srow]
    rec = row.record
    reader = formats.get(rec.format).open(table.roots[row.root].location.child(rec.path))
    try:
        info = reader.info()
        numeric = [k for k, spec in info.features.items() if spec.get("dtype") not in ("video", "image", "string")
                   and k not in SKIP]
        wanted = [k for k in numeric if keys is None or renames.get(k, k) in keys]
        by_index = {e.index: e for e in reader.episodes()}
        spans = [by_index[int(i)] for i in np.sort(episodes)]
        rows = np.concatenate([np.arange(e.start, e.start + e.length) for e in spans]) if spans else np.zeros(0, int)
        cols = reader.columns(wanted)
    finally:
        reader.close()
    out = {}
    for key, values in cols.items():
        if len(rows) and values.dtype.kind in "fiub":
            out[renames.get(key, key)] = FeatureStats.from_values(values[rows].astype(np.float64))
    return out, int(len(rows))


def view_stats(table: EpisodeTable, renames: dict[int, dict[str, str]], mode: str = "exact") -> ViewStats:
    """Stats over the table's frames, overall and per source (see module doc)."""
    if mode not in MODES:
        raise ValueError(f"stats mode must be one of {MODES}, got {mode!r}")
    if mode == "none" or not len(table):
        return ViewStats({}, {}, mode if mode == "none" else "selection")
    groups = list(iter_shard_groups(table))
    result = ViewStats({}, {}, "selection" if mode == "exact" else "parent")
    caches = {r: SketchCache(table.roots[r]) for r in {table.shards[s].root for s, _ in groups}}

    def one(group: tuple[int, np.ndarray]) -> tuple[str, dict[str, FeatureStats], bool, int]:
        srow, rows = group
        row = table.shards[srow]
        names = renames.get(row.root, {})
        whole = len(rows) == row.record.episodes
        if whole or mode == "parent":
            sketch = shard_sketch(table, srow, names, caches[row.root])
            if sketch is not None:
                return row.source, sketch, True, 0
        keys = None
        sketch, read = selected_sketch(table, srow, table.episode[rows], names, keys)
        return row.source, sketch, False, read

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        parts = list(pool.map(one, groups))
    for cache in caches.values():
        cache.save()
    by_source: dict[str, list[dict[str, FeatureStats]]] = {}
    for source, sketch, whole, read in parts:
        by_source.setdefault(source, []).append(sketch)
        result.shards_whole += int(whole)
        result.shards_partial += int(not whole)
        result.frames_read += read
    merged_by_source = {src: merge_all(p) for src, p in sorted(by_source.items())}
    result.by_source = {src: {k: lerobot_stats(v) for k, v in sorted(m.items())} for src, m in merged_by_source.items()}
    if len(merged_by_source) == 1:
        result.stats = dict(next(iter(result.by_source.values())))
        return result
    # a --mixture view: a feature whose width differs between sources has per-source stats only
    widths: dict[str, set[int]] = {}
    for m in merged_by_source.values():
        for key, st in m.items():
            widths.setdefault(key, set()).add(len(st.mean))
    common = {k for k, w in widths.items() if len(w) == 1}
    merged_all = merge_all({k: v for k, v in m.items() if k in common} for m in merged_by_source.values())
    result.stats = {k: lerobot_stats(v) for k, v in sorted(merged_all.items())}
    return result
