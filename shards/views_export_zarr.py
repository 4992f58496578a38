"""Zarr v3 export: one `psi0.zarr/1` store (the diffusion-policy replay-buffer layout of Zarr shards).

Each part is written by the shard writer's own Zarr sink (`ZarrSink`: same arrays, chunking and
compression as a Zarr shard) into its part folder, with camera frames decoded once from the source.
Finalize creates the store's arrays at their full length and copies the parts in, block by block, so
memory stays at one block whatever the export's size; `meta/episode_ends` and the root attributes
(episodes, tasks, features, stats merged from the parts' sketches) make it readable by
`shards.reader` and by anything that reads replay buffers.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from schemas.episode import EpisodeMeta, FeatureSpec, canonical_json
from schemas.stats import FeatureStats, merge_all
from shards.formats import EpisodeEntry, ShardContents
from shards.formats import zarr_v3 as zf
from shards.views_export import ExportPlan, close_readers, frame_table, lerobot_stats, open_reader, table_stats

BLOCK_FRAMES = 256
PART_STORE = "part.zarr"


class _RGB:
    """A decoded frame as the Zarr sink's frame sinks take it (they call `to_ndarray`)."""

    def __init__(self, rgb: np.ndarray):
        self.rgb = rgb

    def to_ndarray(self, format: str = "rgb24") -> np.ndarray:  # noqa: A002 - PyAV's keyword
        return self.rgb


def _meta(info_meta: dict[str, Any], ep: Any, embodiment: str, fps: float) -> EpisodeMeta:
    known = set(EpisodeMeta.__dataclass_fields__)
    fields = {k: v for k, v in info_meta.items() if k in known}
    fields.update(source_id=ep.key, task=ep.task, fps=fps, embodiment=embodiment)
    fields.setdefault("source", ep.source)
    fields.setdefault("task_name", ep.task)
    return EpisodeMeta(**fields)


def write_part(plan: ExportPlan, index: int, tmp: Path) -> dict[str, Any]:
    cache: dict[str, Any] = {}
    store = tmp / "work" / PART_STORE
    store.mkdir(parents=True)
    sink = zf.ZarrSink(store)
    contents = ShardContents(features={k: FeatureSpec(k, v["dtype"], tuple(v["shape"])) for k, v in plan.features.items()},
                             fps=plan.fps, source=plan.parts[index][0].source, tasks=list(plan.tasks))
    tables = []
    try:
        for ep in plan.parts[index]:
            reader = open_reader(ep, cache)
            info = reader.episode(ep.episode)
            for camera in sorted(plan.cameras):
                frames = reader.frames(camera, ep.episode)
                target = sink.camera(camera, ep.index, plan.fps)
                for frame in frames:
                    target.add(_RGB(np.ascontiguousarray(frame)))
                target.close()
            table = frame_table(plan, ep, reader)
            entry = EpisodeEntry(ep.index, ep.start, ep.frames, ep.task_index, tuple(sorted(plan.cameras)),
                                 _meta(info.meta, ep, info.embodiment, plan.fps))
            sink.add_episode(entry, table)
            contents.episodes.append(entry)
            contents.embodiments.add(info.embodiment)
            contents.frames += ep.frames
            tables.append(table)
    finally:
        close_readers(cache)
    import pyarrow as pa

    data = pa.concat_tables(tables)
    contents.stats = {}
    sink.finish(contents)
    return {"frames": contents.frames, "stats": table_stats(data), "columns": data.column_names,
            "embodiments": sorted(contents.embodiments)}


def finalize(plan: ExportPlan, staging: Path, summaries: list[dict[str, Any]], final: Path) -> None:
    import zarr

    from shards.views_export import part_dir

    parts = [zf.open_group(_location(part_dir(staging, i) / "work" / PART_STORE)) for i in range(len(plan.parts))]
    root = zarr.open_group(zarr.storage.LocalStore(str(final)), mode="w", zarr_format=3)
    data = root.create_group(zf.DATA)
    meta = root.create_group("meta")
    total = plan.frames
    keys = sorted(parts[0][zf.DATA].array_keys())
    for key in keys:
        first = parts[0][zf.DATA][key]
        out = zf.create_array(data, key, (total,) + tuple(first.shape[1:]), first.dtype, 32)
        offset = 0
        for part in parts:
            arr = part[zf.DATA][key]
            for a in range(0, arr.shape[0], BLOCK_FRAMES):
                block = np.asarray(arr[a:a + BLOCK_FRAMES])
                out[offset + a:offset + a + len(block)] = block
            offset += arr.shape[0]
    ends = np.cumsum([e.frames for p in plan.parts for e in p]).astype(np.int64)
    zf.create_array(meta, "episode_ends", ends.shape, ends.dtype, 32)[...] = ends
    episodes = [e for part in parts for e in part.attrs.asdict().get("episodes", [])]
    attrs = parts[0].attrs.asdict()
    stats = merge_all({k: FeatureStats.from_json(v) for k, v in s["stats"].items()} for s in summaries)
    features = {k: {"dtype": v["dtype"], "shape": list(v["shape"]), "names": v.get("names")}
                for k, v in sorted(plan.features.items())}
    sources = sorted({e.source for p in plan.parts for e in p})
    root.attrs.update({
        "format": zf.ZARR_FORMAT, "fps": plan.fps, "source": sources[0] if len(sources) == 1 else "mixed",
        "tasks": list(plan.tasks), "episodes": episodes, "features": features or attrs.get("features"),
        "stats": json.loads(canonical_json(lerobot_stats(stats, []))),
    })


def _location(path: Path) -> Any:
    from shards.location import Location

    return Location.of(path)
