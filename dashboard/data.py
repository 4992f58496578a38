"""Read-only access to output roots for the dashboard, through `shards.reader` (any registered shard
format, local roots or `s3://...` URLs; a bare shard folder opens as a one-shard root).

Only json, pyarrow and zarr touch storage: nothing is unpickled and torch is never imported. Every path
that comes from a catalog or a request is resolved (symlinks included) and must stay inside its root, and
a shard with a symlink that leads out of its root (e.g. `meta/info.json -> ~/.ssh/...`) is not opened.
Catalog records are type-checked when read (`shards.records`); a malformed one is an error panel."""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dashboard.overlay import hand_overlay
from schemas.catalog import Catalog, ShardRecord
from schemas.names import ACTION_TOKENS as TOKENS
from schemas.names import ACTION_TOKENS_LEN as TOKENS_LEN
from schemas.names import CATALOG_FILE
from shards.formats import EpisodeInfo, ShardReader
from shards.location import Location
from shards.reader import Output, open_output, preferred_record

RESIDUAL_PREFIX = "retarget."
BOOKKEEPING = ("timestamp", "timestamp.source", "frame_index", "episode_index", "index", "task_index")
EPISODE_CACHE = 8          # decoded episodes kept for the token endpoint and repeated page loads
READER_CACHE = 64          # open shard readers (headers parsed once)
REMOTE_RECHECK_S = 2.0     # an object-store catalog is re-checked (one HEAD) at most this often


class ShardError(Exception):
    """A shard (or catalog) that cannot be read; shown as an error panel, never a crash."""

    def __init__(self, kind: str, message: str, **details: Any):
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, details

    def to_json(self) -> dict[str, Any]:
        return {"error": {"kind": self.kind, "message": self.message, **self.details}}


def safe_path(root: Path | str, rel: str) -> Path | str:
    """`rel` inside `root`, after resolving `..` and symlinks; raises PermissionError otherwise."""
    return Location.of(root).child(rel).local()


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
    """Parsed catalog of one output root, cached by catalog version (mtime / ETag)."""

    path: Path | str
    mtime: Any
    catalog: Catalog | None
    rows: list[Row]
    error: dict[str, Any] | None = None
    info_cache: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, dict[str, float]] | None = None     # source_id -> EpisodeMeta.quality (lazy)
    quality_errors: list[dict[str, Any]] = field(default_factory=list)
    histograms: dict[str, Any] = field(default_factory=dict)
    tokenizer: Any = None
    output: Output | None = None
    checked: float = 0.0


class Store:
    """All roots the dashboard was started with. Row ids are `<root>:<source_id>`."""

    def __init__(self, roots: list[Path | str]):
        self.locations = [Location.of(r) for r in roots]
        self.roots = [loc.local() for loc in self.locations]       # Path locally, URL string on a store
        self._index: dict[int, RootIndex] = {}
        self._episodes: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._readers: OrderedDict[tuple, ShardReader] = OrderedDict()
        self._lock = threading.Lock()

    # ---- catalog --------------------------------------------------------------------------------
    def root(self, i: int) -> RootIndex:
        if not 0 <= i < len(self.roots):
            raise KeyError(f"no root {i}")
        loc = self.locations[i]
        cached = self._index.get(i)
        if cached is not None and loc.is_url and time.monotonic() - cached.checked < REMOTE_RECHECK_S:
            return cached
        try:
            mtime = loc.join(CATALOG_FILE).version()
        except OSError:
            mtime = None
        if cached is not None and cached.mtime == mtime:
            cached.checked = time.monotonic()
            return cached
        try:
            output = open_output(loc)
            catalog = output.catalog
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
            idx = RootIndex(self.roots[i], mtime, catalog, rows, output=output)
        except Exception as e:  # any malformed catalog becomes an error panel
            idx = RootIndex(self.roots[i], mtime, None, [], {"kind": "bad_catalog", "root": str(self.roots[i]),
                                                             "message": f"{type(e).__name__}: {e}"})
        idx.checked = time.monotonic()
        self._index[i] = idx
        return idx

    def all_rows(self) -> list[Row]:
        return [r for i in range(len(self.roots)) for r in self.root(i).rows]

    # ---- shards ---------------------------------------------------------------------------------
    def shard_record(self, i: int, shard_id: str) -> ShardRecord:
        """The copy of a shard the dashboard reads: the first registered format that has one
        (LeRobot before Zarr)."""
        idx = self.root(i)
        try:
            return preferred_record(idx.catalog.shards if idx.catalog else [], shard_id)
        except KeyError:
            raise ShardError("unknown_shard", f"shard {shard_id!r} is not in the catalog", shard=shard_id)
        except LookupError:
            raise ShardError("unsupported_format", f"shard {shard_id!r} has no copy in a registered format",
                             shard=shard_id)

    def shard_location(self, i: int, shard_id: str) -> Location:
        rec = self.shard_record(i, shard_id)
        try:
            return self.locations[i].child(rec.path)
        except PermissionError:
            raise ShardError("bad_shard_path", f"shard {shard_id!r} points outside its root", shard=shard_id)

    def reader(self, i: int, shard_id: str) -> ShardReader:
        """The shard's reader (cached while the catalog is unchanged); unreadable -> ShardError."""
        idx = self.root(i)
        rec = self.shard_record(i, shard_id)
        key = (i, idx.mtime, rec.shard_id, rec.format)
        with self._lock:
            found = self._readers.get(key)
            if found is not None:
                self._readers.move_to_end(key)
                return found
        where = self.shard_location(i, shard_id)
        try:
            leaving = where.links_leaving(self.locations[i])
        except OSError as e:
            raise ShardError("bad_shard_path", f"shard {shard_id!r} cannot be listed: {type(e).__name__}",
                             shard=shard_id)
        if leaving:
            raise ShardError("bad_shard_path", f"shard {shard_id!r} holds symlinks that lead outside its root "
                                               f"(not followed): {', '.join(leaving[:3])}", shard=shard_id)
        try:
            assert idx.output is not None
            reader = idx.output.open_shard(rec)
        except Exception as e:  # OSError, ValueError, zarr's own errors: all become an error panel
            raise ShardError("corrupt_shard", f"{rec.format} shard {where.name} unreadable: {type(e).__name__}: {e}",
                             shard=shard_id)
        with self._lock:
            self._readers[key] = reader
            while len(self._readers) > READER_CACHE:
                self._readers.popitem(last=False)[1].close()
        return reader

    def shard_info(self, i: int, shard_id: str) -> dict[str, Any]:
        """fps and features (LeRobot-style dtype/shape/names) of a shard, whatever its format."""
        idx = self.root(i)
        if shard_id not in idx.info_cache:
            reader = self.reader(i, shard_id)
            try:
                info = reader.info()
            except Exception as e:  # noqa: BLE001 - unreadable header: an error panel
                raise ShardError("corrupt_shard", f"{reader.format} shard header unreadable: {type(e).__name__}: {e}",
                                 shard=shard_id)
            idx.info_cache[shard_id] = {"fps": info.fps, "features": info.features, "format": reader.format}
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
                    for ep in self.reader(i, rec.shard_id).episodes():
                        q = ep.meta.get("quality")
                        if isinstance(q, dict):
                            out[ep.source_id] = {k: float(v) for k, v in q.items()
                                                 if isinstance(v, (int, float)) and math.isfinite(v)}
                except Exception as e:  # noqa: BLE001 - a broken shard must not break filtering
                    idx.quality_errors.append({"shard": rec.shard_id, "message": f"{type(e).__name__}: {e}"})
            idx.quality = out
        return idx.quality

    # ---- episodes -------------------------------------------------------------------------------
    def load_episode(self, row: Row) -> dict[str, Any]:
        """Raw columns + video refs + metadata of one ingested episode (any format), LRU cached."""
        rec = self.shard_record(row.root, row.shard)
        key = (row.id, rec.format, self.root(row.root).mtime)
        with self._lock:
            if key in self._episodes:
                self._episodes.move_to_end(key)
                return self._episodes[key]
        reader = self.reader(row.root, row.shard)
        info = self.shard_info(row.root, row.shard)
        try:
            ep = reader.episode(row.episode_index)
        except KeyError:
            raise ShardError("missing_episode", f"episode {row.episode_index} not in shard", shard=row.shard)
        except Exception as e:  # noqa: BLE001 - unreadable episode records: an error panel
            raise ShardError("corrupt_shard", f"{type(e).__name__}: {e}", shard=row.shard)
        try:
            raw = self._read_episode(row, rec, reader, info, ep)
        except ShardError:
            raise
        except Exception as e:  # pyarrow / zarr raise many types on corrupt files
            raise ShardError("corrupt_shard", f"{type(e).__name__}: {e}", shard=row.shard)
        with self._lock:
            self._episodes[key] = raw
            while len(self._episodes) > EPISODE_CACHE:
                self._episodes.popitem(last=False)
        return raw

    def _read_episode(self, row: Row, rec: ShardRecord, reader: ShardReader, info: dict[str, Any],
                      ep: EpisodeInfo) -> dict[str, Any]:
        data = {k: v.tolist() for k, v in reader.columns(None, episode=row.episode_index).items()}
        fps = float(info.get("fps") or 0)
        length = ep.length
        if "timestamp" not in data:
            data["timestamp"] = [k / fps if fps else float(k) for k in range(length)]
        data["timestamp"] = [_scalar(v) for v in data["timestamp"]]
        shard_at = self.shard_location(row.root, row.shard)
        videos = []
        for cam in reader.info().cameras:
            span = reader.video_file(cam.key, ep.index)
            if span is not None:      # an encoded file in the shard: served as is, with HTTP Range
                rel = PurePosixPath(rec.path) / span.location.relative_to(shard_at)
                videos.append({"key": cam.key, "from_timestamp": span.start, "to_timestamp": span.end,
                               "width": cam.width, "height": cam.height, "url": f"/files/{row.root}/{rel}"})
            else:                     # frames only (e.g. Zarr): an MP4 is made on first request
                videos.append({"key": cam.key, "from_timestamp": 0.0, "to_timestamp": length / fps if fps else None,
                               "width": cam.width, "height": cam.height,
                               "url": f"/zarrvideo/{row.root}/{rec.shard_id}/{ep.index}/{cam.key}.mp4"})
        meta = {k: _finite(v) for k, v in ep.record.items()}
        return {"fps": fps, "length": length, "features": info.get("features", {}), "data": data, "videos": videos,
                "meta": meta, "psi0_meta": ep.meta, "format": rec.format}

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


def _scalar(v: Any) -> Any:
    return v[0] if isinstance(v, list) else v
