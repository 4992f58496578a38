"""Export parts and finalizers for LeRobot v3.0 and LeRobot v2.1 (+ GR00T's meta/modality.json).

v3.0 (what `LeRobotDataset` 0.4.4 and `lerobot-train` read): one data parquet per part
(`data/chunk-C/file-F.parquet`), one MP4 per episode and camera (`videos/<key>/chunk-C/file-E.mp4`, the
layout psi0 shards use), `meta/episodes` with the psi0 episode columns, `meta/tasks.parquet` (the view's
task table), `meta/stats.json` merged from the parts' sketches, `meta/info.json`.

v2.1 (what GR00T reads; LeRobot's own v2.1 → v3.0 converter accepts it): one parquet per episode
(`data/chunk-C/episode_E.parquet`), `videos/chunk-C/<key>/episode_E.mp4` in H.264 (GR00T's decoders
cannot read AV1), `meta/episodes.jsonl`, `meta/tasks.jsonl`, `meta/episodes_stats.jsonl`,
`meta/stats.json` (mean/std/min/max/q01/q99 per column, which GR00T asserts) and `meta/modality.json`:
`observation.state` / `action` cut into the named groups of their dimension names (`left_hand`,
`right_arm`, `lower_body`, ... — the prefixes `schemas` gives every dimension), each camera as a video
modality, and the task as `annotation.human.task_description` (original_key `task_index`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from schemas.episode import FeatureSpec, canonical_json
from schemas.names import ACTION, IMAGES_PREFIX, SHARD_FILE, STATE
from schemas.stats import FeatureStats, merge_all
from shards.formats import lerobot_v3 as v3
from shards.video import EpisodeEncoder, VideoConfig
from shards.views import ViewError
from shards.views_export import (ExportEpisode, ExportPlan, camera_sketch, close_readers, frame_table, lerobot_stats,
                                 open_reader, sample_picks, table_stats)

V21 = "v2.1"
V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V21_EPISODES = "meta/episodes.jsonl"
V21_TASKS = "meta/tasks.jsonl"
V21_EPISODES_STATS = "meta/episodes_stats.jsonl"
MODALITY = "meta/modality.json"
CODECS = {"lerobot": "libsvtav1", "lerobot-v21": "libx264"}
COPYABLE = {"lerobot": None, "lerobot-v21": ("h264",)}          # None: any codec may be copied


# ------------------------------------------------------------------------------------------ video
def write_video(plan: ExportPlan, ep: ExportEpisode, reader: Any, camera: str, dst: Path
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copy the episode's MP4 when it is a whole file in an allowed codec, else decode + encode. Returns
    the LeRobot `info` of the written stream and the camera's stats sketch (sampled frames)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    policy = plan.video_codec
    span = reader.video_file(camera, ep.episode)
    source_info = (reader.info().features.get(camera) or {}).get("info") or {}
    codec = str(source_info.get("video.codec", ""))
    allowed = COPYABLE[plan.format]
    whole_file = (span is not None and span.start == 0.0 and reader.format == v3.NAME
                  and reader.location.join(SHARD_FILE).is_file())     # psi0 shards: one MP4 per episode
    can_copy = whole_file and (allowed is None or codec in allowed)
    if policy in ("auto", "copy") and can_copy:
        if span.location.is_url:
            dst.write_bytes(span.location.read_bytes())
        else:
            shutil.copyfile(span.location.path, dst)
        sampled = np.stack([reader.frame(camera, ep.episode, int(k)) for k in sample_picks(ep.frames)])
        return dict(source_info), camera_sketch(sampled)
    if policy == "copy":
        raise ViewError(f"{ep.key}: {camera} cannot be copied into {plan.format} (codec {codec or 'none'}, "
                        f"{'a whole file' if whole_file else 'not a file of its own'}); use --video-codec auto")
    import av  # noqa: PLC0415 - PyAV loads only where video is encoded

    frames = reader.frames(camera, ep.episode)
    if len(frames) != ep.frames:
        raise ViewError(f"{ep.key}: {camera} decoded {len(frames)} frames, episode has {ep.frames}")
    height, width = frames.shape[1], frames.shape[2]
    cfg = VideoConfig(width=int(width), height=int(height),
                      codec=CODECS[plan.format] if policy in ("auto", "copy") else policy)
    encoder = EpisodeEncoder(dst, plan.fps, cfg)
    try:
        for frame in frames:
            encoder.add(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
        encoder.close()
    except BaseException:
        encoder.abort()
        raise
    info = {"video.height": int(height), "video.width": int(width), "video.codec": cfg.codec_label,
            "video.pix_fmt": cfg.pix_fmt, "video.is_depth_map": False, "video.fps": int(round(plan.fps)),
            "video.channels": 3, "has_audio": False}
    return info, camera_sketch(frames[sample_picks(ep.frames)])


def _episode_meta(reader: Any, ep: ExportEpisode) -> tuple[str, str, dict[str, Any]]:
    info = reader.episode(ep.episode)
    meta = dict(info.meta)
    return info.embodiment, str(meta.get("task_category", "")), meta


# ------------------------------------------------------------------------------------------ v3.0
def write_part_v3(plan: ExportPlan, index: int, tmp: Path) -> dict[str, Any]:
    files = tmp / "files"
    cache: dict[str, Any] = {}
    tables, rows, video_info = [], [], {}
    camera_stats: list[dict[str, FeatureStats]] = []
    embodiments = set()
    chunk, file = divmod(index, v3.CHUNKS_SIZE)
    try:
        for ep in plan.parts[index]:
            reader = open_reader(ep, cache)
            table = frame_table(plan, ep, reader)
            tables.append(table)
            embodiment, category, meta = _episode_meta(reader, ep)
            embodiments.add(embodiment)
            row: dict[str, Any] = {
                "episode_index": ep.index, "tasks": [ep.task], "length": ep.frames, "data/chunk_index": chunk,
                "data/file_index": file, "dataset_from_index": ep.start, "dataset_to_index": ep.start + ep.frames}
            for camera in sorted(plan.cameras):
                video_info[camera], sketch = write_video(plan, ep, reader, camera,
                                                         files / v3.video_path(camera, ep.index))
                camera_stats.append({camera: FeatureStats.from_json(sketch)})
                row[f"videos/{camera}/chunk_index"] = ep.index // v3.CHUNKS_SIZE
                row[f"videos/{camera}/file_index"] = ep.index % v3.CHUNKS_SIZE
                row[f"videos/{camera}/from_timestamp"] = 0.0
                row[f"videos/{camera}/to_timestamp"] = ep.frames / plan.fps
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            row[v3.SOURCE_ID] = ep.key
            row[v3.EMBODIMENT] = embodiment
            row[v3.TASK_CATEGORY] = category
            row[v3.META] = canonical_json(meta)
            rows.append(row)
    finally:
        close_readers(cache)
    data = pa.concat_tables(tables)
    v3.write_parquet(data, files / v3.DATA_PATH.format(chunk_index=chunk, file_index=file))
    stats = {**table_stats(data), **{k: v.to_json() for k, v in merge_all(camera_stats).items()}}
    return {"rows": rows, "stats": stats, "video_info": video_info, "columns": data.column_names,
            "embodiments": sorted(embodiments)}


def _features(plan: ExportPlan, summaries: list[dict[str, Any]]) -> dict[str, FeatureSpec]:
    features: dict[str, FeatureSpec] = {}
    for key, spec in plan.features.items():
        if spec["dtype"] == "video":
            h, w = plan.cameras[key]
            features[key] = FeatureSpec(key, "video", (int(h), int(w), 3))
        else:
            names = spec.get("names")
            features[key] = FeatureSpec(key, str(spec["dtype"]), tuple(int(s) for s in spec["shape"]),
                                        tuple(names) if isinstance(names, list) else None)
    if any("timestamp.source" in s["columns"] for s in summaries):
        features["timestamp.source"] = FeatureSpec("timestamp.source", "float32", (1,))
    return features


def _merged_stats(summaries: list[dict[str, Any]]) -> dict[str, FeatureStats]:
    return merge_all({k: FeatureStats.from_json(v) for k, v in s["stats"].items()} for s in summaries)


def _robot_type(summaries: list[dict[str, Any]]) -> str:
    found = sorted({e for s in summaries for e in s["embodiments"]})
    return found[0] if len(found) == 1 else "mixed"


def finalize_v3(plan: ExportPlan, staging: Path, summaries: list[dict[str, Any]], final: Path) -> None:
    rows = [r for s in summaries for r in s["rows"]]
    v3.write_parquet(pa.Table.from_pylist(rows), final / v3.EPISODES_PATH, hf_features=False)
    v3.write_parquet(v3.tasks_table(plan.tasks), final / v3.TASKS_PATH, hf_features=False)
    video_info = {}
    for s in summaries:
        video_info.update(s["video_info"])
    info = v3.info_json(_features(plan, summaries), plan.fps, plan.episodes, plan.frames, len(plan.tasks),
                        video_info, _robot_type(summaries))
    (final / v3.INFO_PATH).write_text(canonical_json(info))
    stats = _merged_stats(summaries)
    (final / v3.STATS_PATH).write_text(canonical_json(lerobot_stats(stats, list(plan.cameras))))


# ------------------------------------------------------------------------------------------ v2.1
def write_part_v21(plan: ExportPlan, index: int, tmp: Path) -> dict[str, Any]:
    files = tmp / "files"
    cache: dict[str, Any] = {}
    episodes, episode_stats, video_info, tables = [], [], {}, []
    camera_stats: list[dict[str, FeatureStats]] = []
    embodiments = set()
    try:
        for ep in plan.parts[index]:
            reader = open_reader(ep, cache)
            table = frame_table(plan, ep, reader)
            tables.append(table)
            chunk = ep.index // v3.CHUNKS_SIZE
            v3.write_parquet(table, files / V21_DATA_PATH.format(episode_chunk=chunk, episode_index=ep.index))
            sketches = {k: FeatureStats.from_json(j) for k, j in table_stats(table).items()}
            for camera in sorted(plan.cameras):
                dst = files / V21_VIDEO_PATH.format(episode_chunk=chunk, video_key=camera, episode_index=ep.index)
                video_info[camera], sketch = write_video(plan, ep, reader, camera, dst)
                sketches[camera] = FeatureStats.from_json(sketch)
            camera_stats.append({c: sketches[c] for c in plan.cameras})
            embodiments.add(_episode_meta(reader, ep)[0])
            episodes.append({"episode_index": ep.index, "tasks": [ep.task], "length": ep.frames})
            stats = {k: {q: v[q] for q in ("min", "max", "mean", "std", "count")}
                     for k, v in lerobot_stats(sketches, list(plan.cameras)).items()}
            episode_stats.append({"episode_index": ep.index, "stats": stats})
    finally:
        close_readers(cache)
    data = pa.concat_tables(tables)
    stats = {**table_stats(data), **{k: v.to_json() for k, v in merge_all(camera_stats).items()}}
    return {"episodes": episodes, "episodes_stats": episode_stats, "stats": stats,
            "video_info": video_info, "columns": data.column_names, "embodiments": sorted(embodiments)}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))


def info_v21(plan: ExportPlan, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    video_info: dict[str, Any] = {}
    for s in summaries:
        video_info.update(s["video_info"])
    feats: dict[str, Any] = {}
    for key, spec in _features(plan, summaries).items():
        entry = spec.to_lerobot()
        if spec.dtype == "video":
            entry["info"] = video_info[key]
        feats[key] = entry
    feats.update(v3.DEFAULT_FEATURES)
    chunks = (plan.episodes + v3.CHUNKS_SIZE - 1) // v3.CHUNKS_SIZE
    return {"codebase_version": V21, "robot_type": _robot_type(summaries), "total_episodes": plan.episodes,
            "total_frames": plan.frames, "total_tasks": len(plan.tasks),
            "total_videos": plan.episodes * len(plan.cameras), "total_chunks": chunks, "chunks_size": v3.CHUNKS_SIZE,
            "fps": int(round(plan.fps)) if float(plan.fps).is_integer() else plan.fps,
            "splits": {"train": f"0:{plan.episodes}"}, "data_path": V21_DATA_PATH,
            "video_path": V21_VIDEO_PATH if plan.cameras else None, "features": feats}


def dim_groups(names: list[str] | None, width: int) -> dict[str, dict[str, int]]:
    """Contiguous runs of dimensions sharing a name prefix (text before the first '.'), as GR00T's
    {group: {start, end}}; one group for unnamed vectors."""
    if not names or len(names) != width:
        return {"all": {"start": 0, "end": width}}
    groups: dict[str, dict[str, int]] = {}
    start = 0
    for i in range(1, width + 1):
        if i == width or names[i].split(".", 1)[0] != names[start].split(".", 1)[0]:
            key = names[start].split(".", 1)[0] if "." in names[start] else names[start]
            if key in groups:                     # a prefix that comes back later: keep runs apart
                key = f"{key}_{start}"
            groups[key] = {"start": start, "end": i}
            start = i
    return groups


def modality(plan: ExportPlan) -> dict[str, Any]:
    """GR00T's meta/modality.json for the export (see module doc)."""
    out: dict[str, Any] = {}
    for part, key in (("state", STATE), ("action", ACTION)):
        spec = plan.features.get(key)
        if spec is not None and spec["dtype"] != "video":
            width = int(np.prod(spec["shape"]))
            out[part] = {g: {**span, "original_key": key} for g, span in dim_groups(spec.get("names"), width).items()}
    out["video"] = {cam.removeprefix(IMAGES_PREFIX): {"original_key": cam} for cam in sorted(plan.cameras)}
    out["annotation"] = {"human.task_description": {"original_key": "task_index"}}
    return out


def finalize_v21(plan: ExportPlan, staging: Path, summaries: list[dict[str, Any]], final: Path) -> None:
    meta = final / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    _jsonl(final / V21_EPISODES, [e for s in summaries for e in s["episodes"]])
    _jsonl(final / V21_TASKS, [{"task_index": i, "task": t} for i, t in enumerate(plan.tasks)])
    _jsonl(final / V21_EPISODES_STATS, [e for s in summaries for e in s["episodes_stats"]])
    (meta / "info.json").write_text(canonical_json(info_v21(plan, summaries)))
    stats = _merged_stats(summaries)
    (meta / "stats.json").write_text(canonical_json(lerobot_stats(stats, list(plan.cameras))))
    (final / MODALITY).write_text(canonical_json(modality(plan)))
