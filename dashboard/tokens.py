"""FAST tokens of one action chunk, decoded with the output root's tokenizer, next to the true chunk.

Token rows are per frame (`action.tokens` padded to horizon x dims, `action.tokens_len`): row f encodes
the chunk starting at frame f. The true chunk is rebuilt the way the pipeline built it
(converters.tokenize.columns): `frame_chunks` of the token column (end padded with the last frame), or
for EgoDex (token column None) HUMAN_ACTION_48_DELTA chunks from the keypoints + camera poses. The
delta's wrist Δroll-pitch-yaw needs the palmar hand frame, whose implementation imports torch, so those
6 of 48 dims have no truth here (None); positions, the zero pad and fingertips are exact.
Only converters.tokenize.fast is imported (numpy, scipy, tokenizers: no torch)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from schemas.embodiments import HUMAN_HAND_TIPS

EGODEX_TOKEN_RATE = 10.0     # converters.tokenize.columns.tokenize_episode's default egodex_rate
DELTA_ROT = slice(3, 6)      # per-hand Δrpy inside a 24-D half of HUMAN_ACTION_48_DELTA
TIPS = HUMAN_HAND_TIPS


def load_tokenizer(directory: Path) -> Any:
    from converters.tokenize.fast import FastTokenizer

    return FastTokenizer.load(directory)


def frame_chunk(values: np.ndarray, start: int, horizon: int) -> np.ndarray:
    idx = np.minimum(start + np.arange(horizon), len(values) - 1)
    return values[idx]


def egodex_delta_chunk(left: np.ndarray, right: np.ndarray, camera: np.ndarray, start: int, horizon: int,
                       fps: float, rate: float = EGODEX_TOKEN_RATE) -> np.ndarray:
    """(horizon, 48) delta chunk starting at `start`; Δrpy dims NaN (see module doc)."""
    t = len(camera)
    stride = fps / rate
    idx = np.minimum(start + np.round(np.arange(horizon + 1) * stride).astype(np.int64), t - 1)
    cams = np.asarray(camera, np.float64).reshape(t, 4, 4)[idx]
    rel = np.linalg.inv(cams[0])[None] @ cams                                  # cam_k -> cam_start
    halves = []
    for kp in (left, right):
        pts = np.asarray(kp, np.float64).reshape(t, 25, 3)[idx][:, (0,) + TIPS]  # wrist + 5 tips
        pts = pts @ np.swapaxes(rel[:, :3, :3], 1, 2) + rel[:, None, :3, 3]
        d = np.diff(pts, axis=0)                                               # (H, 6, 3)
        half = np.zeros((horizon, 24))
        half[:, 0:3] = d[:, 0]
        half[:, DELTA_ROT] = np.nan
        half[:, 9:24] = d[:, 1:].reshape(horizon, 15)
        halves.append(half)
    return np.concatenate(halves, axis=1)


def _clean(a: np.ndarray) -> list:
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(a, np.float64)]


def chunk_view(tokenizer: Any, tokens: list[int], length: int, truth: np.ndarray | None,
               dim_names: list[str]) -> dict[str, Any]:
    """JSON for the episode page: ids, decoded (H, D), truth (H, D, None where unknown), errors."""
    cfg = tokenizer.config
    ids = [int(i) for i in tokens[:length]]
    decoded, valid = tokenizer.decode([ids], return_valid=True)
    decoded = decoded[0]
    out: dict[str, Any] = {"ids": ids, "valid": bool(valid[0]), "horizon": cfg.horizon, "dims": cfg.dims,
                           "dim_names": dim_names or cfg.dim_names or [f"d{i}" for i in range(cfg.dims)],
                           "q01": cfg.q01, "q99": cfg.q99, "decoded": _clean(decoded),
                           "truth": None, "max_abs_error": None,
                           "error_bound": [float(v) for v in tokenizer.max_abs_error_bound()]}
    if truth is not None:
        out["truth"] = _clean(truth)
        err = np.abs(decoded - truth)
        out["max_abs_error"] = float(np.nanmax(err)) if np.isfinite(err).any() else None
    return out
