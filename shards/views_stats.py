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
        order = np.argsort(values[:, d], kind="stable")
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


def shard_sketch(table: EpisodeTable, srow: int, renames: dict[str, str]) -> dict[str, FeatureStats] | None:
    """The shard's stored mergeable stats (renamed), None when it has no shard.json."""
    row = table.shards[srow]
    rec = row.record
    marker = table.roots[row.root].location.child(rec.path).join(SHARD_FILE)
    if not marker.is_file():
        return None
    stats = marker.read_json().get("stats", {})
    return {renames.get(k, k): FeatureStats.from_json(v) for k, v in stats.items()}


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

    def one(group: tuple[int, np.ndarray]) -> tuple[str, dict[str, FeatureStats], bool, int]:
        srow, rows = group
        row = table.shards[srow]
        names = renames.get(row.root, {})
        whole = len(rows) == row.record.episodes
        if whole or mode == "parent":
            sketch = shard_sketch(table, srow, names)
            if sketch is not None:
                return row.source, sketch, True, 0
        keys = None
        sketch, read = selected_sketch(table, srow, table.episode[rows], names, keys)
        return row.source, sketch, False, read

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        parts = list(pool.map(one, groups))
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
