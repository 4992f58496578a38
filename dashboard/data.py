"""Read-only access to output roots (catalog.json + LeRobot v3 shards) for the dashboard.

Only json and pyarrow touch disk: nothing is unpickled and torch is never imported. Every path that
comes from a request is resolved (symlinks included) and must stay inside its root."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from schemas.catalog import Catalog, ShardRecord


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


class Store:
    """All roots the dashboard was started with. Row ids are `<root>:<source_id>`."""

    def __init__(self, roots: list[Path]):
        self.roots = [Path(r).resolve() for r in roots]
        self._index: dict[int, RootIndex] = {}

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
        """The LeRobot copy of a shard (a shard may also exist as a Zarr store with the same id)."""
        idx = self.root(i)
        recs = [s for s in (idx.catalog.shards if idx.catalog else []) if s.shard_id == shard_id]
        rec = next((s for s in recs if s.format == "lerobot"), None)
        if rec is None:
            kind = "unsupported_format" if recs else "unknown_shard"
            raise ShardError(kind, f"shard {shard_id!r} has no LeRobot copy in the catalog", shard=shard_id)
        return rec

    def shard_dir(self, i: int, shard_id: str) -> Path:
        rec = self.shard_record(i, shard_id)
        try:
            return safe_path(self.roots[i], rec.path)
        except PermissionError:
            raise ShardError("bad_shard_path", f"shard {shard_id!r} points outside its root", shard=shard_id)

    def shard_info(self, i: int, shard_id: str) -> dict[str, Any]:
        idx = self.root(i)
        if shard_id not in idx.info_cache:
            d = self.shard_dir(i, shard_id)
            try:
                idx.info_cache[shard_id] = json.loads((d / "meta" / "info.json").read_text())
            except (OSError, ValueError) as e:
                raise ShardError("corrupt_shard", f"meta/info.json unreadable: {type(e).__name__}: {e}",
                                 shard=shard_id)
        return idx.info_cache[shard_id]

    def episode(self, row: Row) -> dict[str, Any]:
        """Frames (grouped by body part), video refs and metadata of one ingested episode."""
        if row.status != "ingested":
            return {"row": row.to_json(), "rejected": True}
        info = self.shard_info(row.root, row.shard)
        d = self.shard_dir(row.root, row.shard)
        fps = float(info.get("fps", 0) or 0)
        try:
            ep = _episode_row(d, row.episode_index)
            data = _read_frames(d, info, ep)
        except ShardError:
            raise
        except Exception as e:  # pyarrow raises many types on corrupt files
            raise ShardError("corrupt_shard", f"{type(e).__name__}: {e}", shard=row.shard)
        features = info.get("features", {})
        groups: dict[str, dict[str, Any]] = {}
        tokens: dict[str, Any] = {}
        for key, spec in features.items():
            if spec.get("dtype") in ("video", "image") or key not in data:
                continue
            col = data[key]
            if "token" in key:
                tokens[key] = col
                continue
            shape = spec.get("shape") or [1]
            if len(shape) != 1 or key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
                continue
            names = spec.get("names")
            if isinstance(names, dict):
                names = next(iter(names.values()), None)
            n = int(shape[0])
            if not isinstance(names, list) or len(names) != n:
                names = [f"{key}_{k}" for k in range(n)]
            parts: dict[str, dict[str, list]] = {}
            for k, name in enumerate(names):
                series = [(_finite(v[k]) if isinstance(v, list) else _finite(v)) for v in col]
                parts.setdefault(body_part(str(name)), {})[str(name)] = series
            groups[key] = _merge_singletons(parts)
        videos = []
        for key, spec in features.items():
            if spec.get("dtype") != "video":
                continue
            chunk, file = ep.get(f"videos/{key}/chunk_index"), ep.get(f"videos/{key}/file_index")
            if chunk is None or file is None:
                continue
            rel = info.get("video_path", "").format(video_key=key, chunk_index=chunk, file_index=file)
            shard_rel = str(Path(self.shard_record(row.root, row.shard).path) / rel)
            videos.append({"key": key, "url": f"/files/{row.root}/{shard_rel}",
                           "from_timestamp": ep.get(f"videos/{key}/from_timestamp", 0.0),
                           "to_timestamp": ep.get(f"videos/{key}/to_timestamp")})
        meta = {k: _finite(v) for k, v in ep.items()
                if not k.startswith(("stats/", "videos/", "data/", "meta/", "psi0/meta"))
                and not isinstance(v, (dict,))}
        psi0_meta: dict[str, Any] = {}
        if isinstance(ep.get("psi0/meta"), str):  # EpisodeMeta as canonical JSON (shards.writer)
            try:
                psi0_meta = json.loads(ep["psi0/meta"])
            except ValueError:
                psi0_meta = {"error": "psi0/meta is not valid JSON"}
        return {"row": row.to_json(), "fps": fps, "length": int(ep.get("length", 0)),
                "timestamp": data.get("timestamp", []), "groups": groups, "tokens": tokens,
                "videos": videos, "meta": meta, "quality": psi0_meta.get("quality", {}),
                "episode_meta": psi0_meta,
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
