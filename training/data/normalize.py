"""Affine per-dimension normalization from catalog stats: x_n = (x - center) / half_range.

minmax and quantile map [min, max] / [q01, q99] to [-1, 1] (no clipping, so denormalize inverts
exactly); quantile_clip is quantile then clipped to [-1, 1] (the reference's `bounds_q99`: the 2 % of
values past q01/q99 saturate and do not come back); meanstd standardizes. Constant dimensions
(range ~ 0) map to 0 and come back as center.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-8


@dataclass(frozen=True)
class Affine:
    center: np.ndarray      # (D,) float64 (a float32 centre of a near-constant dim would round visibly)
    scale: np.ndarray       # (D,) float64, > 0
    clip: bool = False      # clip the normalised value to [-1, 1]

    @classmethod
    def from_stats(cls, stats: dict[str, np.ndarray] | None, mode: str, dim: int) -> "Affine":
        if mode == "none":
            return cls(np.zeros(dim), np.ones(dim))
        if stats is None:
            raise ValueError(f"normalization {mode!r} needs stats, and the catalog has none for this feature")
        if mode == "meanstd":
            center, half = stats["mean"], stats["std"]
        else:
            lo, hi = (stats["min"], stats["max"]) if mode == "minmax" else (stats["q01"], stats["q99"])
            center, half = (hi + lo) / 2, (hi - lo) / 2
        if len(center) != dim:
            raise ValueError(f"stats have {len(center)} dims, feature has {dim}")
        half = np.where(np.abs(half) < EPS, np.inf, half)          # constant dim -> 0
        return cls(np.asarray(center, np.float64), np.asarray(half, np.float64), clip=mode == "quantile_clip")

    @classmethod
    def concat(cls, parts: list["Affine"]) -> "Affine":
        return cls(np.concatenate([p.center for p in parts]), np.concatenate([p.scale for p in parts]),
                   clip=all(p.clip for p in parts))

    def apply(self, x: np.ndarray) -> np.ndarray:
        out = (np.asarray(x, np.float64) - self.center) / self.scale
        return (np.clip(out, -1.0, 1.0) if self.clip else out).astype(np.float32)

    def invert(self, x: np.ndarray) -> np.ndarray:
        scale = np.where(np.isinf(self.scale), 0.0, self.scale)
        return (np.asarray(x, np.float64) * scale + self.center).astype(np.float32)
