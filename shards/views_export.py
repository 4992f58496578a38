"""`psi0 dataset export VIEW --format lerobot|lerobot-v21|zarr --out DIR`: a view as one self-contained dataset.

Plan → parts → finalize, like an ingest job:
- **plan** (driver): the view's episodes in view order get new episode indices, one task table (the
  view's task strings, so every frame's `task_index` names its own episode's task), one feature set
  (checked: one fps, one shape per camera, one meaning per feature; `--features` narrows it), and are cut
  into parts of `part_episodes`. The plan is written into the staging folder `.tmp-<name>/` beside DIR.
- **parts** (anywhere: in process or as Ray tasks, with a progress bar): each part writes its files in
  the target layout under `parts/.tmp-part-N/`, fsyncs them and renames the folder to `parts/part-N/`
  (`shards.commit`). A rerun skips committed parts and redoes only the rest; a part run twice commits
  once. Video is copied when the source MP4 already holds exactly the episode in a codec the format
  allows, else decoded once and encoded (`shards.video.EpisodeEncoder`).
- **finalize** (driver): hard-links every part's files into `final/`, writes the metadata (episodes,
  tasks, info, stats merged from the parts' sketches, modality.json), then renames `final/` to DIR.

DIR therefore appears complete or not at all; a crash leaves only the staging folder, which a rerun
resumes. Exports are written to local disk.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from schemas.durable import fsync_dir, write_json_atomic
from schemas.episode import canonical_json
from schemas.names import STAGING_PREFIX
from shards import formats
from shards.commit import commit
from shards.location import Location
from shards.reader import open_output
from shards.views import ViewError
from shards.views_reader import renamed

log = logging.getLogger("psi0.shards")
PLAN_FILE = "plan.json"
PART_FILE = "part.json"
EXPORT_RECORD = "psi0_export.json"
"""What was exported, from which view (sha256) with which options and lineage: `meta/psi0_export.json`
(Zarr: the root attribute `psi0_export`)."""
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")


@dataclass(frozen=True)
class ExportEpisode:
    """One episode of the export: where it comes from and where it goes."""

    index: int                 # episode index in the export
    key: str                   # the view's episode key (unique source id)
    path: str                  # the shard's location (local path or URL)
    format: str                # the shard's format
    episode: int               # episode index within that shard
    task: str
    task_index: int            # index in the export's task table
    frames: int
    start: int                 # global index of its first frame in the export
    source: str
    renames: tuple[tuple[str, str], ...] = ()


@dataclass
class ExportPlan:
    format: str
    name: str
    view: str                          # what was exported (view or root) and its sha256
    view_sha256: str
    fps: float
    features: dict[str, dict[str, Any]]   # vector features and cameras kept (renamed), LeRobot-style
    cameras: dict[str, list[int]]         # camera key -> [height, width]
    tasks: list[str]
    parts: list[list[ExportEpisode]]
    video_codec: str = "auto"
    repo_id: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def episodes(self) -> int:
        return sum(len(p) for p in self.parts)

    @property
    def frames(self) -> int:
        return sum(e.frames for p in self.parts for e in p)

    def header_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("parts")
        out["part_sizes"] = [len(p) for p in self.parts]
        return out

    def identity(self) -> str:
        """What must match for a rerun to resume instead of refusing."""
        return canonical_json({**self.header_json(), "parts": [[asdict(e) for e in p] for p in self.parts]})


# ------------------------------------------------------------------------------------------ reading
def open_reader(ep: ExportEpisode, cache: dict[str, Any]) -> Any:
    """The episode's shard reader (renamed), one per shard and worker."""
    reader = cache.get(ep.path)
    if reader is None:
        reader = cache[ep.path] = renamed(formats.get(ep.format).open(Location.of(ep.path)), dict(ep.renames))
    return reader


def close_readers(cache: dict[str, Any]) -> None:
    for reader in cache.values():
        reader.close()
    cache.clear()


def to_arrow(values: np.ndarray) -> pa.Array:
    """numpy (N,) or (N, D) -> Arrow, vectors as fixed_size_list of their own dtype (float64 -> float32)."""
    values = np.asarray(values)
    if values.dtype == np.float64:
        values = values.astype(np.float32)
    if values.ndim == 1:
        return pa.array(values)
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(values.shape[1:])))


def frame_table(plan: ExportPlan, ep: ExportEpisode, reader: Any) -> pa.Table:
    """The episode's per-frame table in the export: its kept features as stored, `timestamp` =
    frame_index / fps (plus the source clock when the shard kept it), new episode, global and task indices."""
    wanted = [k for k in plan.features if plan.features[k].get("dtype") not in ("video", "image")]
    extra = [k for k in ("timestamp.source",) if k not in wanted]
    cols = reader.columns([*wanted, *extra], episode=ep.episode)
    n = ep.frames
    for key, values in cols.items():
        if len(values) != n:
            raise ViewError(f"{ep.key}: {key} has {len(values)} rows, the catalog says {n} frames")
    missing = [k for k in wanted if k not in cols]
    if missing:
        raise ViewError(f"{ep.key} has no {missing} (export --features to leave them out)")
    out: dict[str, pa.Array] = {k: to_arrow(cols[k]) for k in wanted}
    out["timestamp"] = pa.array((np.arange(n) / plan.fps).astype(np.float32), pa.float32())
    if "timestamp.source" in cols:
        out["timestamp.source"] = pa.array(np.asarray(cols["timestamp.source"], np.float32).reshape(-1), pa.float32())
    out["frame_index"] = pa.array(np.arange(n), pa.int64())
    out["episode_index"] = pa.array(np.full(n, ep.index), pa.int64())
    out["index"] = pa.array(np.arange(ep.start, ep.start + n), pa.int64())
    out["task_index"] = pa.array(np.full(n, ep.task_index), pa.int64())
    return pa.table(out)


CAMERA_SAMPLES = 4
CAMERA_PIXELS = 2500
"""Image stats come from CAMERA_SAMPLES evenly spaced frames per episode and camera, each strided down to
about CAMERA_PIXELS pixels, scaled to [0, 1] (LeRobot samples and downsamples too: per-channel image stats
only set a normalization, and a sketch over every pixel would cost a second per episode)."""


def sample_picks(length: int) -> np.ndarray:
    return np.unique(np.linspace(0, max(length - 1, 0), min(CAMERA_SAMPLES, max(length, 1))).round().astype(int))


def camera_sketch(frames: np.ndarray) -> dict[str, Any]:
    """Mergeable per-channel stats of (K, H, W, 3) uint8 frames, in [0, 1]."""
    from schemas.stats import FeatureStats

    frames = np.asarray(frames)
    step = max(1, int(np.sqrt(frames.shape[1] * frames.shape[2] / CAMERA_PIXELS)))
    pixels = frames[:, ::step, ::step, :].reshape(-1, 3).astype(np.float64) / 255.0
    return FeatureStats.from_values(pixels).to_json()


def lerobot_stats(merged: dict[str, Any], cameras: Sequence[str]) -> dict[str, dict[str, Any]]:
    """LeRobot stats.json from merged sketches: camera stats per channel with shape (3, 1, 1)."""
    from shards.views_stats import lerobot_stats as fast

    out = {}
    for key, st in sorted(merged.items()):
        entry = fast(st)
        if key in cameras:
            entry = {k: (v if k == "count" else [[[x]] for x in v]) for k, v in entry.items()}
        out[key] = entry
    return out


def table_stats(table: pa.Table) -> dict[str, Any]:
    """Mergeable sketches of a part's frames (the columns the ingest writer keeps stats of)."""
    from schemas.episode import column_to_numpy
    from schemas.stats import FeatureStats

    out = {}
    for name in table.column_names:
        if name in ("episode_index", "index", "task_index"):
            continue
        values = column_to_numpy(table.column(name))
        if values.dtype.kind in "fiub" and len(values):
            out[name] = FeatureStats.from_values(values.astype(np.float64)).to_json()
    return out


# ------------------------------------------------------------------------------------------ planning
def plan_export(where: str | Path, fmt: str, out: Path, part_episodes: int = 64,
                features: Sequence[str] | None = None, video_codec: str = "auto", repo_id: str | None = None) -> ExportPlan:
    """The export's plan from a view (or an output root): see module doc."""
    from shards.views import file_sha256
    from shards.views_table import root_catalog

    if part_episodes < 1:
        raise ViewError("--part-episodes must be >= 1")
    source = open_output(where)
    loc = Location.of(where)
    sha = file_sha256(loc if source.is_view else root_catalog(loc))
    catalog = source.catalog
    records = sorted({r.shard_id: source.record(r.shard_id) for r in catalog.shards}.values(),
                     key=lambda r: (source.root_of(r) if source.is_view else 0, r.shard_id))
    headers: dict[str, dict[str, Any]] = {}
    fps_seen: dict[float, str] = {}
    for rec in records:
        reader = source.open_shard(rec)
        try:
            info = reader.info()
        finally:
            reader.close()
        headers[rec.shard_id] = {"fps": info.fps, "features": info.features,
                                 "cameras": {c.key: [c.height, c.width] for c in info.cameras}}
        fps_seen.setdefault(float(info.fps), rec.shard_id)
    if len(fps_seen) > 1:
        raise ViewError(f"the view mixes frame rates {sorted(fps_seen)}: an export has one fps")
    fps = next(iter(fps_seen), 30.0)
    kept, cameras = _feature_set(headers, features)
    tasks = sorted({f["task"] for f in catalog.inputs.values() if f.get("status") == "ingested"})
    task_index = {t: i for i, t in enumerate(tasks)}
    by_shard: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, fate in catalog.inputs.items():
        if fate.get("status") == "ingested":
            by_shard.setdefault(str(fate["shard"]), []).append((key, fate))
    episodes: list[ExportEpisode] = []
    start = 0
    for rec in records:
        where_ = source.location(rec)
        for key, fate in sorted(by_shard.get(rec.shard_id, []), key=lambda kv: int(kv[1]["episode_index"])):
            frames = int(fate["frames"])
            episodes.append(ExportEpisode(len(episodes), key, where_.uri, rec.format, int(fate["episode_index"]),
                                          str(fate.get("task", "")), task_index[str(fate.get("task", ""))], frames,
                                          start, rec.source, tuple(sorted(source.renames(rec).items()))))
            start += frames
    if not episodes:
        raise ViewError("the view holds no episodes: nothing to export")
    parts = [episodes[i:i + part_episodes] for i in range(0, len(episodes), part_episodes)]
    name = out.name
    return ExportPlan(fmt, name, loc.uri, sha, float(fps), kept, cameras, tasks, parts, video_codec,
                      repo_id or f"psi0/{name}", {"part_episodes": part_episodes,
                                                  "features": list(features) if features else None})


def _feature_set(headers: dict[str, dict[str, Any]], only: Sequence[str] | None
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    """One feature set over every shard: the same keys (or `only`), each with one dtype/shape/names."""
    keysets = {sid: {k for k in h["features"] if k not in BOOKKEEPING and k != "timestamp.source"}
               for sid, h in headers.items()}
    if only:
        for sid, keys in keysets.items():
            missing = sorted(set(only) - keys)
            if missing:
                raise ViewError(f"shard {sid} has no feature(s) {missing}")
        common = list(only)
    else:
        first_sid, first = next(iter(keysets.items()))
        for sid, keys in keysets.items():
            if keys != first:
                diff = sorted(keys ^ first)
                raise ViewError(f"shards {first_sid} and {sid} have different features ({', '.join(diff[:6])}): "
                                "export --features K1,K2,... with the ones to keep")
        common = sorted(first)
    kept: dict[str, dict[str, Any]] = {}
    cameras: dict[str, list[int]] = {}
    origin: dict[str, str] = {}
    for sid, h in headers.items():
        for key in common:
            spec = h["features"][key]
            sig = {"dtype": spec.get("dtype"), "shape": list(spec.get("shape") or []),
                   "names": spec.get("names") if spec.get("dtype") != "video" else None}
            if key not in kept:
                kept[key], origin[key] = sig, sid
            elif kept[key] != sig:
                raise ViewError(f"feature {key!r} differs between shards {origin[key]} and {sid} "
                                f"({kept[key]['dtype']}{kept[key]['shape']} vs {sig['dtype']}{sig['shape']}): "
                                "leave it out with --features or export the sources separately")
            if spec.get("dtype") == "video":
                size = h["cameras"].get(key)
                if key in cameras and cameras[key] != size:
                    raise ViewError(f"camera {key!r} is {cameras[key]} in one shard and {size} in {sid}: "
                                    "an export has one size per camera")
                cameras[key] = size
    return dict(sorted(kept.items())), cameras


# ------------------------------------------------------------------------------------------ running
PartWriter = Callable[[ExportPlan, int, Path], dict[str, Any]]


def _writers() -> dict[str, tuple[PartWriter, Callable[[ExportPlan, Path, list[dict[str, Any]], Path], None]]]:
    from shards import views_export_lerobot as lr
    from shards import views_export_zarr as zr

    return {"lerobot": (lr.write_part_v3, lr.finalize_v3), "lerobot-v21": (lr.write_part_v21, lr.finalize_v21),
            "zarr": (zr.write_part, zr.finalize)}


def part_dir(staging: Path, index: int) -> Path:
    return staging / "parts" / f"part-{index:05d}"


def run_part(staging: Path, index: int) -> str:
    """Write and commit part `index` of the plan in `staging` (no-op when already committed)."""
    final = part_dir(staging, index)
    if (final / PART_FILE).is_file():
        return "skipped"
    plan = load_plan(staging)
    writer = _writers()[plan.format][0]
    tmp = final.parent / f"{STAGING_PREFIX}{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "files").mkdir(parents=True)
    summary = writer(plan, index, tmp)
    (tmp / PART_FILE).write_text(json.dumps(summary, sort_keys=True))       # internal: compact
    if (final / PART_FILE).is_file():           # another attempt committed it first: same bytes
        shutil.rmtree(tmp)
        return "skipped"
    commit(tmp, final)
    return "written"


def load_plan(staging: Path) -> ExportPlan:
    data = json.loads((staging / PLAN_FILE).read_text())
    parts = [[ExportEpisode(**{**e, "renames": tuple(tuple(r) for r in e["renames"])}) for e in p]
             for p in data.pop("parts")]
    data.pop("part_sizes", None)
    return ExportPlan(**data, parts=parts)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="part", dynamic_ncols=True, mininterval=1.0)


class PartActor:
    """Ray Data actor: one export part per row."""

    def __init__(self, staging: str):
        self.staging = Path(staging)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"result": np.asarray([run_part(self.staging, int(i)) for i in batch["part"]], dtype=object)}


def _run_ray(staging: Path, todo: list[int], workers: int | None, address: str | None) -> None:
    import ray

    started = not ray.is_initialized()
    if started:
        repo = str(Path(__file__).resolve().parent.parent)
        pythonpath = os.pathsep.join([repo] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        if address:
            ray.init(address=address, log_to_driver=False,
                     runtime_env={"working_dir": repo, "excludes": [".venv", "out", ".git", "runs"]})
        else:
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    try:
        concurrency = max(1, min(workers or int(ray.available_resources().get("CPU", 1)), len(todo)))
        ds = ray.data.from_items([{"part": i} for i in todo], override_num_blocks=len(todo))
        ds = ds.map_batches(PartActor, fn_constructor_args=(str(staging),), batch_size=1, concurrency=concurrency,
                            num_cpus=1, max_restarts=2, max_task_retries=2)
        with _progress(len(todo), f"export (ray x{concurrency})") as bar:
            for row in ds.iter_rows():
                bar.set_postfix(last=row["result"])
                bar.update(1)
    finally:
        if started:
            ray.shutdown()


def export(where: str | Path, fmt: str, out: str | Path, *, runner: str = "local", workers: int | None = None,
           address: str | None = None, part_episodes: int = 64, features: Sequence[str] | None = None,
           video_codec: str = "auto", repo_id: str | None = None, stop_after: int | None = None) -> dict[str, Any]:
    """Export a view (see module doc). `stop_after`: stop after that many parts (tests of resume)."""
    t0 = time.monotonic()
    if fmt not in ("lerobot", "lerobot-v21", "zarr"):
        raise ViewError(f"unknown export format {fmt!r}")
    if Location.of(str(out)).is_url:
        raise ViewError("exports are written to a local folder (copy it to the object store afterwards)")
    out = Path(out).resolve()
    if out.exists():
        raise ViewError(f"{out} already exists: choose another --out (exports never overwrite)")
    staging = out.parent / f"{STAGING_PREFIX}{out.name}"
    plan = plan_export(where, fmt, out, part_episodes, features, video_codec, repo_id)
    identity = plan.identity()
    if (staging / PLAN_FILE).is_file():
        if (staging / "identity.json").read_text() != identity:
            raise ViewError(f"{staging} holds an interrupted export of something else (another view, format or "
                            "options): delete it to start over")
        log.info("resuming the export in %s", staging)
    else:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        (staging / "identity.json").write_text(identity)
        write_json_atomic(staging / PLAN_FILE, None, canonical_json(
            {**plan.header_json(), "parts": [[asdict(e) for e in p] for p in plan.parts]}))
    todo = [i for i in range(len(plan.parts)) if not (part_dir(staging, i) / PART_FILE).is_file()]
    skipped = len(plan.parts) - len(todo)
    if stop_after is not None:
        todo = todo[:stop_after]
    if runner == "ray" and todo:
        _run_ray(staging, todo, workers, address)
    elif runner == "local":
        with _progress(len(todo), f"export {fmt}") as bar:
            for i in todo:
                bar.set_postfix(part=i, result=run_part(staging, i))
                bar.update(1)
    elif runner != "ray":
        raise ViewError(f"unknown runner {runner!r}")
    done = [i for i in range(len(plan.parts)) if (part_dir(staging, i) / PART_FILE).is_file()]
    result = {"format": fmt, "episodes": plan.episodes, "frames": plan.frames, "parts": len(plan.parts),
              "skipped": skipped, "complete": len(done) == len(plan.parts)}
    if not result["complete"]:
        result["seconds"] = time.monotonic() - t0
        return result
    summaries = [json.loads((part_dir(staging, i) / PART_FILE).read_text()) for i in done]
    final = staging / "final"
    if final.exists():
        shutil.rmtree(final)
    final.mkdir()
    for i in done:
        _link_tree(part_dir(staging, i) / "files", final)
    _writers()[fmt][1](plan, staging, summaries, final)
    record = {"exported": plan.view, "sha256": plan.view_sha256, "format": fmt, "repo_id": plan.repo_id,
              "episodes": plan.episodes,
              "frames": plan.frames, "tasks": len(plan.tasks), "options": plan.options,
              "source": _view_summary(where)}
    if fmt == "zarr":                 # a zarr group folder holds only zarr's own files
        import zarr

        zarr.open_group(zarr.storage.LocalStore(str(final)), mode="r+").attrs["psi0_export"] = \
            json.loads(canonical_json(record))
    else:
        (final / "meta" / EXPORT_RECORD).write_text(canonical_json(record))
    commit(final, out)
    shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(out.parent)
    result["seconds"] = time.monotonic() - t0
    return result


def _view_summary(where: str | Path) -> dict[str, Any]:
    out = open_output(where)
    if not out.is_view:
        return {"kind": "root"}
    data = out.view.data
    return {"kind": "view", "operation": data.get("operation"), "lineage": out.lineage(),
            "counts": data.get("counts")}


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (copy across devices) every file of `src` into the same place under `dst`."""
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)


__all__ = ["ExportEpisode", "ExportPlan", "export", "frame_table", "load_plan", "plan_export", "run_part",
           "table_stats"]
