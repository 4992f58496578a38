"""One reading API over what `shards/` writes.

    out = open_output("out/egodex")            # an output root (catalog.json), a catalog.json file,
                                               # one shard folder of any registered format, or an
                                               # s3://... URL of any of those
    out.catalog.shards, out.fates()            # shards (record, format, location) and every input's fate
    out.episodes()                             # ingested episodes: source_id, shard, episode_index, ...
    reader, ep = out.episode("egodex/part1/x/0")  # one episode: embodiment, EpisodeMeta (quality), ...
    shard = out.open_shard("egodex-00000")     # a ShardReader (LeRobot preferred when twins exist)
    shard.episodes(), shard.columns(["action"]), shard.frame("observation.images.egocentric", 0, 5)
    out.stats(), out.shard_stats(record), out.tokenizer()

A bare shard gets a catalog synthesized from its `shard.json` (or, for shards written elsewhere, from
the format's own metadata). Paths named by a catalog are resolved with `Location.child`: they cannot
leave the output root.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.catalog import Catalog, Ingested, ShardRecord
from schemas.names import CATALOG_FILE, SHARD_FILE, SHARDS_DIR, TOKENIZER_DIR
from schemas.stats import FeatureStats, merge_all
from shards import formats, integrity
from shards.formats import EpisodeInfo, ShardFormat, ShardReader
from shards.frames import VideoCache
from shards.location import Location
from shards.records import check_catalog, check_shard_record

TOKENIZER_CONFIG = "config.json"


@dataclass(frozen=True)
class EpisodeRef:
    """One ingested episode as the catalog records it."""

    source_id: str
    shard: str
    episode_index: int
    frames: int
    task: str


@dataclass
class TokenizerRef:
    """The FAST tokenizer an ingest job wrote beside its shards."""

    location: Location
    config: dict[str, Any]
    _local: Path | None = field(default=None, repr=False)
    _tmp: Any = field(default=None, repr=False)

    def local_dir(self) -> Path:
        """A local folder holding its files (an object-store tokenizer is downloaded once)."""
        if self._local is None:
            if self.location.is_url:
                from shards.objectstore import download_tree

                self._tmp = tempfile.TemporaryDirectory(prefix="psi0-tokenizer-")
                download_tree(self.location.uri, Path(self._tmp.name))
                self._local = Path(self._tmp.name)
            else:
                self._local = self.location.path
        return self._local


class Output:
    """What one output root (or bare shard) holds, opened read-only. Build with `open_output`."""

    def __init__(self, root: Location, catalog: Catalog, synthesized: bool = False,
                 tokenizer_dir: Location | None = None):
        self.root = root
        self.catalog = catalog
        self.synthesized = synthesized            # True: no catalog.json, read from a bare shard
        self._tokenizer_dir = tokenizer_dir
        self._tokenizer: TokenizerRef | None = None

    def __repr__(self) -> str:
        return f"Output({self.root.uri!r}, {len(self.catalog.shards)} shard folders)"

    # ---- shards ---------------------------------------------------------------------------------
    @property
    def shards(self) -> list[ShardRecord]:
        return self.catalog.shards

    def shard_ids(self) -> list[str]:
        return sorted({s.shard_id for s in self.catalog.shards})

    def record(self, shard_id: str, fmt: str | None = None) -> ShardRecord:
        """The record of `shard_id` in format `fmt`, or (fmt None or absent) its copy in the first
        registered format that has one. KeyError when the catalog has no such shard."""
        return preferred_record(self.catalog.shards, shard_id, fmt)

    def location(self, record: ShardRecord) -> Location:
        """Where a shard lives (PermissionError when its catalog path points outside the root)."""
        return self.root.child(record.path)

    def open_shard(self, shard: str | ShardRecord, fmt: str | None = None,
                   videos: VideoCache | None = None) -> ShardReader:
        record = shard if isinstance(shard, ShardRecord) else self.record(shard, fmt)
        where = self.location(record)
        integrity.verify_shard(where, expected=record.content_hash)     # the catalog agrees with shard.json
        return formats.get(record.format).open(where, videos=videos)

    def shard_json(self, record: ShardRecord) -> dict[str, Any] | None:
        """The shard's own `shard.json`, or None when it has none."""
        marker = self.location(record).join(SHARD_FILE)
        return marker.read_json() if marker.is_file() else None

    def shard_stats(self, record: ShardRecord) -> dict[str, FeatureStats] | None:
        """The shard's mergeable stats (from its `shard.json`), None when it has none."""
        data = self.shard_json(record)
        if data is None:
            return None
        return {k: FeatureStats.from_json(v) for k, v in data.get("stats", {}).items()}

    # ---- catalog-level facts --------------------------------------------------------------------
    def fates(self) -> dict[str, dict[str, Any]]:
        """Every input's fate: ingested (shard, episode_index, frames, task) or rejected (stage, reason, ...)."""
        return self.catalog.inputs

    def episodes(self) -> list[EpisodeRef]:
        """Ingested episodes, in source-id order."""
        return [EpisodeRef(sid, str(f.get("shard", "")), int(f.get("episode_index", -1)), int(f.get("frames", 0)),
                           str(f.get("task", "")))
                for sid, f in sorted(self.catalog.inputs.items()) if f.get("status") == "ingested"]

    def episode(self, source_id: str) -> tuple[ShardReader, EpisodeInfo]:
        """An ingested episode's shard reader (preferred format) and its full record there (embodiment,
        EpisodeMeta with quality scores, ...). KeyError when the input was not ingested."""
        fate = self.catalog.inputs.get(source_id)
        if fate is None or fate.get("status") != "ingested":
            raise KeyError(f"{source_id!r} is not an ingested episode of {self.root}")
        reader = self.open_shard(str(fate["shard"]))
        return reader, reader.episode(int(fate["episode_index"]))

    def stats(self) -> dict[str, dict[str, Any]]:
        """Merged LeRobot-style stats over all shards (min, max, mean, std, q01, q99, ...)."""
        return self.catalog.stats

    def tokenizer(self) -> TokenizerRef | None:
        """The FAST tokenizer location and config, when the job fitted one."""
        if self._tokenizer is None:
            entry = self.catalog.tokenizer
            if entry is not None:
                self._tokenizer = TokenizerRef(self.root.child(str(entry.get("path") or TOKENIZER_DIR)),
                                               dict(entry.get("config") or {}))
            elif self._tokenizer_dir is not None and self._tokenizer_dir.join(TOKENIZER_CONFIG).is_file():
                self._tokenizer = TokenizerRef(self._tokenizer_dir,
                                               self._tokenizer_dir.join(TOKENIZER_CONFIG).read_json())
        return self._tokenizer


def preferred_record(records: list[ShardRecord], shard_id: str, fmt: str | None = None) -> ShardRecord:
    """`shard_id`'s copy in `fmt`, else in the first registered format that has one (KeyError: none)."""
    copies = {r.format: r for r in records if r.shard_id == shard_id}
    if not copies:
        raise KeyError(f"no shard {shard_id!r}")
    if fmt in copies and fmt in formats.names():
        return copies[fmt]
    for name in formats.names():
        if name in copies:
            return copies[name]
    raise LookupError(f"shard {shard_id!r} is only in unregistered format(s) {sorted(copies)}")


def open_output(where: str | Path | Location) -> Output:
    """Open an output root, a `catalog.json`, a bare shard folder or a URL of one of those."""
    loc = Location.of(where)
    if loc.name == CATALOG_FILE and loc.is_file():
        return Output(loc.parent, _catalog(loc))
    catalog_file = loc.join(CATALOG_FILE)
    if catalog_file.is_file():
        return Output(loc, _catalog(catalog_file))
    fmt = formats.detect(loc)
    if fmt is not None:
        return _bare_shard(loc, fmt)
    if loc.join(SHARDS_DIR).is_dir():
        raise FileNotFoundError(f"{loc} has {SHARDS_DIR}/ but no {CATALOG_FILE}: finish the job (finalize) first")
    raise FileNotFoundError(f"{loc}: not an output root, {CATALOG_FILE}, or a shard of a registered format "
                            f"({', '.join(formats.names())})")


def _catalog(where: Location) -> Catalog:
    """A catalog file, every record type-checked (`shards.records`) before it is used."""
    data = where.read_json()
    check_catalog(data, str(where))
    return Catalog.from_json(data)


def open_shard(where: str | Path | Location, videos: VideoCache | None = None) -> ShardReader:
    """A reader for one shard folder (format detected from its content)."""
    loc = Location.of(where)
    fmt = formats.detect(loc)
    if fmt is None:
        raise FileNotFoundError(f"{loc}: not a shard of a registered format ({', '.join(formats.names())})")
    return fmt.open(loc, videos=videos)


def _bare_shard(loc: Location, fmt: ShardFormat) -> Output:
    """A one-shard catalog from the shard's `shard.json` or, failing that, its own metadata."""
    reader = fmt.open(loc)
    try:
        data = reader.shard_json()
        if data is not None:
            rec = data.get("record") if isinstance(data, dict) else None
            check_shard_record(f"{loc.join(SHARD_FILE)}: record", rec)
            record = ShardRecord(**{**rec, "inputs": tuple(rec["inputs"]), "path": loc.name})
            fates = dict(data.get("fates", {}))
            stats = {k: s.to_lerobot() for k, s in
                     sorted(merge_all([{k: FeatureStats.from_json(v) for k, v in data.get("stats", {}).items()}]).items())}
        else:
            info, episodes = reader.info(), reader.episodes()
            shard_id = fmt.shard_id(loc.name)
            record = ShardRecord(shard_id, fmt.name, loc.name, shard_id, len(episodes), info.frames,
                                 tuple(e.source_id for e in episodes), "")
            fates = {e.source_id: Ingested(shard_id, e.index, e.length, e.task).to_json() for e in episodes}
            stats = reader.native_stats()
    finally:
        reader.close()
    parent = loc.parent
    tokenizer_dir = parent.parent.join(TOKENIZER_DIR) if parent.name == SHARDS_DIR else None
    return Output(parent, Catalog(shards=[record], inputs=fates, stats=stats), synthesized=True,
                  tokenizer_dir=tokenizer_dir)
