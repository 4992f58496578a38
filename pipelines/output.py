"""A job's output root, local folder or object-store URL: the ONE place that decides which.

    <root>/shards/<shard_id>[.zarr]/   committed shards (shard.json last)
    <root>/tokenizer/                  the job's FAST tokenizer (tokenizer.json last)
    <root>/catalog.json                written by `finalize`, after every shard

Local: shards are written under a staging name and renamed when complete (`shards.commit`), and
`prepare` removes the staging debris of an interrupted run. URL: each shard is written and committed
in a local staging root, then every format directory is uploaded with its `shard.json` last
(`shards.objectstore.publish_shard`): no staging debris can exist remotely; a partial shard is
replaced when it is redone.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from converters.tokenize.fast import FastTokenizer
from converters.tokenize.load import load_tokenizer
from schemas import Episode, Rejected, remote
from schemas.catalog import Catalog
from schemas.names import SHARDS_DIR, TOKENIZER_DIR
from shards import objectstore
from shards.catalog import finalize as finalize_catalog
from shards.commit import clean_staging
from shards.writer import ShardConfig, ShardResult, is_committed, shard_dir_name, write_shard

TOKENIZER_MARKER = "tokenizer.json"
"""Written (or uploaded) last: a tokenizer directory without it is incomplete."""


@dataclass(frozen=True)
class OutputRoot:
    location: str

    @property
    def is_remote(self) -> bool:
        return remote.is_url(self.location)

    def prepare(self) -> list[str]:
        """Make the root ready for a (re)run; returns the partial shards removed."""
        if self.is_remote:
            return []
        Path(self.location).mkdir(parents=True, exist_ok=True)
        return clean_staging(Path(self.location))

    # ------------------------------------------------------------------------------------------ shards
    def is_committed(self, shard_id: str, formats: Iterable[str]) -> bool:
        """Every format of the shard is committed (a resumed job skips it)."""
        if not self.is_remote:
            return is_committed(Path(self.location), shard_id, formats)
        return all(objectstore.committed_shard(self._shard_url(shard_id, fmt)) is not None for fmt in formats)

    def write_shard(self, shard_id: str, episodes: Iterable[Episode | Rejected], config: ShardConfig) -> ShardResult:
        """Write and commit one shard from `episodes` (rejects become fates in its shard.json)."""
        if not self.is_remote:
            return write_shard(episodes, self.location, shard_id, config)
        staging = Path(tempfile.mkdtemp(prefix=f"psi0-{shard_id}-"))
        try:
            result = write_shard(episodes, staging, shard_id, config)
            for fmt in config.formats:
                name = shard_dir_name(shard_id, fmt)
                objectstore.publish_shard(staging / SHARDS_DIR / name, self._shard_url(shard_id, fmt))
            return result
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _shard_url(self, shard_id: str, fmt: str) -> str:
        return remote.join(self.location, SHARDS_DIR, shard_dir_name(shard_id, fmt))

    # ------------------------------------------------------------------------------------------ tokenizer
    @property
    def tokenizer_location(self) -> str:
        """`<root>/tokenizer` as a path or URL."""
        if self.is_remote:
            return remote.join(self.location, TOKENIZER_DIR)
        return str(Path(self.location) / TOKENIZER_DIR)

    def load_tokenizer(self) -> FastTokenizer | None:
        """The job's saved tokenizer (a URL is downloaded to a temp dir), None when there is none yet."""
        where = self.tokenizer_location
        if not self.is_remote:
            return load_tokenizer(where) if (Path(where) / TOKENIZER_MARKER).is_file() else None
        if not remote.exists(remote.join(where, TOKENIZER_MARKER)):
            return None
        with tempfile.TemporaryDirectory(prefix="psi0-tokenizer-") as tmp:
            objectstore.download_tree(where, Path(tmp))
            return load_tokenizer(tmp)

    def save_tokenizer(self, tokenizer: FastTokenizer) -> None:
        """Save atomically: a local temp dir renamed into place, or an upload with the marker last."""
        if self.is_remote:
            with tempfile.TemporaryDirectory(prefix="psi0-tokenizer-") as tmp:
                tokenizer.save(tmp)
                objectstore.upload_tree(Path(tmp), self.tokenizer_location, last=TOKENIZER_MARKER)
            return
        directory = Path(self.tokenizer_location)
        tmp = directory.with_name(directory.name + ".tmp")
        tokenizer.save(tmp)
        os.replace(tmp, directory)

    # ------------------------------------------------------------------------------------------ catalog
    def finalize(self, **kwargs: Any) -> Catalog:
        """`catalog.json` from the committed shards' records (`shards.catalog.finalize`)."""
        return finalize_catalog(self.location, **kwargs)
