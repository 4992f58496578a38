"""Views at scale and export throughput (`psi0 dataset`).

Part 1 — a generated catalog of --episodes episodes (default 1 M) in two output roots (half "egodex", half
"humanoid_everyday"), --per-shard episodes per shard. Every shard has what psi0 writes and the verbs read:
`meta/info.json`, `meta/episodes` (psi0 columns, EpisodeMeta JSON with quality scores), `shard.json` with
mergeable sketches of action and state; no frames (the verbs timed here never read them). Timed, each end to
end (resolve + verb + manifest + write): open a root cold (streamed catalog parse) and warm (cached episode
table), load episode metadata cold/warm, merge the two roots, then on the 1 M-episode merged view: filters
(source, embodiment, task glob, hand-QA score, --where), a 10 % sample stratified by task, an 80/10/10 split;
the merge again with stats merged from the shards' sketches (cold: every shard.json parsed; warm: the sketch
cache). Peak RSS of the measuring process (the catalog is generated in a child process).

Part 2 — export throughput on real shards (the EgoDex sample ingested at 224x224, --export-shards shards):
`psi0 dataset export --format lerobot` of a view merging them vs LeRobot's own
`lerobot.datasets.aggregate.aggregate_datasets` of the same shard folders (both copy video without
re-encoding), in the same run: a discarded warm-up round, then --repeat rounds in alternating order; median and
range per path, `export_vs_lerobot_aggregate` = LeRobot's median seconds / psi0's. Plus lerobot-v21 (H.264
transcode) and zarr (decode) once each, for reference. The last line is one JSON object.

    python benchmarks/dataset_views.py                         # 1 M episodes: ~15 min on 2 busy cores
    python benchmarks/dataset_views.py --episodes 20000 --export-shards 2
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # benchmarks/tokenize.py shadows stdlib
sys.path.insert(0, str(_HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

TASKS = 200
DIMS = 36


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------ generation
def generate_root(root: Path, source: str, episodes: int, per_shard: int, seed: int) -> None:
    """An output root whose catalog lists `episodes` episodes (see module doc)."""
    from schemas.catalog import ShardRecord
    from schemas.episode import FeatureSpec, canonical_json
    from schemas.stats import FeatureStats
    from shards import integrity
    from shards.formats import lerobot_v3 as v3

    if (root / "catalog.json").is_file():
        return
    rng = np.random.default_rng(seed)
    names = tuple(f"{part}.{i}" for part in ("left_hand", "right_hand", "left_arm", "right_arm", "lower_body")
                  for i in range(DIMS // 5 + 1))[:DIMS]
    features = {"action": FeatureSpec("action", "float32", (DIMS,), names),
                "observation.state": FeatureSpec("observation.state", "float32", (DIMS,), names),
                "observation.images.egocentric": FeatureSpec("observation.images.egocentric", "video", (224, 224, 3))}
    video_info = {"observation.images.egocentric": {"video.height": 224, "video.width": 224, "video.codec": "av1",
                                                    "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                                                    "video.fps": 30, "video.channels": 3, "has_audio": False}}
    embodiments = ["human"] if source == "egodex" else ["g1_dex3", "h1_inspire"]
    shards_json, inputs = [], []
    n_shards = (episodes + per_shard - 1) // per_shard
    for s in range(n_shards):
        shard_id = f"{source}-{s:05d}"
        folder = root / "shards" / shard_id
        (folder / "meta").mkdir(parents=True)
        count = min(per_shard, episodes - s * per_shard)
        lengths = rng.integers(60, 900, count)
        task_ids = rng.integers(0, TASKS, count)
        rows, starts = [], np.concatenate([[0], np.cumsum(lengths)[:-1]])
        sids = []
        for e in range(count):
            sid = f"{source}/part{s % 5}/task{task_ids[e]}/{s * per_shard + e}"
            sids.append(sid)
            emb = embodiments[e % len(embodiments)]
            meta = {"source": source, "source_id": sid, "embodiment": emb, "fps": 30.0,
                    "task": f"Task number {task_ids[e]}.", "task_name": f"task{task_ids[e]}",
                    "task_category": f"part{s % 5}",
                    "quality": {"hand_qa.detection_rate": float(rng.random()),
                                "retarget.left_arm.position_m.p95": float(rng.random() * 0.05)}}
            rows.append({"episode_index": e, "tasks": [meta["task"]], "length": int(lengths[e]),
                         "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": int(starts[e]),
                         "dataset_to_index": int(starts[e] + lengths[e]), v3.SOURCE_ID: sid, v3.EMBODIMENT: emb,
                         v3.TASK_CATEGORY: meta["task_category"], v3.META: canonical_json(meta)})
            inputs.append((sid, {"episode_index": e, "frames": int(lengths[e]), "shard": shard_id,
                                 "status": "ingested", "task": meta["task"]}))
        v3.write_parquet(pa.Table.from_pylist(rows), folder / v3.EPISODES_PATH, hf_features=False)
        frames = int(lengths.sum())
        info = v3.info_json(features, 30.0, count, frames, TASKS, video_info, embodiments[0])
        (folder / v3.INFO_PATH).write_text(canonical_json(info))
        values = rng.normal(size=(256, DIMS)) * (1 + s % 3)
        stats = {k: FeatureStats.from_values(values + i).to_json() for i, k in enumerate(("action", "observation.state"))}
        content_hash, files = integrity.hash_files(folder)        # as shards/writer.py records them
        record = ShardRecord(shard_id, "lerobot", f"shards/{shard_id}", source, count, frames, tuple(sids), content_hash)
        (folder / "shard.json").write_text(json.dumps({"record": record.to_json(), "fates": {}, "stats": stats,
                                                       "config": {}, "files": files}))
        shards_json.append(record.to_json())
    _write_catalog(root / "catalog.json", shards_json, inputs)


def _write_catalog(path: Path, shards: list[dict], inputs: list[tuple[str, dict]]) -> None:
    """catalog.json in psi0's format, written as a stream (the generator must not need the 1 GB dict either)."""
    with open(path, "w") as fh:
        fh.write('{"config": {}, "counts": {"ingested": %d, "inputs": %d, "rejected": 0}, '
                 '"format": "psi0.catalog/1", "inputs": {' % (len(inputs), len(inputs)))
        for i, (sid, fate) in enumerate(sorted(inputs)):
            fh.write(("," if i else "") + json.dumps(sid) + ": " + json.dumps(fate, sort_keys=True))
        fh.write('}, "shards": [')
        fh.write(", ".join(json.dumps(s, sort_keys=True) for s in shards))
        fh.write('], "stats": {}, "tokenizer": null}')


# ------------------------------------------------------------------------------------------ timing
def timed(results: dict, name: str, fn):
    t0 = time.perf_counter()
    out = fn()
    results[name] = round(time.perf_counter() - t0, 3)
    print(f"{name:<34} {results[name]:8.2f} s   (peak RSS {_rss_mb():.0f} MB)", flush=True)
    return out


def part1(work: Path, episodes: int, per_shard: int) -> dict:
    from shards import views_ops as ops
    from shards.views import write_view
    from shards.views_table import open_root, root_catalog, catalog_sha256

    os.environ["PSI0_CACHE_DIR"] = str(work / "cache")
    a, b = work / "egodex", work / "he"
    if not (a / "catalog.json").is_file() or not (b / "catalog.json").is_file():
        # generated in a child process, so this process's peak RSS is what the verbs need
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate-only", "--episodes", str(episodes),
                        "--per-shard", str(per_shard), "--work", str(work.parent)], check=True)
        print(f"generated {episodes} episodes in {time.perf_counter() - t0:.0f} s", flush=True)
    res: dict = {"episodes": episodes, "shards": 2 * ((episodes // 2 + per_shard - 1) // per_shard)}
    shutil.rmtree(work / "cache", ignore_errors=True)
    sha = timed(res, "hash_catalog_s", lambda: catalog_sha256(root_catalog(a)))
    table = timed(res, "open_root_cold_s", lambda: open_root(a, 0, sha))          # streamed catalog parse
    timed(res, "open_root_warm_s", lambda: open_root(a, 0, sha))                  # cached columns
    timed(res, "load_meta_cold_s", table.load_meta)                               # every shard's episode records
    timed(res, "load_meta_warm_s", lambda: open_root(a, 0, sha).load_meta())
    timed(res, "second_root_cold_s", lambda: open_root(b).load_meta())
    views = work / "views"
    views.mkdir(exist_ok=True)

    def verb(name: str, paths: list[str], make, stats: str = "none") -> None:
        def run() -> None:
            work_ = ops.resolve(paths)
            table_, steps = make(work_)
            data = ops.make_view(work_, table_, {"verb": name}, steps, views / f"{name}.json", stats)
            write_view(data, views / f"{name}.json")
        timed(res, f"{name}_s", run)

    verb("merge", [str(a), str(b)], lambda w: (w.table, [ops.Step("merge", len(w.table), 0)]))
    merged = [str(views / "merge.json")]
    timed(res, "open_view_1M_s", lambda: ops.resolve(merged))
    verb("filter_source", merged, lambda w: ops.filter_table(w.table, ops.FilterSpec(sources=["egodex"])))
    verb("filter_embodiment", merged, lambda w: ops.filter_table(w.table, ops.FilterSpec(embodiments=["g1_dex3"])))
    verb("filter_task_glob", merged, lambda w: ops.filter_table(w.table, ops.FilterSpec(task_globs=["Task number 1*"])))
    verb("filter_hand_qa", merged, lambda w: ops.filter_table(w.table, ops.FilterSpec(min_hand_qa=0.5)))
    verb("filter_where", merged, lambda w: ops.filter_table(
        w.table, ops.FilterSpec(where=['duration > 10 and embodiment != "human" and category == "part1"'])))
    verb("sample_10pct_stratified", merged, lambda w: ops.sample_table(w.table, 0.1, None, 0, "task"))
    res["split_80_10_10_s"] = 0.0

    def split() -> None:
        work_ = ops.resolve(merged)
        for name, (t, steps) in ops.split_table(work_.table, {"train": 0.8, "val": 0.1, "test": 0.1}, 0).items():
            write_view(ops.make_view(work_, t, {"verb": "split"}, steps, views / f"split-{name}.json", "none"),
                       views / f"split-{name}.json")
    timed(res, "split_80_10_10_s", split)
    for when in ("cold", "warm"):      # cold: every shard.json parsed; warm: the sketches' binary cache
        verb(f"merge_with_sketch_stats_{when}", [str(a), str(b)],
             lambda w: (w.table, [ops.Step("merge", len(w.table), 0)]), stats="exact")
    res["view_file_mb"] = round((views / "merge.json").stat().st_size / 1e6, 2)
    res["sample_view_file_mb"] = round((views / "sample_10pct_stratified.json").stat().st_size / 1e6, 2)
    res["peak_rss_mb"] = round(_rss_mb())
    return res


# ------------------------------------------------------------------------------------------ export
def build_shards(work: Path, shards: int, seconds: float) -> Path:
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig
    from samples import egodex as egodex_sample

    out = work / "egodex"
    if (out / "catalog.json").is_file():
        return out
    egodex_sample.write_sample(work / "in", episodes_per_task=shards, seconds=seconds)   # 3 tasks x shards eps
    run_local(JobConfig(source="egodex", input=str(work / "in"), output=str(out), formats=("lerobot",),
                        episodes_per_shard=3, video_width=224, video_height=224))
    return out


def part2(work: Path, shards: int, seconds: float, repeat: int) -> dict:
    import statistics

    from lerobot.datasets.aggregate import aggregate_datasets

    from shards import integrity
    from shards import views_ops
    from shards.reader import open_output
    from shards.views_export import export

    root = build_shards(work, shards, seconds)
    out = open_output(root)
    dirs = [out.location(out.record(s)).path for s in out.shard_ids()]
    frames = sum(out.record(s).frames for s in out.shard_ids())
    res: dict = {"export_shards": len(dirs), "export_frames": frames,
                 "export_mb": round(sum(f.stat().st_size for d in dirs for f in d.rglob("*") if f.is_file()) / 1e6, 1)}
    view = work / "all.json"
    from shards.dataset_cli import main as dataset
    assert dataset(["merge", str(root), "--out", str(view)]) == 0
    def psi0_export(dest: Path) -> None:
        # as a fresh `psi0 dataset export` process would: this process's memory of verified shards and of
        # shard headers goes, so every round hashes the source shards again (the on-disk episode-table cache,
        # which a user's next process also finds, stays)
        integrity.forget()
        views_ops.forget_headers()
        export(view, "lerobot", dest)

    paths = {"psi0_export_lerobot": psi0_export,
             "lerobot_aggregate": lambda d: aggregate_datasets([f"psi0/{p.name}" for p in dirs], "psi0/agg",
                                                               roots=dirs, aggr_root=d)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for attempt in range(repeat + 1):        # round 0 warms both up and is discarded; then the order alternates
        for name in (list(paths) if attempt % 2 else list(paths)[::-1]):
            dest = work / f"{name}-{attempt}"
            shutil.rmtree(dest, ignore_errors=True)
            t0 = time.perf_counter()
            paths[name](dest)
            dt = time.perf_counter() - t0
            if attempt:
                times[name].append(dt)
            print(f"{name:<22} {dt:6.2f} s  {frames / dt:8.0f} frames/s" + ("" if attempt else "  (warm-up)"),
                  flush=True)
            shutil.rmtree(dest, ignore_errors=True)
    for name, v in times.items():
        res[f"{name}_s"] = [round(x, 3) for x in v]
        res[f"{name}_frames_per_s"] = round(frames / statistics.median(v))
        res[f"{name}_frames_per_s_range"] = [round(frames / max(v)), round(frames / min(v))]
    res["export_vs_lerobot_aggregate"] = round(statistics.median(times["lerobot_aggregate"])
                                               / statistics.median(times["psi0_export_lerobot"]), 2)
    for fmt in ("lerobot-v21", "zarr"):
        dest = work / fmt
        shutil.rmtree(dest, ignore_errors=True)
        t0 = time.perf_counter()
        export(view, fmt, dest)
        res[f"psi0_export_{fmt.replace('-', '_')}_s"] = round(time.perf_counter() - t0, 2)
        shutil.rmtree(dest, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=1_000_000)
    ap.add_argument("--per-shard", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=Path("out/bench-views"))
    ap.add_argument("--export-shards", type=int, default=4, help="EgoDex sample shards (3 episodes each) to export")
    ap.add_argument("--seconds", type=float, default=4.0, help="seconds per generated EgoDex sample episode")
    ap.add_argument("--skip-export", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="timed export rounds after a warm-up (default 3)")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.generate_only:
        work = args.work / "catalog"
        generate_root(work / "egodex", "egodex", args.episodes // 2, args.per_shard, 0)
        generate_root(work / "he", "humanoid_everyday", args.episodes - args.episodes // 2, args.per_shard, 1)
        return 0
    result = {"bench": "dataset_views", **part1(args.work / "catalog", args.episodes, args.per_shard)}
    if not args.skip_export:
        result.update(part2(args.work / "export", args.export_shards, args.seconds, args.repeat))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
