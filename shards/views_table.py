"""The episodes of one or more output roots as columns: what every `psi0 dataset` verb works on.

One row per ingested episode, in *view order* (roots in the order given, then shard id, then episode
index). Columns are numpy arrays (strings dictionary-encoded as `Categorical`, source ids as one Arrow
string array), so a filter over a million episodes is a few vector operations and the table of a
1 M-episode root takes ~100 MB, not the ~1 GB a catalog parsed into dicts would.

Two layers, both cached per catalog content hash (`PSI0_CACHE_DIR`, default ~/.cache/psi0/views):
- *base* columns come from `catalog.json` alone, read streamed (`shards.views_json`): root, shard,
  episode index, frames, source id, task;
- *meta* columns (embodiment, task category, fps, every numeric quality score) come from the shards'
  own episode records and are loaded only when a verb needs them (`EpisodeTable.load_meta`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.catalog import CATALOG_FORMAT, ShardRecord
from schemas.names import CATALOG_FILE
from shards import formats
from shards.location import Location
from shards.views_json import iter_members

CACHE_VERSION = "2"
QUALITY_PREFIX = "quality."


def cache_dir() -> Path | None:
    """Where episode tables are cached (None: `PSI0_CACHE_DIR=off`)."""
    env = os.environ.get("PSI0_CACHE_DIR")
    if env == "off":
        return None
    return Path(env) if env else Path.home() / ".cache" / "psi0" / "views"


@dataclass
class Categorical:
    """A string column as int32 codes into `values` (-1: missing)."""

    codes: np.ndarray
    values: list[str]

    @classmethod
    def encode(cls, strings: Sequence[str]) -> "Categorical":
        index: dict[str, int] = {}
        codes = np.fromiter((index.setdefault(s, len(index)) for s in strings), np.int32, len(strings))
        return cls(codes, list(index))

    @classmethod
    def concat(cls, parts: Sequence["Categorical"]) -> "Categorical":
        values: list[str] = []
        index: dict[str, int] = {}
        out = []
        for part in parts:
            remap = np.asarray([index.setdefault(v, len(index)) for v in part.values] + [-1], np.int32)
            out.append(remap[part.codes])          # code -1 picks the trailing -1
        values = list(index)
        return cls(np.concatenate(out) if out else np.zeros(0, np.int32), values)

    def take(self, rows: np.ndarray) -> "Categorical":
        return Categorical(self.codes[rows], self.values)

    def where(self, predicate: Any) -> np.ndarray:
        """Rows whose string satisfies `predicate(str) -> bool` (evaluated once per distinct value)."""
        hit = np.asarray([bool(predicate(v)) for v in self.values] + [False], bool)
        return hit[self.codes]

    def strings(self) -> list[str]:
        vals = self.values + [""]
        return [vals[c] for c in self.codes.tolist()]

    def counts(self) -> dict[str, int]:
        n = np.bincount(self.codes[self.codes >= 0], minlength=len(self.values))
        return {v: int(c) for v, c in zip(self.values, n) if c}


@dataclass
class RootInfo:
    """An output root as a view refers to it: where, its catalog's sha256 and what its catalog says."""

    uri: str
    sha256: str
    config: dict[str, Any]
    tokenizer: dict[str, Any] | None

    @property
    def location(self) -> Location:
        return Location.of(self.uri)


@dataclass
class ShardRow:
    """One logical shard of a root: its copies (one record per format) and what it holds."""

    root: int
    shard_id: str
    source: str
    records: dict[str, ShardRecord]

    @property
    def record(self) -> ShardRecord:
        """The copy readers prefer (first registered format that has one)."""
        for name in formats.names():
            if name in self.records:
                return self.records[name]
        return next(iter(self.records.values()))


@dataclass
class EpisodeTable:
    """Episodes as columns (see module doc). Rows of `shards` are shared by every subset of a table."""

    roots: list[RootInfo]
    shards: list[ShardRow]
    shard: np.ndarray                 # (N,) int32: row of `shards`
    episode: np.ndarray               # (N,) int32: episode index within the shard
    frames: np.ndarray                # (N,) int64
    source_id: pa.Array               # (N,) strings
    task: Categorical
    meta: dict[str, Any] | None = None     # embodiment, task_category (Categorical), fps (float64), quality.*
    id_hash: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.shard)

    # ---- derived columns -----------------------------------------------------------------------
    @property
    def root(self) -> np.ndarray:
        return np.asarray([s.root for s in self.shards], np.int16)[self.shard] if self.shards else \
            np.zeros(0, np.int16)

    @property
    def source(self) -> Categorical:
        names = sorted({s.source for s in self.shards})
        per_shard = np.asarray([names.index(s.source) for s in self.shards] or [0], np.int32)
        return Categorical(per_shard[self.shard] if len(self.shard) else np.zeros(0, np.int32), names)

    def hashes(self) -> np.ndarray:
        """A stable 64-bit hash of each episode's source id (the seed-independent part of every draw)."""
        if self.id_hash is None:
            self.id_hash = np.fromiter(
                (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
                 for s in self.source_id.to_pylist()), np.uint64, len(self))
        return self.id_hash

    def keys(self) -> list[str]:
        """Unique episode keys: the source id, suffixed `@<root>` where several roots hold the same id."""
        ids = self.source_id.to_pylist()
        roots = self.root.tolist()
        seen: dict[str, set[int]] = {}
        for sid, r in zip(ids, roots):
            seen.setdefault(sid, set()).add(r)
        return [sid if len(seen[sid]) == 1 else f"{sid}@{r}" for sid, r in zip(ids, roots)]

    # ---- subsets -------------------------------------------------------------------------------
    def take(self, rows: np.ndarray) -> "EpisodeTable":
        """The rows `rows` (indices or a boolean mask), in the order given."""
        rows = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows, np.int64)
        meta = None
        if self.meta is not None:
            meta = {k: (v.take(rows) if isinstance(v, Categorical) else v[rows]) for k, v in self.meta.items()}
        return replace(self, shard=self.shard[rows], episode=self.episode[rows], frames=self.frames[rows],
                       source_id=self.source_id.take(pa.array(rows)), task=self.task.take(rows), meta=meta,
                       id_hash=None if self.id_hash is None else self.id_hash[rows])

    def sorted(self) -> "EpisodeTable":
        """View order: root, shard id, episode index (rows of one episode never repeat)."""
        order = sorted(range(len(self.shards)), key=lambda i: (self.shards[i].root, self.shards[i].shard_id))
        rank = np.empty(max(len(self.shards), 1), np.int64)
        rank[order] = np.arange(len(order))
        return self.take(np.lexsort((self.episode, rank[self.shard]))) if len(self) else self

    # ---- metadata from the shards --------------------------------------------------------------
    def load_meta(self) -> dict[str, Any]:
        """embodiment, task_category, fps and quality.* columns (read from each shard's episode records,
        cached per root)."""
        if self.meta is None:
            per_root = {r: _root_meta(self.roots[r], [s for s in self.shards if s.root == r])
                        for r in sorted({s.root for s in self.shards})}
            self.meta = _gather_meta(self, per_root)
        return self.meta

    def duration(self) -> np.ndarray:
        meta = self.load_meta()
        fps = meta["fps"]
        return np.where(fps > 0, self.frames / np.where(fps > 0, fps, 1.0), np.nan)

    def quality_keys(self) -> list[str]:
        return sorted(k[len(QUALITY_PREFIX):] for k in self.load_meta() if k.startswith(QUALITY_PREFIX))


# ------------------------------------------------------------------------------------------ roots
def catalog_sha256(where: Location) -> str:
    digest = hashlib.sha256()
    with where.open() as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def root_catalog(where: str | Path | Location) -> Location:
    """The catalog.json of an output root (or the file itself)."""
    loc = Location.of(where)
    if loc.name == CATALOG_FILE and loc.is_file():
        return loc
    found = loc.join(CATALOG_FILE)
    if not found.is_file():
        raise FileNotFoundError(f"{loc}: no {CATALOG_FILE} (views are built over output roots and other views)")
    return found


def open_root(where: str | Path | Location, index: int = 0, sha256: str | None = None) -> EpisodeTable:
    """The episode table of one output root (root index `index` in the table's root list). `sha256`: the
    catalog hash when the caller has just computed it."""
    catalog = root_catalog(where)
    digest = sha256 or catalog_sha256(catalog)
    cached = _read_cache(digest)
    if cached is None:
        cached = _scan_catalog(catalog)
        _write_cache(digest, cached)
    columns, shard_json, head = cached
    info = RootInfo(catalog.parent.uri, digest, head.get("config") or {}, head.get("tokenizer"))
    shards = [ShardRow(index, s["shard_id"], s["source"],
                       {fmt: ShardRecord(**{**rec, "inputs": tuple(rec.get("inputs", ()))})
                        for fmt, rec in s["records"].items()}) for s in shard_json]
    table = EpisodeTable([info], shards, columns["shard"], columns["episode"], columns["frames"],
                         columns["source_id"], Categorical(columns["task_codes"], columns["task_values"]),
                         id_hash=columns["id_hash"])
    return table


def concat(tables: Sequence[EpisodeTable]) -> EpisodeTable:
    """Tables of different roots as one (root indices renumbered in the order given)."""
    roots: list[RootInfo] = []
    shards: list[ShardRow] = []
    parts = []
    for t in tables:
        base_root, base_shard = len(roots), len(shards)
        roots.extend(t.roots)
        shards.extend(replace(s, root=s.root + base_root) for s in t.shards)
        parts.append((t, base_shard))
    meta = None
    if all(t.meta is not None for t in tables) and tables:
        keys = sorted({k for t in tables for k in t.meta})
        meta = {}
        for k in keys:
            vals = [t.meta.get(k) for t in tables]
            if any(isinstance(v, Categorical) for v in vals):
                meta[k] = Categorical.concat([v if v is not None else Categorical(np.full(len(t), -1, np.int32), [])
                                              for v, t in zip(vals, tables)])
            else:
                meta[k] = np.concatenate([v if v is not None else np.full(len(t), np.nan) for v, t in zip(vals, tables)])
    return EpisodeTable(
        roots, shards,
        np.concatenate([t.shard + b for t, b in parts]).astype(np.int32) if parts else np.zeros(0, np.int32),
        np.concatenate([t.episode for t in tables]) if tables else np.zeros(0, np.int32),
        np.concatenate([t.frames for t in tables]) if tables else np.zeros(0, np.int64),
        pa.concat_arrays([t.source_id for t in tables]) if tables else pa.array([], pa.string()),
        Categorical.concat([t.task for t in tables]), meta,
        np.concatenate([t.hashes() for t in tables]) if tables else np.zeros(0, np.uint64))


# ------------------------------------------------------------------------------------------ scanning
def _scan_catalog(catalog: Location) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Base columns + shard rows + (config, tokenizer) of a catalog, streamed."""
    head: dict[str, Any] = {}
    records: list[ShardRecord] = []
    sids: list[str] = []
    shard_names: list[str] = []
    episodes: list[int] = []
    frames: list[int] = []
    tasks: list[str] = []
    with catalog.open() as fh:
        for key, value in iter_members(fh, ("inputs", "shards")):
            if key == "inputs":
                sid, fate = value
                if fate.get("status") != "ingested":
                    continue
                sids.append(sid)
                shard_names.append(str(fate.get("shard", "")))
                episodes.append(int(fate.get("episode_index", -1)))
                frames.append(int(fate.get("frames", 0)))
                tasks.append(str(fate.get("task", "")))
            elif key == "shards":
                records.append(ShardRecord(**{**value, "inputs": ()}))
            else:
                head[key] = value
    if head.get("format") != CATALOG_FORMAT:
        raise ValueError(f"{catalog}: not a psi0 catalog (format={head.get('format')!r})")
    by_id: dict[str, dict[str, ShardRecord]] = {}
    for rec in records:
        by_id.setdefault(rec.shard_id, {})[rec.format] = rec
    order = sorted(by_id)
    row_of = {sid: i for i, sid in enumerate(order)}
    missing = sorted({s for s in shard_names if s not in row_of})
    if missing:
        raise ValueError(f"{catalog}: inputs name shard(s) the catalog does not list, e.g. {missing[:3]}")
    shard_json = [{"shard_id": sid, "source": next(iter(by_id[sid].values())).source,
                   "records": {f: {**r.to_json(), "inputs": []} for f, r in sorted(by_id[sid].items())}}
                  for sid in order]
    shard_rows = np.fromiter((row_of[s] for s in shard_names), np.int32, len(shard_names))
    ep = np.asarray(episodes, np.int32)
    order_rows = np.lexsort((ep, shard_rows))
    task = Categorical.encode(tasks)
    id_hash = np.fromiter((int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
                           for s in sids), np.uint64, len(sids))
    columns = {"shard": shard_rows[order_rows], "episode": ep[order_rows], "id_hash": id_hash[order_rows],
               "frames": np.asarray(frames, np.int64)[order_rows],
               "source_id": pa.array(sids, pa.string()).take(pa.array(order_rows)),
               "task_codes": task.codes[order_rows], "task_values": task.values}
    return columns, shard_json, {"config": head.get("config") or {}, "tokenizer": head.get("tokenizer")}


def _cache_path(digest: str, part: str) -> Path | None:
    base = cache_dir()
    return None if base is None else base / f"{digest}.{part}.v{CACHE_VERSION}.parquet"


def _read_cache(digest: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]] | None:
    path = _cache_path(digest, "base")
    if path is None or not path.is_file():
        return None
    try:
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"psi0"])
        task = table.column("task").combine_chunks()
        task = task.dictionary_encode() if not pa.types.is_dictionary(task.type) else task
        return ({"shard": table.column("shard").to_numpy().astype(np.int32),
                 "episode": table.column("episode").to_numpy().astype(np.int32),
                 "frames": table.column("frames").to_numpy().astype(np.int64),
                 "id_hash": table.column("id_hash").to_numpy().astype(np.uint64),
                 "source_id": table.column("source_id").combine_chunks(),
                 "task_codes": task.indices.to_numpy(zero_copy_only=False).astype(np.int32),
                 "task_values": task.dictionary.to_pylist()}, meta["shards"], meta["head"])
    except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
        return None


def _write_cache(digest: str, cached: tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]) -> None:
    path = _cache_path(digest, "base")
    if path is None:
        return
    columns, shard_json, head = cached
    task = pa.DictionaryArray.from_arrays(pa.array(columns["task_codes"], pa.int32()),
                                          pa.array(columns["task_values"], pa.string()))
    table = pa.table({"shard": columns["shard"], "episode": columns["episode"], "frames": columns["frames"],
                      "id_hash": columns["id_hash"], "source_id": columns["source_id"], "task": task})
    table = table.replace_schema_metadata({"psi0": json.dumps({"shards": shard_json, "head": head})})
    _atomic_parquet(table, path)


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except OSError:           # a read-only home is no reason to fail a verb
        pass


# ------------------------------------------------------------------------------------------ metadata
def _root_meta(root: RootInfo, shards: list[ShardRow]) -> pa.Table:
    """One row per episode of the root's shards: shard, episode, embodiment, task_category, fps and one
    float column per quality score (null: not recorded). Read once per root (then cached)."""
    path = _cache_path(root.sha256, "meta")
    if path is not None and path.is_file():
        try:
            return pq.read_table(path)
        except Exception:  # noqa: BLE001 - rebuilt below
            pass
    parts = [_shard_meta(root, row) for row in shards]
    table = pa.concat_tables(parts, promote_options="default") if parts else pa.table({})
    if path is not None:
        _atomic_parquet(table, path)
    return table


def _shard_meta(root: RootInfo, row: ShardRow) -> pa.Table:
    rec = row.record
    reader = formats.get(rec.format).open(root.location.child(rec.path))
    try:
        fps = float(reader.info().fps)
        fast = _lerobot_episode_meta(reader) if rec.format == "lerobot" else None
        if fast is not None:
            episodes, embodiment, category, metas = fast
        else:
            infos = reader.episodes()
            episodes = [e.index for e in infos]
            embodiment = [e.embodiment for e in infos]
            category = [str(e.meta.get("task_category", "")) for e in infos]
            metas = [e.meta for e in infos]
    finally:
        reader.close()
    n = len(episodes)
    columns: dict[str, Any] = {"shard": pa.array([row.shard_id] * n, pa.string()),
                               "episode": pa.array(episodes, pa.int32()),
                               "embodiment": pa.array(embodiment, pa.string()),
                               "task_category": pa.array(category, pa.string()),
                               "fps": pa.array(np.full(n, fps))}
    columns.update(_quality_columns(metas))
    return pa.table(columns)


def _lerobot_episode_meta(reader: Any) -> tuple[list[int], list[str], list[str], list[Any]] | None:
    """The psi0 episode columns of a LeRobot v3 shard, read as columns (no per-episode records)."""
    from shards.formats import lerobot_v3 as v3

    files = reader.location.join(v3.EPISODES_DIR).glob("chunk-*/file-*.parquet")
    wanted = ["episode_index", v3.EMBODIMENT, v3.TASK_CATEGORY, v3.META]
    if not files or any(c not in v3.parquet_schema(files[0]).names for c in wanted):
        return None
    table = pa.concat_tables([v3.read_parquet(f, wanted) for f in files])
    return (table.column("episode_index").to_pylist(), table.column(v3.EMBODIMENT).to_pylist(),
            table.column(v3.TASK_CATEGORY).to_pylist(), table.column(v3.META).to_pylist())


def _quality_columns(metas: list[Any]) -> dict[str, pa.Array]:
    """{"quality.<key>": float64 array} from EpisodeMeta JSON texts (or dicts). JSON texts are parsed by
    Arrow's JSON reader in one pass (fast); anything it cannot type falls back to Python's json."""
    import io

    import pyarrow.json as pj

    if metas and all(isinstance(m, str) for m in metas):
        try:
            data = "\n".join(m.replace("\n", " ") for m in metas).encode()
            parsed = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=1 << 24))
            if parsed.num_rows == len(metas) and "quality" in parsed.column_names:
                quality = parsed.column("quality").combine_chunks()
                if pa.types.is_struct(quality.type):
                    out = {}
                    for i, fld in enumerate(quality.type):
                        if pa.types.is_floating(fld.type) or pa.types.is_integer(fld.type):
                            col = quality.field(i)
                            out[QUALITY_PREFIX + fld.name] = pa.array(
                                col.to_numpy(zero_copy_only=False).astype(np.float64) if col.null_count == 0 else
                                np.where(col.is_null().to_numpy(zero_copy_only=False), np.nan,
                                         col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)))
                    return out
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
            pass
    values: dict[str, np.ndarray] = {}
    for i, meta in enumerate(metas):
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except ValueError:
                meta = {}
        quality = meta.get("quality") if isinstance(meta, dict) else None
        for key, value in (quality or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                col = values.get(key)
                if col is None:
                    col = values[key] = np.full(len(metas), np.nan)
                col[i] = float(value)
    return {QUALITY_PREFIX + k: pa.array(v) for k, v in sorted(values.items())}


def _gather_meta(table: EpisodeTable, per_root: dict[int, pa.Table]) -> dict[str, Any]:
    """The metadata columns for the table's rows, by (shard, episode) key, vectorized."""
    n = len(table)
    row_of = {(s.root, s.shard_id): i for i, s in enumerate(table.shards)}
    keys, parts = [], []
    for r, meta in per_root.items():
        if not meta.num_rows:
            continue
        shard_codes = meta.column("shard").combine_chunks().dictionary_encode()
        names = shard_codes.dictionary.to_pylist()
        lookup = np.asarray([row_of.get((r, name), -1) for name in names], np.int64)
        rows = lookup[shard_codes.indices.to_numpy(zero_copy_only=False)]
        keys.append((rows << 32) | meta.column("episode").to_numpy().astype(np.int64))
        parts.append(meta)
    if not parts:
        return {"embodiment": Categorical(np.full(n, -1, np.int32), []),
                "task_category": Categorical(np.full(n, -1, np.int32), []), "fps": np.full(n, np.nan)}
    meta = pa.concat_tables(parts, promote_options="default")
    all_keys = np.concatenate(keys)
    order = np.argsort(all_keys, kind="stable")
    want = (table.shard.astype(np.int64) << 32) | table.episode.astype(np.int64)
    pos = np.clip(np.searchsorted(all_keys[order], want), 0, max(len(order) - 1, 0))
    found = all_keys[order][pos] == want
    take = order[pos]

    def strings(name: str) -> Categorical:
        col = meta.column(name).combine_chunks().dictionary_encode()
        codes = col.indices.to_numpy(zero_copy_only=False).astype(np.int32)[take]
        return Categorical(np.where(found, codes, -1).astype(np.int32), col.dictionary.to_pylist())

    out: dict[str, Any] = {"embodiment": strings("embodiment"), "task_category": strings("task_category"),
                           "fps": np.where(found, meta.column("fps").to_numpy()[take], np.nan)}
    for name in sorted(c for c in meta.column_names if c.startswith(QUALITY_PREFIX)):
        col = meta.column(name).combine_chunks()
        values = np.where(col.is_null().to_numpy(zero_copy_only=False), np.nan,
                          col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64))
        out[name] = np.where(found, values[take], np.nan)
    return out


def describe(table: EpisodeTable) -> dict[str, Any]:
    """Counts a view records and `psi0 inspect` shows."""
    meta = table.meta
    out: dict[str, Any] = {"episodes": len(table), "frames": int(table.frames.sum()),
                           "sources": dict(sorted(table.source.counts().items())),
                           "tasks": len(table.task.counts())}
    if meta is not None:
        fps = meta["fps"]
        ok = fps > 0
        out["hours"] = float((table.frames[ok] / fps[ok]).sum() / 3600) if ok.any() else 0.0
        out["embodiments"] = dict(sorted(meta["embodiment"].counts().items()))
    return out


def iter_shard_groups(table: EpisodeTable) -> Iterable[tuple[int, np.ndarray]]:
    """(shard row, row indices of its episodes in table order) for every shard the table touches."""
    if not len(table):
        return
    order = np.argsort(table.shard, kind="stable")
    cuts = np.flatnonzero(np.diff(table.shard[order])) + 1
    for rows in np.split(order, cuts):
        yield int(table.shard[rows[0]]), rows
