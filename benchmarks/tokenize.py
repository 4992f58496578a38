"""FAST tokenizer throughput (encode / decode chunks/s, fit time, compression) and the normalisation-stats pass
(frames/s) against numpy's exact quantiles.

Run: python benchmarks/tokenize.py [--chunks 20000 --horizon 16 --dims 36]. Last line: one JSON object.
The stats pass is schemas/stats.py over 32 parts (as shards) then merged, against one exact numpy pass.
"""
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the stdlib `tokenize` module: drop its own folder from the import path first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import json
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converters.tokenize.fast import FastTokenizer  # noqa: E402


def _chunks(n, h, d, seed=0):
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.normal(scale=0.03, size=(n, h, d)), axis=1) + rng.normal(size=(n, 1, d))).astype(np.float64)


def _stats_sketch(frames: np.ndarray, parts: int = 32) -> float:
    """The shards' stats pass: per-part FeatureStats (exact grid) + merge + LeRobot stats, frames/s."""
    from schemas.stats import FeatureStats, merge_all

    t0 = time.perf_counter()
    merged = merge_all({"x": FeatureStats.from_values(p)} for p in np.array_split(frames, parts))
    merged["x"].to_lerobot()
    return len(frames) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--dims", type=int, default=36)
    ap.add_argument("--fit-samples", type=int, default=5000)
    args = ap.parse_args(argv)
    x = _chunks(args.chunks, args.horizon, args.dims)
    t0 = time.perf_counter()
    tok = FastTokenizer.fit(x, max_samples=args.fit_samples)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids = tok.encode(x)
    enc = len(x) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    y = tok.decode(ids)
    dec = len(x) / (time.perf_counter() - t0)
    mean_len = float(np.mean([len(i) for i in ids]))
    frames = x.reshape(-1, args.dims)
    t0 = time.perf_counter()
    np.quantile(frames, [0.01, 0.10, 0.50, 0.90, 0.99], axis=0)
    exact_fps = len(frames) / (time.perf_counter() - t0)
    sketch_fps = _stats_sketch(frames)
    q01, q99 = np.array(tok.config.q01), np.array(tok.config.q99)
    inside = ((x >= q01) & (x <= q99)).all(axis=(1, 2))
    out = {"chunks": args.chunks, "horizon": args.horizon, "dims": args.dims, "vocab_size": tok.vocab_size,
           "fit_seconds": round(fit_s, 2), "encode_chunks_per_s": round(enc, 1), "decode_chunks_per_s": round(dec, 1),
           "mean_tokens": round(mean_len, 1), "compression_ratio": round(args.horizon * args.dims / mean_len, 2),
           "max_abs_err_in_range": float(np.abs(y - x)[inside].max()) if inside.any() else None,
           "error_bound": float(tok.max_abs_error_bound().max()),
           "numpy_exact_quantiles_frames_per_s": round(exact_fps, 1),
           "stats_sketch_frames_per_s": None if sketch_fps is None else round(sketch_fps, 1),
           "sketch_vs_exact": None if sketch_fps is None else round(sketch_fps / exact_fps, 2)}
    print(f"FAST: encode {enc:.0f} chunks/s, decode {dec:.0f} chunks/s, {out['compression_ratio']}x compression; "
          f"exact quantiles {exact_fps:.0f} frames/s; sketch {sketch_fps}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
