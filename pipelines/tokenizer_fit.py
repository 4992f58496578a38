"""`psi0 tokenizer fit|info`: fit the FAST action tokenizer on shards or EgoDex sources, inspect one.

Where the action chunks come from:
- shards (an output root, its catalog.json, one shard folder of any registered format, or an s3://
  URL of one): a column's chunk starting at every frame, per episode, read through `shards.reader`;
- EgoDex roots (`<split>/<task>/<n>.hdf5` + `.mp4`) or one `.hdf5`: 48-D human actions from the
  hand keypoints and camera poses of `converters.egodex.read`, the validated reader the ingest job
  uses (an episode it would reject is skipped here too, and counted).
Both yield chunks deterministically (sorted inputs, fixed chunking), so a fixed seed gives the same
fitted tokenizer.
"""
from __future__ import annotations

import argparse
import json
import logging
import posixpath
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

# heavy imports (shards readers, converters) happen inside the functions: `psi0 tokenizer --help` stays instant
log = logging.getLogger("psi0.tokenizer")
CAMERA_POSE = "human.camera.pose"


def shard_chunks(where: str | Path, horizon: int, column: str = "action") -> Iterator[np.ndarray]:
    """(T, H, D) chunks of `column` per episode of every shard `where` names (one copy per shard)."""
    from converters.tokenize.sources import frame_chunks
    from shards.reader import open_output

    out = open_output(where)
    for shard_id in out.shard_ids():
        reader = out.open_shard(shard_id)
        try:
            cols = reader.columns([column, "episode_index", "frame_index"])
        finally:
            reader.close()
        if column not in cols:
            raise KeyError(f"{reader.location}: no column {column!r}")
        values = np.asarray(cols[column], np.float64).reshape(len(cols[column]), -1)
        episodes = np.asarray(cols["episode_index"]).reshape(-1)
        order = np.lexsort((np.asarray(cols["frame_index"]).reshape(-1), episodes))
        values, episodes = values[order], episodes[order]
        for ep in np.unique(episodes):
            yield frame_chunks(values[episodes == ep], horizon)


def egodex_refs(where: str | Path) -> list:
    """EgoDex episodes under a root (`<split>/<task>/<n>.hdf5`), or the one episode of an `.hdf5` path."""
    from converters import egodex
    from schemas import remote

    text = str(where)
    if not text.endswith(".hdf5"):
        return egodex.discover(text)
    if remote.is_url(text):
        split = posixpath.dirname(posixpath.dirname(text))
        return [r for r in egodex.discover(split) if r.get("hdf5") == text]
    wanted = Path(text).resolve()
    return [r for r in egodex.discover(str(wanted.parent.parent)) if r.get("hdf5")
            and Path(r.get("hdf5")).resolve() == wanted]


def egodex_chunks(refs: list, horizon: int, kind: str = "delta", rate: float = 10.0) -> Iterator[np.ndarray]:
    """HUMAN_ACTION_48(_DELTA) chunks of every readable EgoDex episode in `refs`."""
    from converters import egodex
    from converters.retarget.human_action import HumanActionConfig, absolute_chunks, delta_chunks
    from schemas.episode import EpisodeError

    cfg = HumanActionConfig(rate=rate, chunk=horizon)
    skipped = 0
    for ref in refs:
        try:
            episode = egodex.read(ref)
        except EpisodeError as err:
            skipped += 1
            log.warning("skipped %s: %s", ref.source_id, err.message)
            continue
        camera = episode.column(CAMERA_POSE).reshape(episode.length, 4, 4).astype(np.float64)
        if len(camera) < 2:
            continue
        kps = {s: episode.column(f"human.{s}_hand.keypoints").reshape(episode.length, -1, 3).astype(np.float64)
               for s in ("left", "right")}
        _, chunks = (delta_chunks if kind == "delta" else absolute_chunks)(kps, camera, cfg)
        yield chunks
    if skipped:
        log.warning("%d EgoDex episode(s) skipped (the ingest job would reject them too)", skipped)


def collect_chunks(inputs: list[str | Path], horizon: int, kind: str, rate: float, column: str) -> np.ndarray:
    """Every input's chunks, concatenated: shards if the input opens as shards, else EgoDex episodes."""
    parts: list[np.ndarray] = []
    for item in inputs:
        try:
            parts.extend(shard_chunks(item, horizon, column))
            continue
        except FileNotFoundError as exc:
            not_shards = exc
        refs = egodex_refs(item)
        if not refs:
            raise FileNotFoundError(f"{not_shards}; nor an EgoDex root or .hdf5 file")
        parts.extend(egodex_chunks(refs, horizon, kind, rate))
    if not parts:
        raise ValueError("no action chunks found in the inputs")
    return np.concatenate(parts)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="psi0 tokenizer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  psi0 tokenizer fit --input /data/egodex/part1 --out out/fast --horizon 1\n"
                                       "  psi0 tokenizer fit --input out/humanoid_everyday --column action "
                                       "--horizon 16 --out out/fast_he\n"
                                       "  psi0 tokenizer fit --input s3://bucket/out/he --horizon 16 --out out/fast_he\n"
                                       "  psi0 tokenizer info out/fast")
    sub = p.add_subparsers(dest="cmd", required=True)
    fit = sub.add_parser("fit", help="fit stats + BPE on a deterministic sample and write DIR")
    fit.add_argument("--input", nargs="+", required=True,
                     help="EgoDex roots / .hdf5 files (48-D human actions), or shards: output roots, catalog.json, "
                          "shard folders (any registered format), s3:// URLs of them (a column)")
    fit.add_argument("--out", required=True, type=Path, help="output directory (tokenizer.json + config.json)")
    fit.add_argument("--horizon", type=int, default=1, help="steps per chunk (EgoDex pre-training: 1; HE: 16)")
    fit.add_argument("--kind", choices=("delta", "absolute"), default="delta", help="EgoDex 48-D variant")
    fit.add_argument("--rate", type=float, default=10.0, help="EgoDex resampling rate, Hz (source 30)")
    fit.add_argument("--column", default="action", help="shard column to tokenize")
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
        logging.basicConfig(level=logging.WARNING, format="psi0 tokenizer fit: %(message)s")
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
