"""`psi0 tokenizer fit|info`: fit the FAST action tokenizer on EgoDex sources or LeRobot shards, inspect one."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="psi0 tokenizer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  psi0 tokenizer fit --input /data/egodex/part1 --out out/fast --horizon 1\n"
                                       "  psi0 tokenizer fit --input out/shards/humanoid_everyday-00000 --column action "
                                       "--horizon 16 --out out/fast_he\n  psi0 tokenizer info out/fast")
    sub = p.add_subparsers(dest="cmd", required=True)
    fit = sub.add_parser("fit", help="fit stats + BPE on a deterministic sample and write DIR")
    fit.add_argument("--input", nargs="+", required=True, type=Path,
                     help="EgoDex roots / .hdf5 files (48-D human actions) or LeRobot shard dirs (a column)")
    fit.add_argument("--out", required=True, type=Path, help="output directory (tokenizer.json + config.json)")
    fit.add_argument("--horizon", type=int, default=1, help="steps per chunk (EgoDex pre-training: 1; HE: 16)")
    fit.add_argument("--kind", choices=("delta", "absolute"), default="delta", help="EgoDex 48-D variant")
    fit.add_argument("--rate", type=float, default=10.0, help="EgoDex resampling rate, Hz (source 30)")
    fit.add_argument("--column", default="action", help="LeRobot shard column to tokenize")
    fit.add_argument("--vocab-size", type=int, default=2048)
    fit.add_argument("--scale", type=float, default=100.0)
    fit.add_argument("--max-samples", type=int, default=100_000, help="chunks sampled (deterministically) for the fit")
    fit.add_argument("--seed", type=int, default=0)
    info = sub.add_parser("info", help="print a fitted tokenizer's config and a round-trip self check")
    info.add_argument("dir", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from converters.tokenize.fast import FastTokenizer
    if args.cmd == "fit":
        from converters.tokenize.sources import collect_chunks
        try:
            chunks = collect_chunks(args.input, args.horizon, args.kind, args.rate, args.column)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            print(f"psi0 tokenizer fit: {exc}", file=sys.stderr)
            return 2
        print(f"fitting FAST on {len(chunks)} chunks of shape {chunks.shape[1:]} "
              f"(vocab {args.vocab_size}, scale {args.scale}, sample <= {args.max_samples})", file=sys.stderr)
        tok = FastTokenizer.fit(chunks, scale=args.scale, vocab_size=args.vocab_size,
                                max_samples=args.max_samples, seed=args.seed)
        tok.save(args.out)
        probe = chunks[np.random.default_rng(args.seed).choice(len(chunks), min(len(chunks), 2000), replace=False)]
        ids = tok.encode(probe)
        print(json.dumps({"out": str(args.out), "chunks": int(len(chunks)), "vocab_size": tok.vocab_size,
                          "mean_tokens": float(np.mean([len(i) for i in ids])),
                          "compression": float(tok.config.coefficients / max(np.mean([len(i) for i in ids]), 1e-9))}))
        return 0
    tok = FastTokenizer.load(args.dir)
    cfg = tok.config
    print(json.dumps({"dir": str(args.dir), "version": cfg.version, "horizon": cfg.horizon, "dims": cfg.dims,
                      "scale": cfg.scale, "vocab_size": tok.vocab_size, "pad_id": tok.pad_id,
                      "coefficient_range": [cfg.min_coef, cfg.max_coef],
                      "max_abs_error_bound": float(tok.max_abs_error_bound().max())}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
