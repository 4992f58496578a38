"""Views: versioned selections of episodes over output roots, as small JSON manifests (`psi0.view/1`).

A view names its inputs (output roots and other views, by location and sha256), the operation that
made it (verb, options, seed), the software version, its lineage (every operation back to the output
roots), the resulting episode list (per input root and shard, as index ranges) and stats merged from
the shards' mergeable sketches. No parquet or video is copied: `open_output(VIEW.json)` returns a
`ViewOutput`, which training, the dashboard, inspect and export read like an output root.

Loading a view re-hashes every output root it draws from (and every input view that made it): a root
whose catalog changed or vanished makes the view refuse to load, naming the input.

    view = load_view("views/egodex-10pct.json")         # verified
    out = open_output("views/egodex-10pct.json")         # a ViewOutput: shards, episodes, stats, ...
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from schemas.catalog import Catalog, ShardRecord
from schemas.durable import write_json_atomic
from schemas.episode import canonical_json
from schemas.names import CATALOG_FILE
from schemas import remote
from shards import formats, integrity
from shards.formats import ShardReader
from shards.frames import VideoCache
from shards.location import Location
from shards.reader import Output
from shards.views_reader import renamed
from shards.views_table import (Categorical, EpisodeTable, RootInfo, ShardRow, catalog_sha256, iter_shard_groups,
                                open_root, root_catalog)

VIEW_FORMAT = "psi0.view/1"
ROOT_PREFIX = "@"
"""A view's shard paths are `@<root>/<path in that root>`: one namespace over several output roots."""


class ViewError(ValueError):
    """A view that cannot be made or loaded: changed or vanished inputs, incompatible features, bad options."""


# ------------------------------------------------------------------------------------------ helpers
def file_sha256(where: Location) -> str:
    if where.name == CATALOG_FILE:
        return catalog_sha256(where)
    return hashlib.sha256(where.read_bytes()).hexdigest()


def encode_ranges(indices: Sequence[int] | np.ndarray) -> str:
    """Sorted episode indices as "0-31,40,42-50"."""
    idx = np.unique(np.asarray(indices, np.int64))
    if not len(idx):
        return ""
    cuts = np.flatnonzero(np.diff(idx) != 1) + 1
    parts = []
    for run in np.split(idx, cuts):
        a, b = int(run[0]), int(run[-1])
        parts.append(str(a) if a == b else f"{a}-{b}")
    return ",".join(parts)


def decode_ranges(text: str) -> np.ndarray:
    out: list[np.ndarray] = []
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        out.append(np.arange(int(a), int(b or a) + 1, dtype=np.int64))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def is_view_file(where: Location) -> bool:
    """A `.json` file other than a catalog: what `open_output` tries as a view (`load_view` checks its format)."""
    return where.name.endswith(".json") and where.name != CATALOG_FILE and where.is_file()


def _locate(entry: dict[str, Any], base: Location | None) -> Location:
    """Where a root/input lives now: its recorded URI, else its path relative to the view file."""
    loc = Location.of(entry["uri"])
    if loc.exists() or base is None or not entry.get("rel"):
        return loc
    moved = Location.of(posixpath.normpath(posixpath.join(base.uri, entry["rel"]))) if base.is_url \
        else Location.of(Path(base.uri) / entry["rel"])
    return moved if moved.exists() else loc


def _relative(target: Location, base: Location | None) -> str | None:
    if base is None or target.is_url != base.is_url:
        return None
    if target.is_url:
        return None
    try:
        return Path(posixpath.relpath(target.uri, base.uri)).as_posix()
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------ loading
@dataclass
class View:
    """A loaded, verified view: its manifest and the episode table it selects."""

    data: dict[str, Any]
    location: Location | None
    sha256: str
    table: EpisodeTable
    renames: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.location.name if self.location is not None else "(unsaved view)"

    def lineage(self) -> list[dict[str, Any]]:
        """Every operation from the output roots to this view, oldest first (this view's last)."""
        return list(self.data.get("lineage", [])) + [self.summary()]

    def summary(self) -> dict[str, Any]:
        return {"view": self.location.uri if self.location else None, "sha256": self.sha256,
                "operation": self.data.get("operation"), "inputs": self.data.get("inputs", []),
                "counts": {k: self.data.get("counts", {}).get(k) for k in ("episodes", "frames")},
                "steps": self.data.get("steps", [])}


def load_view(where: str | Path | Location, verify: bool = True) -> View:
    """Parse and verify a view (ViewError naming the input when one changed or vanished)."""
    loc = Location.of(where)
    if not loc.is_file():
        raise ViewError(f"view {loc} does not exist")
    raw = loc.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ViewError(f"{loc}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != VIEW_FORMAT:
        raise ViewError(f"{loc}: not a psi0 view (format={data.get('format') if isinstance(data, dict) else None!r})")
    try:
        return _load(loc, raw, data, verify)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:     # a hand-edited or foreign file
        raise ViewError(f"{loc}: malformed view ({type(exc).__name__}: {exc})") from None


def _load(loc: Location, raw: bytes, data: dict[str, Any], verify: bool) -> View:
    base = loc.parent
    if verify:
        for entry in data.get("inputs", []):
            if entry.get("kind") == "view":
                _check_input(entry, base, "input view")
    roots = []
    for entry in data.get("roots", []):
        where_now = _locate(entry, base)
        sha = _check_input(entry, base, "input root") if verify else entry["sha256"]
        roots.append((where_now, sha))
    table = select(roots, data.get("selection", []))
    renames = {i: dict(entry.get("renames") or {}) for i, entry in enumerate(data.get("roots", []))
               if entry.get("renames")}
    return View(data, loc, hashlib.sha256(raw).hexdigest(), table, renames)


def _check_input(entry: dict[str, Any], base: Location, what: str) -> str:
    where = _locate(entry, base)
    target = where if entry.get("kind") == "view" else where.join(CATALOG_FILE) if not where.name == CATALOG_FILE \
        else where
    if not target.is_file():
        raise ViewError(f"{what} {entry['uri']} vanished (no {target.name} there): the view cannot be loaded")
    actual = file_sha256(target)
    if actual != entry["sha256"]:
        raise ViewError(f"{what} {entry['uri']} changed since the view was made ({target.name} sha256 "
                        f"{actual[:12]}…, the view expects {entry['sha256'][:12]}…): remake the view")
    return actual


def select(roots: list[tuple[Location, str]], episodes: list[dict[str, Any]]) -> EpisodeTable:
    """The rows of the roots' tables that a selection lists, in view order."""
    from shards.views_table import concat

    tables = [open_root(loc, 0, sha) for loc, sha in roots]
    table = concat(tables) if tables else concat([])
    row_of = {(s.root, s.shard_id): i for i, s in enumerate(table.shards)}
    wanted = []
    for entry in episodes:
        key = (int(entry["root"]), str(entry["shard"]))
        if key not in row_of:
            raise ViewError(f"the view lists shard {key[1]!r} of root {key[0]}, which that root does not have")
        idx = decode_ranges(str(entry["episodes"]))
        wanted.append((np.int64(row_of[key]) << 32) | idx)
    keys = (table.shard.astype(np.int64) << 32) | table.episode.astype(np.int64)
    sel = np.concatenate(wanted) if wanted else np.zeros(0, np.int64)
    mask = np.isin(keys, sel)
    if int(mask.sum()) != len(np.unique(sel)):
        raise ViewError(f"the view lists {len(np.unique(sel))} episodes, its roots hold {int(mask.sum())} of them")
    return table.take(mask).sorted()


# ------------------------------------------------------------------------------------------ writing
def software() -> dict[str, Any]:
    """The psi0 version that made a view (package metadata; shards/ does not import the psi0 front door)."""
    from importlib import metadata

    try:
        version = metadata.version("psi0")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"psi0": version}


def write_view(data: dict[str, Any], where: str | Path | Location) -> str:
    """Write a manifest atomically (canonical JSON); returns its sha256."""
    loc = Location.of(where)
    text = canonical_json(data)
    if loc.is_url:
        remote.put_bytes(loc.uri, text.encode())
    else:
        loc.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(loc.path, None, text)
    return hashlib.sha256(text.encode()).hexdigest()


def selection_json(table: EpisodeTable) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """(episode list per root and shard, old root index -> compacted index) for a table in view order."""
    used = sorted({table.shards[s].root for s in np.unique(table.shard).tolist()}) if len(table) else []
    remap = {r: i for i, r in enumerate(used)}
    groups = dict(iter_shard_groups(table))
    out = []
    for s in sorted(groups, key=lambda s: (table.shards[s].root, table.shards[s].shard_id)):
        rows = groups[s]
        out.append({"root": remap[table.shards[s].root], "shard": table.shards[s].shard_id,
                    "episodes": encode_ranges(table.episode[rows]), "count": int(len(rows)),
                    "frames": int(table.frames[rows].sum())})
    return out, remap


# ------------------------------------------------------------------------------------------ reading
class ViewOutput(Output):
    """An output root's reading API over a view: only the view's episodes, its stats, its renames.

    Shard ids stay those of the roots (suffixed `@<root>` when two roots share one); record paths are
    `@<root>/<path>`; `selection(record)` says which episodes of a shard the view holds."""

    is_view = True

    def __init__(self, view: View):
        self.view = view
        self.root = view.location if view.location is not None else Location.of(".")
        self.synthesized = False
        self._tokenizer_dir = None
        self._tokenizer = None
        table = view.table
        self._roots = [_locate(entry, self.root.parent) for entry in view.data.get("roots", [])]
        ids = [s.shard_id for s in table.shards]
        self._shard_name = [sid if ids.count(sid) == 1 else f"{sid}{ROOT_PREFIX}{s.root}"
                            for sid, s in zip(ids, table.shards)]
        self._rows: dict[int, np.ndarray] = dict(iter_shard_groups(table))

    def __repr__(self) -> str:
        return f"ViewOutput({self.root.uri!r}, {len(self.view.table)} episodes)"

    # ---- locations ------------------------------------------------------------------------------
    def child(self, rel: str) -> Location:
        head, sep, rest = rel.partition("/")
        if not sep or not head.startswith(ROOT_PREFIX) or not head[1:].isdigit():
            raise PermissionError("path outside root")
        k = int(head[1:])
        if not 0 <= k < len(self._roots):
            raise PermissionError("path outside root")
        return self._roots[k].child(rest)

    def location(self, record: ShardRecord) -> Location:
        return self.child(record.path)

    def root_of(self, record: ShardRecord) -> int:
        return int(record.path.split("/", 1)[0][1:])

    # ---- catalog --------------------------------------------------------------------------------
    @cached_property
    def catalog(self) -> Catalog:  # type: ignore[override]
        table = self.view.table
        keys = table.keys()
        shards: list[ShardRecord] = []
        inputs: dict[str, dict[str, Any]] = {}
        tasks = table.task.strings()
        for srow, rows in self._rows.items():
            row = table.shards[srow]
            name = self._shard_name[srow]
            sel_keys = tuple(keys[i] for i in rows.tolist())
            for fmt, rec in sorted(row.records.items()):
                shards.append(ShardRecord(name, fmt, f"{ROOT_PREFIX}{row.root}/{rec.path}", rec.source, len(rows),
                                          int(table.frames[rows].sum()), sel_keys, rec.content_hash))
            for i in rows.tolist():
                inputs[keys[i]] = {"status": "ingested", "shard": name, "episode_index": int(table.episode[i]),
                                   "frames": int(table.frames[i]), "task": tasks[i]}
        tok = self.view.data.get("tokenizer")
        tokenizer = None
        if tok:
            tokenizer = {"path": f"{ROOT_PREFIX}{tok['root']}/{tok.get('path') or 'tokenizer'}",
                         "config": tok.get("config") or {}}
        return Catalog(shards=shards, inputs=inputs, stats=dict(self.view.data.get("stats") or {}),
                       tokenizer=tokenizer, config={"fps": self.view.data.get("fps"), "view": True})

    def _row_of(self, record: ShardRecord) -> int:
        if not hasattr(self, "_by_name"):
            self._by_name = {self._shard_name[srow]: srow for srow in self._rows}
        try:
            return self._by_name[record.shard_id]
        except KeyError:
            raise KeyError(f"no shard {record.shard_id!r} in this view") from None

    def selection(self, record: ShardRecord) -> tuple[int, ...] | None:
        """Episode indices of the shard that the view holds; None when it holds the whole shard."""
        srow = self._row_of(record)
        row = self.view.table.shards[srow]
        eps = self.view.table.episode[self._rows[srow]]
        whole = row.record.episodes
        if len(eps) == whole:
            return None
        return tuple(int(e) for e in np.sort(eps))

    def renames(self, record: ShardRecord) -> dict[str, str]:
        return dict(self.view.renames.get(self.root_of(record), {}))

    def open_shard(self, shard: str | ShardRecord, fmt: str | None = None,
                   videos: VideoCache | None = None) -> ShardReader:
        record = shard if isinstance(shard, ShardRecord) else self.record(shard, fmt)
        where = self.location(record)
        verified = integrity.verify_shard(where, expected=record.content_hash)  # the catalog agrees with shard.json
        with integrity.skipped():       # just verified: the reader's own check would parse shard.json again
            reader = formats.get(record.format).open(where, videos=videos)
        reader.verified = verified
        return renamed(reader, self.renames(record))

    def source_stats(self) -> dict[str, dict[str, Any]]:
        """Per source: LeRobot-style stats over exactly the view's frames of that source."""
        return dict(self.view.data.get("stats_by_source") or {})

    def lineage(self) -> list[dict[str, Any]]:
        return self.view.lineage()


def open_view(where: str | Path | Location) -> ViewOutput:
    return ViewOutput(load_view(where))


def root_infos(table: EpisodeTable) -> list[RootInfo]:
    return table.roots


__all__ = ["Categorical", "ROOT_PREFIX", "ShardRow", "VIEW_FORMAT", "View", "ViewError", "ViewOutput",
           "decode_ranges", "encode_ranges", "file_sha256", "is_view_file", "load_view", "open_view", "root_catalog",
           "select", "selection_json", "software", "write_view"]
