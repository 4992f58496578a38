"""Per-dimension histograms derived from the stats pass, without re-reading any frame.

Every committed shard's `shard.json` keeps, per feature, a quantile grid (values at G evenly spaced
probabilities, `schemas.stats`). The merged CDF at v is the count-weighted mean of the parts' grid CDFs,
so the count in bin [a, b) is `count * (cdf(b) - cdf(a))`: exact to 1/(G-1) in rank, whatever the
distribution. Roots without grids fall back to the catalog's five quantiles plus min/max (a coarse,
piecewise-linear CDF), and say so (`source: "quantiles"`)."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from schemas.stats import FeatureStats, merge_all

DEFAULT_BINS = 32
SKIP_FEATURES = ("timestamp", "timestamp.source", "frame_index", "episode_index", "index", "task_index")


def wanted(feature: str) -> bool:
    """Features worth a histogram: numeric data, not bookkeeping columns or token ids."""
    return feature not in SKIP_FEATURES and "token" not in feature


def merged_grids(shard_stats: Iterable[dict[str, Any]]) -> dict[str, FeatureStats]:
    """Merge the lossless per-shard stats (`shard.json["stats"]`) of distinct shards."""
    return merge_all({k: FeatureStats.from_json(v) for k, v in part.items() if wanted(k)} for part in shard_stats)


def grid_cdf(stats: FeatureStats, edges: np.ndarray) -> np.ndarray:
    """Merged CDF at every edge: edges (E, D) -> (E, D), vectorised over edges (schemas.stats' rule)."""
    total = np.zeros(edges.shape, dtype=np.float64)
    for count, grid in stats.grids:
        g = len(grid)
        below = np.stack([np.searchsorted(grid[:, d], edges[:, d], side="right") for d in range(grid.shape[1])],
                         axis=1)
        total += count * np.clip((below - 1) / (g - 1), 0.0, 1.0) * (below > 0)
    return total / stats.count


def _edges(lo: np.ndarray, hi: np.ndarray, bins: int) -> np.ndarray:
    span = np.where(hi > lo, hi - lo, 1.0)
    return lo[None, :] + span[None, :] * np.linspace(0.0, 1.0, bins + 1)[:, None]


def _pack(edges: np.ndarray, cdf: np.ndarray, count: float, source: str) -> dict[str, Any]:
    cdf = cdf.copy()
    cdf[0], cdf[-1] = 0.0, 1.0           # the first bin holds the minimum, the last the maximum
    counts = np.clip(np.diff(cdf, axis=0), 0.0, None) * count
    return {"source": source, "lo": edges[0].tolist(), "hi": edges[-1].tolist(),
            "counts": np.round(counts.T, 3).tolist()}


def from_grids(stats: FeatureStats, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """{lo, hi (D,), counts (D, bins)} over [min, max] of each dim."""
    edges = _edges(np.asarray(stats.min, np.float64), np.asarray(stats.max, np.float64), bins)
    return _pack(edges, grid_cdf(stats, edges), float(stats.count), "grid")


def from_quantiles(lerobot_stats: dict[str, list], bins: int = DEFAULT_BINS) -> dict[str, Any] | None:
    """Coarse fallback from a catalog's LeRobot-format stats (min, q01..q99, max)."""
    keys = ("min", "q01", "q10", "q50", "q90", "q99", "max")
    if not all(k in lerobot_stats for k in keys):
        return None
    qs = np.array([0.0, 0.01, 0.10, 0.50, 0.90, 0.99, 1.0])
    vals = np.asarray([lerobot_stats[k] for k in keys], dtype=np.float64)      # (7, D)
    vals = np.maximum.accumulate(vals, axis=0)
    edges = _edges(vals[0], vals[-1], bins)
    cdf = np.stack([np.interp(edges[:, d], vals[:, d], qs) for d in range(vals.shape[1])], axis=1)
    count = float((lerobot_stats.get("count") or [1])[0])
    return _pack(edges, cdf, count, "quantiles")
