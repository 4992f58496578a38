"""`psi0 dataset dedup`: drop exact and near duplicate episodes, keeping the first in view order.

- **Exact**: the sha256 of an episode's task and every per-frame numeric column (names, dtypes, shapes,
  bytes; bookkeeping indices excluded) — the same recording ingested twice, under any source id.
- **Near**: a pose-trajectory fingerprint: `--pose-key` (default `observation.state`, else `action`)
  resampled to 32 points over the episode's normalized time, each dimension scaled by its range over
  the view. Two episodes are near duplicates when the RMS distance of their fingerprints is at most
  `threshold` (1 % of the range by default). Candidates come from a sorted random projection: by
  Cauchy–Schwarz |p·(a−b)| <= |a−b| for a unit p, so pairs farther apart in projection than the
  threshold allows cannot be near duplicates and are never compared (no false negatives).
- **Video** (`--video`): an average hash (8×8 grey, 64 bits) of 4 evenly spaced frames per camera joins
  both keys: exact duplicates need equal hashes, near ones at most `video_bits` differing bits per frame.

The rule is stated in the view: an episode is dropped when it duplicates one *kept* earlier in view order
(inputs in the order given, then shard id, then episode index); `dropped` lists each with the episode it
duplicates, the kind and the distance. Dedup reads vector columns (and, with --video, 4 frames per camera).
"""
from __future__ import annotations

import bisect
import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from schemas.names import ACTION, STATE
from schemas.stats import interp_columns
from shards import formats
from shards.views_ops import Step, Working
from shards.views_reader import renamed
from shards.views_table import EpisodeTable, iter_shard_groups

FINGERPRINT_POINTS = 32
VIDEO_FRAMES = 4
SKIP = ("episode_index", "index", "task_index", "frame_index", "timestamp")


@dataclass(frozen=True)
class DedupSpec:
    near: bool = True
    threshold: float = 0.01
    pose_key: str | None = None
    video: bool = False
    video_bits: int = 6

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resample(values: np.ndarray, points: int = FINGERPRINT_POINTS) -> np.ndarray:
    """(T, D) -> (points, D), linear in normalized time (episode length does not matter): per column
    `np.interp`'s values, bit for bit, in one pass over all columns (`schemas.stats.interp_columns`)."""
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    if len(values) == 1:
        return np.repeat(values, points, axis=0)
    return interp_columns(np.linspace(0.0, 1.0, points), np.linspace(0.0, 1.0, len(values)), values)


def average_hash(frame: np.ndarray) -> int:
    """64-bit average hash of an (H, W, 3) frame: 8x8 block means of its grey image against their mean."""
    grey = np.asarray(frame, np.float64).mean(axis=2)
    h, w = grey.shape
    ys, xs = np.linspace(0, h, 9).astype(int), np.linspace(0, w, 9).astype(int)
    blocks = np.array([[grey[ys[i]:max(ys[i + 1], ys[i] + 1), xs[j]:max(xs[j + 1], xs[j] + 1)].mean()
                        for j in range(8)] for i in range(8)])
    bits = (blocks > blocks.mean()).reshape(-1)
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def _fingerprints(work: Working, table: EpisodeTable, spec: DedupSpec) -> tuple[list[str], list[Any], list[Any]]:
    """Per row: exact content hash, pose fingerprint (or None), video hashes (tuple, or None)."""
    n = len(table)
    exact: list[str] = [""] * n
    poses: list[Any] = [None] * n
    videos: list[Any] = [None] * n
    tasks = table.task.strings()
    for srow, rows in iter_shard_groups(table):
        row = table.shards[srow]
        rec = row.record
        reader = renamed(formats.get(rec.format).open(table.roots[row.root].location.child(rec.path)),
                         work.renames.get(row.root, {}))
        try:
            info = reader.info()
            keys = sorted(k for k, f in info.features.items() if f.get("dtype") not in ("video", "image", "string")
                          and k not in SKIP)
            cols = reader.columns(keys)
            pose_key = spec.pose_key or (STATE if STATE in cols else ACTION if ACTION in cols else None)
            spans = {e.index: e for e in reader.episodes()}
            for i in rows.tolist():
                e = spans[int(table.episode[i])]
                sl = slice(e.start, e.start + e.length)
                digest = hashlib.sha256(tasks[i].encode() + b"\0")
                for key in keys:
                    v = np.ascontiguousarray(cols[key][sl])
                    digest.update(f"{key}|{v.dtype.str}|{v.shape[1:]}".encode() + b"\0" + v.tobytes())
                if spec.video:
                    hashes = []
                    for cam in info.cameras:
                        picks = np.linspace(0, e.length - 1, min(VIDEO_FRAMES, e.length)).round().astype(int)
                        hashes.extend(average_hash(reader.frame(cam.key, e.index, int(k))) for k in picks)
                    videos[i] = tuple(hashes)
                    digest.update(repr(videos[i]).encode())
                exact[i] = digest.hexdigest()
                if pose_key is not None and pose_key in cols and e.length:
                    poses[i] = (pose_key, resample(cols[pose_key][sl]))
        finally:
            reader.close()
    return exact, poses, videos


def dedup_table(work: Working, spec: DedupSpec) -> tuple[EpisodeTable, list[Step], list[dict[str, Any]]]:
    """(kept table, steps, dropped list) — see module doc for the rule."""
    if spec.threshold < 0 or spec.video_bits < 0:
        raise ValueError("--threshold and --video-bits must be >= 0")
    table = work.table
    n = len(table)
    keys = table.keys()
    exact, poses, videos = _fingerprints(work, table, spec)
    keep = np.ones(n, bool)
    dropped: list[dict[str, Any]] = []
    first_of: dict[str, int] = {}
    for i in range(n):                       # view order
        j = first_of.setdefault(exact[i], i)
        if j != i:
            keep[i] = False
            dropped.append({"episode": keys[i], "duplicate_of": keys[j], "kind": "exact", "distance": 0.0})
    steps = [Step("exact duplicates (content hash)", int(keep.sum()), n - int(keep.sum()))]
    if spec.near:
        before = int(keep.sum())
        _near(keys, poses, videos, keep, dropped, spec)
        steps.append(Step(f"near duplicates (pose RMS <= {spec.threshold:g} of range"
                          f"{', video' if spec.video else ''})", int(keep.sum()), before - int(keep.sum())))
    return table.take(keep), steps, dropped


def _near(keys: list[str], poses: list[Any], videos: list[Any], keep: np.ndarray, dropped: list[dict[str, Any]],
          spec: DedupSpec) -> None:
    groups: dict[tuple[str, int], list[int]] = {}
    for i, p in enumerate(poses):
        if keep[i] and p is not None:
            groups.setdefault((p[0], p[1].shape[1]), []).append(i)
    rng = np.random.default_rng(0)
    for (_, dims), members in groups.items():
        stack = np.stack([poses[i][1] for i in members])                 # (M, K, D)
        lo, hi = stack.min(axis=(0, 1)), stack.max(axis=(0, 1))
        span = np.where(hi - lo > 1e-12, hi - lo, np.inf)
        flat = ((stack - lo) / span).reshape(len(members), -1)
        size = flat.shape[1]
        direction = rng.normal(size=size)
        direction /= np.linalg.norm(direction)
        proj = flat @ direction
        radius = spec.threshold * np.sqrt(size)
        kept_proj: list[float] = []
        kept_idx: list[int] = []
        for m, i in enumerate(members):           # members are in view order
            lo_i = bisect.bisect_left(kept_proj, proj[m] - radius)
            hi_i = bisect.bisect_right(kept_proj, proj[m] + radius)
            match = None
            for c in range(lo_i, hi_i):
                other = kept_idx[c]
                dist = float(np.sqrt(np.mean((flat[m] - flat[other]) ** 2)))
                if dist <= spec.threshold and _video_close(videos, i, members[other], spec):
                    if match is None or other < match[0]:
                        match = (other, dist)
            if match is None:
                pos = bisect.bisect_left(kept_proj, proj[m])
                kept_proj.insert(pos, float(proj[m]))
                kept_idx.insert(pos, m)
            else:
                keep[i] = False
                dropped.append({"episode": keys[i], "duplicate_of": keys[members[match[0]]], "kind": "near",
                                "distance": round(match[1], 6)})


def _video_close(videos: list[Any], a: int, b: int, spec: DedupSpec) -> bool:
    if not spec.video:
        return True
    va, vb = videos[a], videos[b]
    if va is None or vb is None or len(va) != len(vb):
        return False
    return all(bin(x ^ y).count("1") <= spec.video_bits for x, y in zip(va, vb))
