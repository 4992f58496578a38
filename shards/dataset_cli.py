"""`psi0 dataset VERB INPUT... --out VIEW.json`: curate datasets as versioned views.

A view is a small JSON manifest over output roots (and other views): its inputs with their sha256, the
operation, seed and software version, its lineage, the episode list and stats merged from the shards'
mergeable sketches. Nothing is copied. `train --shards VIEW.json`, `psi0 dashboard VIEW.json` and
`psi0 inspect VIEW.json` read a view like an output root; `export` materialises one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

VERBS = {
    "filter": "keep episodes by source, embodiment, task, ids, duration, quality scores, --where",
    "sample": "a seeded fraction or count of episodes, optionally stratified by task",
    "split": "disjoint train/val/test views covering the input, by episode or by task",
    "merge": "several roots/views as one (task indices remapped, --rename OLD=NEW, features checked)",
    "dedup": "drop exact (content hash) and near (pose trajectory, optionally video) duplicates",
    "export": "materialise a view: LeRobot v3, LeRobot v2.1 + GR00T modality.json, or Zarr v3",
    "preset": "the seed's data recipes (egodex-10pct, he-only, ...) built from these verbs",
}

EXAMPLES = """\
examples:
  psi0 dataset filter out/egodex --task-glob 'Pick*' --min-duration 2 --out views/pick.json
  psi0 dataset filter out/egodex --where 'hand_qa.detection_rate >= 0.8' --out views/good-qa.json
  psi0 dataset sample out/egodex --fraction 0.1 --stratify task --seed 0 --out views/egodex-10pct.json
  psi0 dataset split views/egodex-10pct.json --fractions train=0.9,val=0.1 --out views/egodex-10pct/
  psi0 dataset merge out/he out/teleop --rename 1:observation.images.head=observation.images.egocentric \\
        --out views/robot.json
  psi0 dataset dedup views/robot.json --out views/robot-dedup.json
  psi0 dataset export views/robot-dedup.json --format lerobot --out exports/robot
  psi0 dataset preset egodex-10pct out/egodex views/
  train --shards views/egodex-10pct/train.json --stage 1 ...
"""


def _common(p: argparse.ArgumentParser, out_help: str = "the view to write (JSON)") -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="output roots (folders with catalog.json), views (VIEW.json), or s3:// URLs of them; "
                        "several inputs are taken as their union")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--rename", action="append", default=[], metavar="[K:]OLD=NEW",
                   help="rename a feature (camera or vector) of every input, or of input K (from 0); repeatable")
    p.add_argument("--mixture", action="store_true",
                   help="allow a feature name to mean different things in different *sources* (e.g. EgoDex's 48-D "
                        "action and Humanoid Everyday's 36-D one); training normalizes per source, export refuses")
    p.add_argument("--stats", choices=("exact", "parent", "none"), default="exact",
                   help="exact (default): stats over exactly the view's frames (whole shards from their sketches, "
                        "partly held shards recomputed from their vector columns); parent: whole-shard sketches "
                        "only, metadata-only and instant, describing a superset; none: no stats")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="psi0 dataset", description=__doc__, epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", metavar="VERB", required=True)

    f = sub.add_parser("filter", help=VERBS["filter"], description=VERBS["filter"] + ". Conditions combine with "
                       "AND; the view records how many episodes each kept and dropped.")
    _common(f)
    f.add_argument("--source", action="append", default=[], help="keep these sources (repeatable)")
    f.add_argument("--embodiment", action="append", default=[], help="keep these embodiments, e.g. human, g1_dex3")
    f.add_argument("--task", action="append", default=[], help="keep this exact task string (repeatable)")
    f.add_argument("--task-glob", action="append", default=[], help="keep tasks matching this glob, e.g. 'Pick*'")
    f.add_argument("--category", action="append", default=[], help="keep this task category (repeatable)")
    f.add_argument("--episodes", default=None, metavar="IDS|@FILE",
                   help="keep only these episode ids (comma separated, or @file with one id a line): how a "
                        "dashboard selection becomes a view")
    f.add_argument("--exclude-episodes", default=None, metavar="IDS|@FILE", help="drop these episode ids")
    f.add_argument("--min-duration", type=float, default=None, metavar="S", help="minimum episode length, seconds")
    f.add_argument("--max-duration", type=float, default=None, metavar="S", help="maximum episode length, seconds")
    f.add_argument("--min-quality", action="append", default=[], metavar="KEY=V",
                   help="a quality score the ingest recorded must be >= V, e.g. hand_qa.label_agreement=0.9")
    f.add_argument("--max-quality", action="append", default=[], metavar="KEY=V", help="a quality score must be <= V")
    f.add_argument("--min-hand-qa", type=float, default=None, metavar="RATE",
                   help="MediaPipe hand-QA agreement: hand_qa.detection_rate >= RATE (EgoDex with --hand-qa)")
    f.add_argument("--max-retarget-residual", type=float, default=None, metavar="M",
                   help="every retargeting residual p95 in metres (retarget.*_m.p95) <= M")
    f.add_argument("--max-missing-frames", type=float, default=None, metavar="FRAC",
                   help="missing-frame fraction <= FRAC (missing_frame_fraction, or teleop's tracker_lost_fraction)")
    f.add_argument("--keep-unscored", action="store_true",
                   help="episodes without the score a quality condition tests pass it (default: they are dropped)")
    f.add_argument("--where", action="append", default=[], metavar="EXPR",
                   help="a condition over episode metadata, e.g. 'duration > 2 and embodiment != \"human\"' "
                        "(names: source, task, category, embodiment, id, shard, episode_index, frames, fps, duration "
                        "and every quality score)")

    s = sub.add_parser("sample", help=VERBS["sample"], description=VERBS["sample"] +
                       ". The draw is a seeded hash of each episode id: the same seed keeps the same episodes "
                       "however the inputs are ordered.")
    _common(s)
    s.add_argument("--fraction", type=float, default=None, help="fraction to keep, e.g. 0.1")
    s.add_argument("--count", type=int, default=None, help="number of episodes to keep")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--stratify", choices=("task",), default=None, help="each task keeps its share")
    s.add_argument("--by", choices=("episodes", "frames"), default="episodes",
                   help="the fraction counts episodes (default) or frames (hours)")

    sp = sub.add_parser("split", help=VERBS["split"], description=VERBS["split"] +
                        ". --out DIR writes DIR/<name>.json per split.")
    _common(sp, "folder to write one view per split into (DIR/train.json, DIR/val.json, ...)")
    sp.add_argument("--fractions", default="train=0.8,val=0.2", help="NAME=FRACTION,... summing to 1")
    sp.add_argument("--by", choices=("episode", "task"), default="episode",
                    help="episode: exact counts; task: every episode of a task in the same split (hold-out tasks)")
    sp.add_argument("--seed", type=int, default=0)

    m = sub.add_parser("merge", help=VERBS["merge"], description=VERBS["merge"] + ". Refuses different fps and a "
                       "feature with different shapes or dimension names in two inputs, saying which.")
    _common(m)

    d = sub.add_parser("dedup", help=VERBS["dedup"], description=VERBS["dedup"] +
                       ". Keeps the first episode in view order (inputs in the order given, then shard, then "
                       "episode index) and lists every dropped one with the episode it duplicates.")
    _common(d)
    d.add_argument("--no-near", action="store_true", help="only exact duplicates")
    d.add_argument("--threshold", type=float, default=0.01,
                   help="near duplicate: RMS distance of the resampled pose trajectories, as a fraction of each "
                        "dimension's range over the view (default 0.01)")
    d.add_argument("--pose-key", default=None,
                   help="the trajectory to fingerprint (default observation.state, else action)")
    d.add_argument("--video", action="store_true",
                   help="also fingerprint video (average hash of 4 frames per camera): exact needs equal video "
                        "fingerprints too, near needs them within --video-bits")
    d.add_argument("--video-bits", type=int, default=6, help="max differing hash bits per frame for --video")

    e = sub.add_parser("export", help=VERBS["export"], description=VERBS["export"] +
                       ". Runs locally or on Ray (--runner ray) in parts with a progress bar; exactly once and "
                       "resumable (a rerun skips committed parts), committed atomically (OUT appears complete or "
                       "not at all).")
    e.add_argument("view", help="the view (or output root) to export")
    e.add_argument("--format", required=True, choices=("lerobot", "lerobot-v21", "zarr"),
                   help="lerobot: one LeRobot v3.0 dataset (LeRobotDataset, lerobot-train); lerobot-v21: LeRobot "
                        "v2.1 layout + meta/modality.json for GR00T (H.264 video); zarr: one Zarr v3 store")
    e.add_argument("--out", required=True, help="dataset folder to create")
    e.add_argument("--runner", choices=("local", "ray"), default="local")
    e.add_argument("--workers", type=int, default=None, help="Ray workers (default: the cluster's CPUs)")
    e.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray instance)")
    e.add_argument("--part-episodes", type=int, default=64, help="episodes per part (unit of work and resume)")
    e.add_argument("--features", default=None, metavar="K1,K2,...",
                   help="export only these features (cameras and vectors), e.g. to export the common features of "
                        "a --mixture view")
    e.add_argument("--video-codec", default="auto",
                   help="auto (copy per-episode MP4s when the format allows, else encode: AV1 for lerobot, H.264 "
                        "for lerobot-v21), copy, libsvtav1 or libx264")
    e.add_argument("--repo-id", default=None,
                   help="repo id recorded in meta/psi0_export.json (default psi0/NAME; LeRobotDataset takes it from "
                        "its caller)")

    pr = sub.add_parser("preset", help=VERBS["preset"], description=VERBS["preset"] + ".")
    pr.add_argument("name", help="preset name, or `list`")
    pr.add_argument("paths", nargs="*", metavar="INPUT... OUT_DIR",
                    help="output roots / views, then the folder for the preset's views (one per step)")
    pr.add_argument("--seed", type=int, default=0)
    return ap


def _ids(text: str | None) -> list[str]:
    if not text:
        return []
    if text.startswith("@"):
        return [line.strip() for line in Path(text[1:]).read_text().splitlines() if line.strip()]
    return [t.strip() for t in text.split(",") if t.strip()]


def _scores(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, sep, value = item.rpartition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key] = float(value)
    return out


def _report(path: str, data: dict[str, Any]) -> str:
    c = data["counts"]
    line = f"wrote {path}: {c['episodes']} episodes, {c['frames']} frames ({c.get('hours', 0.0) * 60:.1f} min)"
    for step in data.get("steps", []):
        line += f"\n  {step['step']}: kept {step['kept']}, dropped {step['dropped']}"
    if data.get("dropped"):
        line += f"\n  dropped {len(data['dropped'])} duplicate(s) (listed in the view's 'dropped')"
    return line


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from shards import views_ops as ops
    from shards.views import write_view

    operation: dict[str, Any] = {"verb": args.verb, "argv": ["psi0", "dataset", *argv]}
    if args.verb == "export":
        from shards.views_export import export

        result = export(args.view, args.format, args.out, runner=args.runner, workers=args.workers,
                        address=args.address, part_episodes=args.part_episodes,
                        features=[k for k in (args.features or "").split(",") if k] or None,
                        video_codec=args.video_codec, repo_id=args.repo_id)
        print(f"wrote {args.out}: {result['episodes']} episodes, {result['frames']} frames "
              f"({result['format']}, {result['parts']} parts, {result['skipped']} already done) "
              f"in {result['seconds']:.1f} s")
        return 0
    if args.verb == "preset":
        from shards.views_presets import PRESETS, build_preset

        if args.name == "list" or len(args.paths) < 2:
            for name, preset in PRESETS.items():
                print(f"{name:<14} {preset.help}")
            if args.name != "list":
                print("usage: psi0 dataset preset NAME INPUT... OUT_DIR", file=sys.stderr)
            return 0 if args.name == "list" else 2
        for role, path in build_preset(args.name, args.paths[:-1], args.paths[-1], seed=args.seed).items():
            print(f"{role}: {path}")
        return 0
    work = ops.resolve(args.inputs, args.rename, args.mixture)
    if args.verb == "filter":
        spec = ops.FilterSpec(sources=args.source, embodiments=args.embodiment, tasks=args.task,
                              task_globs=args.task_glob, categories=args.category, episodes=_ids(args.episodes),
                              exclude_episodes=_ids(args.exclude_episodes), min_duration=args.min_duration,
                              max_duration=args.max_duration, min_quality=_scores(args.min_quality),
                              max_quality=_scores(args.max_quality), min_hand_qa=args.min_hand_qa,
                              max_retarget_residual=args.max_retarget_residual,
                              max_missing_frames=args.max_missing_frames, keep_unscored=args.keep_unscored,
                              where=args.where)
        operation["options"] = spec.to_json()
        table, steps = ops.filter_table(work.table, spec)
        data = ops.make_view(work, table, operation, steps, args.out, args.stats)
    elif args.verb == "sample":
        operation.update(options={"fraction": args.fraction, "count": args.count, "stratify": args.stratify,
                                  "by": args.by}, seed=args.seed)
        table, steps = ops.sample_table(work.table, args.fraction, args.count, args.seed, args.stratify, args.by)
        data = ops.make_view(work, table, operation, steps, args.out, args.stats)
    elif args.verb == "merge":
        operation["options"] = {"rename": args.rename, "mixture": args.mixture}
        data = ops.make_view(work, work.table, operation, [ops.Step(f"merge {len(args.inputs)} inputs",
                                                                    len(work.table), 0)], args.out, args.stats)
    elif args.verb == "dedup":
        from shards.views_dedup import DedupSpec, dedup_table

        spec_d = DedupSpec(near=not args.no_near, threshold=args.threshold, pose_key=args.pose_key, video=args.video,
                           video_bits=args.video_bits)
        operation["options"] = spec_d.to_json()
        table, steps, dropped = dedup_table(work, spec_d)
        data = ops.make_view(work, table, operation, steps, args.out, args.stats, dropped=dropped)
    elif args.verb == "split":
        fractions = ops.parse_fractions(args.fractions)
        parts = ops.split_table(work.table, fractions, args.seed, args.by)
        out_dir = args.out.rstrip("/")
        for name, (table, steps) in parts.items():
            op = {**operation, "options": {"fractions": fractions, "by": args.by, "part": name}, "seed": args.seed}
            path = f"{out_dir}/{name}.json"
            data = ops.make_view(work, table, op, steps, path, args.stats)
            write_view(data, path)
            print(_report(path, data))
        return 0
    else:  # pragma: no cover - argparse restricts verbs
        raise AssertionError(args.verb)
    write_view(data, args.out)
    print(_report(args.out, data))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from shards.views import ViewError
    from shards.views_expr import ExprError

    try:
        return run(args, argv)
    except (ViewError, ExprError, ValueError, FileNotFoundError) as exc:
        print(f"psi0 dataset {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
