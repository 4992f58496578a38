"""`psi0 tokenizer fit|info`: fit the FAST action tokenizer on shards or EgoDex sources, inspect one.

Where the action chunks come from:
- shards (output roots, their catalog.json, shard folders of any registered format, or s3:// URLs of
  them), read through `shards.reader`: by default each shard's source builds its token chunks from its
  own columns (`Source.token_inputs`): for every built-in source the 10 Hz deltas of the 48-D
  human-hand action, so ONE tokenizer fitted over a stage-1 mixture (`--input out/egodex out/he
  out/teleop`) covers all of them (`psi0 ingest ... --tokenizer DIR` / `train --tokenizer DIR` use it).
  `--column KEY` chunks one stored column instead. `--runner ray` reads the shards in parallel tasks;
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


def shard_chunks(where: str | Path, horizon: int, column: str | None = None, runner: str = "local",
                 address: str | None = None) -> Iterator[np.ndarray]:
    """(T, H, D) chunks per episode of every shard `where` names (one copy per shard), in shard order:
    the source's token chunks, or `column`'s chunk at every frame. `runner="ray"`: one task per shard."""
    from shards.reader import open_output

    jobs = [(str(where), shard_id) for shard_id in open_output(where).shard_ids()]
    if runner == "ray":
        results = _ray_map(jobs, horizon, column, address)
    else:
        results = (chunks_of_shard(w, shard_id, horizon, column) for w, shard_id in jobs)
    for parts in results:
        yield from parts


def chunks_of_shard(where: str, shard_id: str, horizon: int, column: str | None = None) -> list[np.ndarray]:
    """One shard's chunks per episode (the unit of work of a Ray task)."""
    from converters.registry import get as get_source
    from converters.tokenize.sources import frame_chunks
    from shards.reader import open_output

    out = open_output(where)
    record = out.record(shard_id)
    reader = out.open_shard(record)
    try:
        fps = reader.info().fps
        try:
            source = None if column is not None else get_source(record.source)
        except ValueError:
            raise ValueError(f"{reader.location}: its source {record.source!r} is no registered source, so it has "
                             "no token space: name a stored column with --column KEY") from None
        wanted = {"values": column} if column is not None else dict(source.token_inputs)
        cols = reader.columns([*wanted.values(), "episode_index", "frame_index"])
    finally:
        reader.close()
    missing = [c for c in wanted.values() if c not in cols]
    if missing:
        raise KeyError(f"{reader.location}: no column {missing[0]!r}" + ("" if column is not None else
                       f" (the {record.source} token inputs; re-ingest with this version)"))
    episodes = np.asarray(cols["episode_index"]).reshape(-1)
    order = np.lexsort((np.asarray(cols["frame_index"]).reshape(-1), episodes))
    episodes = episodes[order]
    values = {role: np.asarray(cols[c], np.float64).reshape(len(order), -1)[order] for role, c in wanted.items()}
    parts = []
    for ep in np.unique(episodes):
        rows = episodes == ep
        if source is None:
            parts.append(frame_chunks(values["values"][rows], horizon))
        else:
            parts.append(source.chunks_from_columns({r: v[rows] for r, v in values.items()}, fps, horizon))
    return parts


def _ray_map(jobs: list[tuple[str, str]], horizon: int, column: str | None, address: str | None):
    """`chunks_of_shard` over the shards as Ray tasks; results in shard order (a deterministic fit)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(chunks_of_shard)
        refs = [task.remote(w, shard_id, horizon, column) for w, shard_id in jobs]
        for ref in refs:
            yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


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
    """HUMAN_ACTION_48(_DELTA) chunks of every readable EgoDex episode in `refs` (delta: exactly the
    ingest job's token chunks)."""
    from converters import egodex
    from converters.retarget.human_action import HumanActionConfig, absolute_chunks
    from converters.source import input_columns
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
        if episode.length < 2:
            continue
        if kind == "delta":
            from converters.tokenize import hand48
            yield hand48.chunks(input_columns(egodex.EGODEX, episode), episode.meta.fps, horizon, rate)
            continue
        camera = episode.column(CAMERA_POSE).reshape(episode.length, 4, 4).astype(np.float64)
        kps = {s: episode.column(f"human.{s}_hand.keypoints").reshape(episode.length, -1, 3).astype(np.float64)
               for s in ("left", "right")}
        yield absolute_chunks(kps, camera, cfg)[1]
    if skipped:
        log.warning("%d EgoDex episode(s) skipped (the ingest job would reject them too)", skipped)


def collect_chunks(inputs: list[str | Path], horizon: int, kind: str, rate: float, column: str | None,
                   runner: str = "local", address: str | None = None) -> np.ndarray:
    """Every input's chunks, concatenated: shards if the input opens as shards, else EgoDex episodes."""
    parts: list[np.ndarray] = []
    for item in inputs:
        try:
            parts.extend(shard_chunks(item, horizon, column, runner, address))
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
                                epilog="examples:\n"
                                       "  # one token space for a stage-1 mixture (48-D hand deltas of every source)\n"
                                       "  psi0 tokenizer fit --input out/egodex out/he out/teleop --out out/fast_mix\n"
                                       "  psi0 tokenizer fit --input s3://bucket/out/egodex s3://bucket/out/he --runner ray "
                                       "--out out/fast_mix\n"
                                       "  psi0 tokenizer fit --input /data/egodex/part1 --out out/fast --horizon 1\n"
                                       "  psi0 tokenizer fit --input out/humanoid_everyday --column action "
                                       "--horizon 16 --out out/fast_he36\n"
                                       "  psi0 tokenizer info out/fast_mix          # ours or the Psi0 authors' folder")
    sub = p.add_subparsers(dest="cmd", required=True)
    fit = sub.add_parser("fit", help="fit stats + BPE on a deterministic sample and write DIR")
    fit.add_argument("--input", nargs="+", required=True,
                     help="EgoDex roots / .hdf5 files (48-D human actions), or shards: output roots, catalog.json, "
                          "shard folders (any registered format), s3:// URLs of them (a column)")
    fit.add_argument("--out", required=True, type=Path, help="output directory (tokenizer.json + config.json)")
    fit.add_argument("--horizon", type=int, default=1, help="steps per chunk (the stage-1 hand-delta space: 1, as the reference)")
    fit.add_argument("--kind", choices=("delta", "absolute"), default="delta", help="EgoDex 48-D variant")
    fit.add_argument("--rate", type=float, default=10.0, help="EgoDex resampling rate, Hz (source 30)")
    fit.add_argument("--column", default=None,
                     help="tokenize this stored shard column (chunk at every frame) instead of each source's "
                          "token space (default: the sources' 48-D hand deltas)")
    fit.add_argument("--runner", choices=("local", "ray"), default="local",
                     help="read shards in this process, or one Ray task per shard (--address: a cluster)")
    fit.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    fit.add_argument("--vocab-size", type=int, default=2048)
    fit.add_argument("--scale", type=float, default=100.0)
    fit.add_argument("--max-samples", type=int, default=100_000, help="chunks sampled (deterministically) for the fit")
    fit.add_argument("--seed", type=int, default=0)
    info = sub.add_parser("info", help="print a tokenizer folder's config (ours or the Psi0 authors') and digest")
    info.add_argument("dir", type=Path)
    info.add_argument("--stats", default=None, help="q01/q99 json for an authors' folder (their assets/stats)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from converters.tokenize.fast import FastTokenizer
    from converters.tokenize.load import digest, load_tokenizer
    if args.cmd == "fit":
        logging.basicConfig(level=logging.WARNING, format="psi0 tokenizer fit: %(message)s")
        try:
            chunks = collect_chunks(args.input, args.horizon, args.kind, args.rate, args.column, args.runner,
                                    args.address)
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
        print(json.dumps({"out": str(args.out), "digest": digest(args.out), "chunks": int(len(chunks)),
                          "vocab_size": tok.vocab_size,
                          "mean_tokens": float(np.mean([len(i) for i in ids])),
                          "compression": float(tok.config.coefficients / max(np.mean([len(i) for i in ids]), 1e-9))}))
        return 0
    tok = load_tokenizer(args.dir, args.stats)
    cfg = tok.config
    print(json.dumps({"dir": str(args.dir), "digest": digest(args.dir), "version": cfg.version,
                      "horizon": cfg.horizon, "dims": cfg.dims, "scale": cfg.scale, "vocab_size": tok.vocab_size,
                      "pad_id": tok.pad_id, "normalisation_stats": bool(cfg.q01),
                      "max_abs_error_bound": float(tok.max_abs_error_bound().max())}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
