"""Read-only access to output roots (catalog.json + LeRobot v3 shards or Zarr v3 stores) for the dashboard.

Only json, pyarrow and zarr touch disk: nothing is unpickled and torch is never imported. Every path that
comes from a request is resolved (symlinks included) and must stay inside its root."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import threading
from collections import OrderedDict

import pyarrow.parquet as pq

from dashboard import zarr_shard
from dashboard.overlay import hand_overlay
from schemas.catalog import Catalog, ShardRecord
from schemas.names import ACTION_TOKENS as TOKENS
from schemas.names import ACTION_TOKENS_LEN as TOKENS_LEN

RESIDUAL_PREFIX = "retarget."
BOOKKEEPING = ("timestamp", "timestamp.source", "frame_index", "episode_index", "index", "task_index")
EPISODE_CACHE = 8          # decoded episodes kept for the token endpoint and repeated page loads


class ShardError(Exception):
    """A shard (or catalog) that cannot be read; shown as an error panel, never a crash."""

    def __init__(self, kind: str, message: str, **details: Any):
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, details

    def to_json(self) -> dict[str, Any]:
        return {"error": {"kind": self.kind, "message": self.message, **self.details}}


def safe_path(root: Path, rel: str) -> Path:
    """`rel` inside `root`, after resolving `..` and symlinks; raises PermissionError otherwise."""
    if not rel or "\x00" in rel or os.path.isabs(rel):
        raise PermissionError("path outside root")
    base = root.resolve()
    target = (base / rel).resolve()
    if not target.is_relative_to(base):
        raise PermissionError("path outside root")
    return target


def body_part(name: str) -> str:
    """Group key of a dimension name: everything before its last `_`/`.` segment ("all" if none)."""
    for sep in (".", "_"):
        if sep in name:
            return name.rsplit(sep, 1)[0]
    return "all"


def unit_of(name: str) -> str:
    """Residual group key: the unit suffix after the last `.` (`left_arm.position_m` -> `position_m`)."""
    return name.rsplit(".", 1)[-1] if "." in name else "all"


def _merge_singletons(parts: dict[str, dict[str, list]]) -> dict[str, dict[str, list]]:
    """Fold one-dimension groups into "other" so e.g. `left_knee` is not a plot of its own."""
    single = [k for k, v in parts.items() if len(v) == 1]
    if len(single) < 2 or len(single) == len(parts) == 1:
        return parts
    out = {k: v for k, v in parts.items() if k not in single}
    other = {n: s for k in single for n, s in parts[k].items()}
    if out:
        out["other"] = other
    else:
        out = {"all": other}
    return out


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


@dataclass
class Row:
    """One input of one root, flattened for fast filtering."""

    id: str
    root: int
    source_id: str
    source: str
    status: str
    shard: str
    episode_index: int
    frames: int
    task: str
    stage: str
    reason: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class RootIndex:
    """Parsed catalog of one output root, cached by catalog mtime."""

    path: Path
    mtime: float
    catalog: Catalog | None
    rows: list[Row]
    error: dict[str, Any] | None = None
    info_cache: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, dict[str, float]] | None = None     # source_id -> EpisodeMeta.quality (lazy)
    quality_errors: list[dict[str, Any]] = field(default_factory=list)
    histograms: dict[str, Any] = field(default_factory=dict)
    tokenizer: Any = None


class Store:
    """All roots the dashboard was started with. Row ids are `<root>:<source_id>`."""

    def __init__(self, roots: list[Path]):
        self.roots = [Path(r).resolve() for r in roots]
        self._index: dict[int, RootIndex] = {}
        self._episodes: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    # ---- catalog --------------------------------------------------------------------------------
    def root(self, i: int) -> RootIndex:
        if not 0 <= i < len(self.roots):
            raise KeyError(f"no root {i}")
        path = self.roots[i]
        cat = path / "catalog.json"
        try:
            mtime = cat.stat().st_mtime
        except OSError:
            mtime = -1.0
        cached = self._index.get(i)
        if cached is not None and cached.mtime == mtime:
            return cached
        try:
            catalog = Catalog.from_json(json.loads(cat.read_text()))
            shard_source = {s.shard_id: s.source for s in catalog.shards}
            rows = []
            for sid, fate in catalog.inputs.items():
                ing = fate.get("status") == "ingested"
                shard = str(fate.get("shard", "")) if ing else ""
                rows.append(Row(
                    id=f"{i}:{sid}", root=i, source_id=sid,
                    source=shard_source.get(shard) or sid.split("/", 1)[0],
                    status="ingested" if ing else "rejected", shard=shard,
                    episode_index=int(fate.get("episode_index", -1)) if ing else -1,
                    frames=int(fate.get("frames", 0)) if ing else 0, task=str(fate.get("task", "")),
                    stage=str(fate.get("stage", "")), reason=str(fate.get("reason", "")),
                    message=str(fate.get("message", ""))))
            idx = RootIndex(path, mtime, catalog, rows)
        except Exception as e:  # any malformed catalog becomes an error panel
            idx = RootIndex(path, mtime, None, [], {"kind": "bad_catalog", "root": str(path),
                                                   "message": f"{type(e).__name__}: {e}"})
        self._index[i] = idx
        return idx

    def all_rows(self) -> list[Row]:
        return [r for i in range(len(self.roots)) for r in self.root(i).rows]

    # ---- shards ---------------------------------------------------------------------------------
    def shard_record(self, i: int, shard_id: str) -> ShardRecord:
        """The copy of a shard the dashboard reads: LeRobot if there is one, else the Zarr store."""
        idx = self.root(i)
        recs = [s for s in (idx.catalog.shards if idx.catalog else []) if s.shard_id == shard_id]
        readable = [s for s in recs if s.format in ("lerobot", "zarr")]
        rec = min(readable, key=lambda s: s.format != "lerobot", default=None)
        if rec is None:
            kind = "unsupported_format" if recs else "unknown_shard"
            raise ShardError(kind, f"shard {shard_id!r} has no LeRobot or Zarr copy in the catalog", shard=shard_id)
        return rec

    def shard_dir(self, i: int, shard_id: str) -> Path:
        rec = self.shard_record(i, shard_id)
        try:
            return safe_path(self.roots[i], rec.path)
        except PermissionError:
            raise ShardError("bad_shard_path", f"shard {shard_id!r} points outside its root", shard=shard_id)

    def shard_info(self, i: int, shard_id: str) -> dict[str, Any]:
        """LeRobot `meta/info.json`, or the same keys (fps, features) from a Zarr store's attributes."""
        idx = self.root(i)
        if shard_id not in idx.info_cache:
            d = self.shard_dir(i, shard_id)
            try:
                if self.shard_record(i, shard_id).format == "zarr":
                    idx.info_cache[shard_id] = {**zarr_shard.info(zarr_shard.open_store(d)), "format": "zarr"}
                else:
                    idx.info_cache[shard_id] = json.loads((d / "meta" / "info.json").read_text())
            except Exception as e:  # OSError, ValueError, zarr's own errors: all become an error panel
                what = "zarr store" if d.suffix == ".zarr" else "meta/info.json"
                raise ShardError("corrupt_shard", f"{what} unreadable: {type(e).__name__}: {e}", shard=shard_id)
        return idx.info_cache[shard_id]

    # ---- quality scores -------------------------------------------------------------------------
    def qualities(self, i: int) -> dict[str, dict[str, float]]:
        """source_id -> numeric EpisodeMeta.quality for every ingested episode of root i (read once per
        catalog version from the shards' episode metadata; unreadable shards are listed in
        `quality_errors`, their episodes simply have no scores)."""
        idx = self.root(i)
        if idx.quality is None:
            out: dict[str, dict[str, float]] = {}
            seen: set[str] = set()
            for rec in (idx.catalog.shards if idx.catalog else []):
                if rec.shard_id in seen:
                    continue
                seen.add(rec.shard_id)
                try:
                    rec = self.shard_record(i, rec.shard_id)
                    for sid, meta in self._episode_metas(i, rec):
                        q = meta.get("quality") if isinstance(meta, dict) else None
                        if isinstance(q, dict):
                            out[sid] = {k: float(v) for k, v in q.items()
                                        if isinstance(v, (int, float)) and math.isfinite(v)}
                except Exception as e:  # noqa: BLE001 - a broken shard must not break filtering
                    idx.quality_errors.append({"shard": rec.shard_id, "message": f"{type(e).__name__}: {e}"})
            idx.quality = out
        return idx.quality

    def _episode_metas(self, i: int, rec: ShardRecord) -> list[tuple[str, dict[str, Any]]]:
        d = self.shard_dir(i, rec.shard_id)
        if rec.format == "zarr":
            eps = self.shard_info(i, rec.shard_id).get("episodes", [])
            return [(e.get("source_id", ""), e.get("meta") or {}) for e in eps]
        out = []
        for f in sorted((d / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
            names = pq.read_schema(f).names
            if "psi0/meta" not in names or "psi0/source_id" not in names:
                continue
            t = pq.read_table(f, columns=["psi0/source_id", "psi0/meta"])
            for sid, meta in zip(t.column(0).to_pylist(), t.column(1).to_pylist()):
                try:
                    out.append((sid, json.loads(meta)))
                except (TypeError, ValueError):
                    continue
        return out

    # ---- episodes -------------------------------------------------------------------------------
    def load_episode(self, row: Row) -> dict[str, Any]:
        """Raw columns + video refs + metadata of one ingested episode (LeRobot or Zarr), LRU cached."""
        rec = self.shard_record(row.root, row.shard)
        d = self.shard_dir(row.root, row.shard)
        key = (row.id, rec.format, str(d), _mtime(d))
        with self._lock:
            if key in self._episodes:
                self._episodes.move_to_end(key)
                return self._episodes[key]
        info = self.shard_info(row.root, row.shard)
        try:
            raw = _load_zarr(d, info, row) if rec.format == "zarr" else _load_lerobot(d, info, row)
        except ShardError:
            raise
        except Exception as e:  # pyarrow / zarr raise many types on corrupt files
            raise ShardError("corrupt_shard", f"{type(e).__name__}: {e}", shard=row.shard)
        raw["format"] = rec.format
        for v in raw["videos"]:
            if rec.format == "zarr":
                v["url"] = f"/zarrvideo/{row.root}/{rec.shard_id}/{row.episode_index}/{v['key']}.mp4"
            else:
                v["url"] = f"/files/{row.root}/{Path(rec.path) / v.pop('rel')}"
        with self._lock:
            self._episodes[key] = raw
            while len(self._episodes) > EPISODE_CACHE:
                self._episodes.popitem(last=False)
        return raw

    def episode(self, row: Row) -> dict[str, Any]:
        """Frames (grouped by body part), residuals, hand overlay, video refs and metadata of one episode."""
        if row.status != "ingested":
            return {"row": row.to_json(), "rejected": True}
        raw = self.load_episode(row)
        data, features, psi0_meta = raw["data"], raw["features"], raw["psi0_meta"]
        groups: dict[str, dict[str, Any]] = {}
        residuals: dict[str, dict[str, Any]] = {}
        for key, spec in features.items():
            if spec.get("dtype") in ("video", "image") or key not in data or "token" in key:
                continue
            shape = spec.get("shape") or [1]
            if len(shape) != 1 or key in BOOKKEEPING:
                continue
            names = spec.get("names")
            if isinstance(names, dict):
                names = next(iter(names.values()), None)
            n = int(shape[0])
            if not isinstance(names, list) or len(names) != n:
                names = [f"{key}_{k}" for k in range(n)]
            col = data[key]
            residual = key.startswith(RESIDUAL_PREFIX)
            parts: dict[str, dict[str, list]] = {}
            for k, name in enumerate(names):
                series = [(_finite(v[k]) if isinstance(v, list) else _finite(v)) for v in col]
                group = unit_of(str(name)) if residual else body_part(str(name))
                parts.setdefault(group, {})[str(name)] = series
            (residuals if residual else groups)[key] = parts if residual else _merge_singletons(parts)
        quality = psi0_meta.get("quality", {}) if isinstance(psi0_meta.get("quality"), dict) else {}
        extra = psi0_meta.get("extra", {}) if isinstance(psi0_meta.get("extra"), dict) else {}
        first = raw["videos"][0] if raw["videos"] else None
        overlay = hand_overlay(data, extra, (first["width"], first["height"])) if first else None
        tokens = None
        if TOKENS in data and TOKENS_LEN in data:
            tokens = {"column": TOKENS, "lengths": [int(_scalar(v)) for v in data[TOKENS_LEN]],
                      "tokenizer": bool(self.root(row.root).catalog.tokenizer)}
        return {"row": row.to_json(), "format": raw["format"], "fps": raw["fps"], "length": raw["length"],
                "timestamp": data.get("timestamp", []), "groups": groups, "residuals": residuals,
                "tokens": tokens, "videos": raw["videos"], "meta": raw["meta"], "quality": quality,
                "hand_qa": {k: v for k, v in quality.items() if k.startswith("hand_qa.")},
                "overlay": overlay, "episode_meta": psi0_meta,
                "input": self.root(row.root).catalog.inputs.get(row.source_id, {})}

def _episode_row(shard: Path, episode_index: int) -> dict[str, Any]:
    files = sorted((shard / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise ShardError("corrupt_shard", "no meta/episodes parquet files", shard=shard.name)
    for f in files:
        t = pq.read_table(f)
        if "episode_index" not in t.column_names:
            raise ShardError("corrupt_shard", f"{f.name} has no episode_index", shard=shard.name)
        idx = t.column("episode_index").to_pylist()
        if episode_index in idx:
            keep = [c for c in t.column_names if not c.startswith("stats/")]
            return t.select(keep).slice(idx.index(episode_index), 1).to_pylist()[0]
    raise ShardError("missing_episode", f"episode {episode_index} not in shard", shard=shard.name)


def _read_frames(shard: Path, info: dict[str, Any], ep: dict[str, Any]) -> dict[str, list]:
    rel = info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
    path = safe_path(shard, rel)
    t = pq.read_table(path, filters=[("episode_index", "=", int(ep["episode_index"]))])
    return {c: t.column(c).to_pylist() for c in t.column_names}


def _scalar(v: Any) -> Any:
    return v[0] if isinstance(v, list) else v


def _mtime(p: Path) -> float:
    try:
        return (p / "zarr.json").stat().st_mtime if p.suffix == ".zarr" else (p / "meta" / "info.json").stat().st_mtime
    except OSError:
        return -1.0


def _psi0_meta(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):  # EpisodeMeta as canonical JSON (shards.writer)
        try:
            return json.loads(value)
        except ValueError:
            return {"error": "psi0/meta is not valid JSON"}
    return {}


def _load_lerobot(d: Path, info: dict[str, Any], row: Row) -> dict[str, Any]:
    ep = _episode_row(d, row.episode_index)
    data = _read_frames(d, info, ep)
    features = info.get("features", {})
    videos = []
    for key, spec in features.items():
        if spec.get("dtype") != "video":
            continue
        chunk, file = ep.get(f"videos/{key}/chunk_index"), ep.get(f"videos/{key}/file_index")
        if chunk is None or file is None:
            continue
        shape = spec.get("shape") or [0, 0, 3]
        names = spec.get("names") or []
        h, w = (shape[0], shape[1]) if list(names[:2]) != ["width", "height"] else (shape[1], shape[0])
        videos.append({"key": key, "rel": info.get("video_path", "").format(video_key=key, chunk_index=chunk,
                                                                           file_index=file),
                       "from_timestamp": ep.get(f"videos/{key}/from_timestamp", 0.0),
                       "to_timestamp": ep.get(f"videos/{key}/to_timestamp"), "width": int(w), "height": int(h)})
    meta = {k: _finite(v) for k, v in ep.items()
            if not k.startswith(("stats/", "videos/", "data/", "meta/", "psi0/meta")) and not isinstance(v, dict)}
    return {"fps": float(info.get("fps", 0) or 0), "length": int(ep.get("length", 0)), "features": features,
            "data": data, "videos": videos, "meta": meta, "psi0_meta": _psi0_meta(ep.get("psi0/meta"))}


def _load_zarr(d: Path, info: dict[str, Any], row: Row) -> dict[str, Any]:
    group = zarr_shard.open_store(d)
    eps = info.get("episodes", [])
    if not 0 <= row.episode_index < len(eps):
        raise ShardError("missing_episode", f"episode {row.episode_index} not in store", shard=row.shard)
    ep = eps[row.episode_index]
    data = zarr_shard.read_columns(group, row.episode_index)
    fps = float(info.get("fps") or 0)
    length = int(ep.get("length") or len(data.get("frame_index", [])))
    if "timestamp" not in data:
        data["timestamp"] = [k / fps if fps else float(k) for k in range(length)]
    data["timestamp"] = [_scalar(v) for v in data["timestamp"]]
    videos = []
    for key in zarr_shard.image_keys(group):
        h, w = group["data"][key].shape[1:3]
        videos.append({"key": key, "from_timestamp": 0.0, "to_timestamp": length / fps if fps else None,
                       "width": int(w), "height": int(h)})
    meta = {"episode_index": row.episode_index, "length": length, "tasks": [ep.get("task", "")],
            "embodiment": ep.get("embodiment", ""), "source_id": ep.get("source_id", "")}
    return {"fps": fps, "length": length, "features": info.get("features", {}), "data": data,
            "videos": videos, "meta": meta, "psi0_meta": _psi0_meta(ep.get("meta"))}
