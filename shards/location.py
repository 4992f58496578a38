"""`Location`: a file or folder that is either a local path or an object-store URL (`s3://...`).

Every shard reader touches storage only through it, so one reader serves local output roots and
`s3://` ones alike (URLs through the fsspec layer of `schemas/remote.py`). `child` resolves a relative
path taken from a catalog or a request and refuses anything that would leave the folder (`..`,
absolute paths, symlinks pointing out): catalogs and requests are data, never trusted paths.
"""
from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from schemas import remote


@dataclass(frozen=True)
class Location:
    """A local path (absolute, symlinks resolved) or a URL, as one string."""

    uri: str

    @classmethod
    def of(cls, where: "str | Path | Location") -> "Location":
        if isinstance(where, Location):
            return where
        text = str(where)
        if remote.is_url(text):
            return cls(text.rstrip("/") if not text.endswith("://") else text)
        if text.startswith("file://"):
            text = text[len("file://"):]
        return cls(str(Path(text).resolve()))

    # ---- naming ---------------------------------------------------------------------------------
    @property
    def is_url(self) -> bool:
        return remote.is_url(self.uri)

    @property
    def path(self) -> Path:
        """The local path (only for local locations)."""
        if self.is_url:
            raise ValueError(f"{self.uri} is not a local path")
        return Path(self.uri)

    def local(self) -> "Path | str":
        """A Path for local locations, the URL string otherwise (what callers used to hold)."""
        return self.uri if self.is_url else Path(self.uri)

    @property
    def name(self) -> str:
        return posixpath.basename(self.uri.rstrip("/")) if self.is_url else Path(self.uri).name

    @property
    def parent(self) -> "Location":
        if self.is_url:
            return Location(posixpath.dirname(self.uri.rstrip("/")))
        return Location(str(Path(self.uri).parent))

    def join(self, *parts: str) -> "Location":
        """A path below this one built from trusted layout names (no containment check)."""
        if self.is_url:
            return Location(remote.join(self.uri, *parts))
        return Location(str(Path(self.uri).joinpath(*parts)))

    def child(self, rel: str) -> "Location":
        """`rel` (untrusted: from a catalog or a request) below this folder, after resolving `..` and
        symlinks; raises PermissionError when it would leave the folder."""
        if not rel or "\x00" in rel or os.path.isabs(rel):
            raise PermissionError("path outside root")
        if self.is_url:
            norm = posixpath.normpath(rel)
            if norm == ".." or norm.startswith(("../", "/")) or "://" in rel:
                raise PermissionError("path outside root")
            return Location(remote.join(self.uri, norm))
        base = Path(self.uri).resolve()
        try:
            target = (base / rel).resolve()
        except (OSError, RuntimeError):          # a symlink loop, a name the file system refuses
            raise PermissionError("path cannot be resolved (symlink loop or invalid name)") from None
        if not target.is_relative_to(base):
            raise PermissionError("path outside root")
        return Location(str(target))

    def links_leaving(self, root: "Location") -> list[str]:
        """Symlinks below this folder that resolve outside `root` (or cannot be resolved), as relative
        paths; a URL has none. Readers follow layout names through `join` without a containment check,
        so a caller serving untrusted folders asks this first."""
        if self.is_url:
            return []
        base, limit = Path(self.uri), Path(root.uri).resolve()
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                if not path.is_symlink():
                    continue
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    found.append(path.relative_to(base).as_posix())
                    continue
                if not target.is_relative_to(limit):
                    found.append(path.relative_to(base).as_posix())
        return sorted(found)

    def relative_to(self, other: "Location") -> str:
        if self.is_url:
            return remote.relative(self.uri, other.uri)
        return Path(self.uri).relative_to(other.uri).as_posix()

    def __str__(self) -> str:
        return self.uri

    # ---- reading --------------------------------------------------------------------------------
    def filesystem(self) -> tuple[Any, str]:
        """(fsspec filesystem, path without protocol) — for URL locations."""
        return remote.filesystem(self.uri)

    def is_file(self) -> bool:
        if not self.is_url:
            return Path(self.uri).is_file()
        return remote.exists(self.uri)

    def is_dir(self) -> bool:
        if not self.is_url:
            return Path(self.uri).is_dir()
        fs, path = self.filesystem()
        fs.invalidate_cache(path)
        try:
            return bool(fs.isdir(path))
        except (FileNotFoundError, OSError):
            return False

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def read_bytes(self) -> bytes:
        if not self.is_url:
            return Path(self.uri).read_bytes()
        return remote.read_bytes(self.uri)

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def read_json(self) -> Any:
        return json.loads(self.read_bytes())

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file."""
        if not self.is_url:
            with open(self.uri, "rb") as fh:
                fh.seek(start)
                return fh.read(max(0, end - start))
        fs, path = self.filesystem()
        return fs.cat_file(path, start=start, end=end)

    def open(self) -> BinaryIO:
        """A seekable binary file object (URLs: ranged reads through fsspec)."""
        if not self.is_url:
            return open(self.uri, "rb")
        return remote.open_remote(self.uri)

    def size(self) -> int:
        if not self.is_url:
            return Path(self.uri).stat().st_size
        found = remote.info(self.uri)
        if found is None:
            raise FileNotFoundError(self.uri)
        return int(found.get("size") or 0)

    def version(self) -> Any:
        """Something that changes when the file is rewritten (mtime locally, ETag/mtime on a store);
        None when the file is absent."""
        if not self.is_url:
            try:
                return Path(self.uri).stat().st_mtime
            except OSError:
                return None
        found = remote.info(self.uri)
        if found is None:
            return None
        return str(found.get("ETag") or found.get("etag") or found.get("LastModified") or found.get("mtime")
                   or found.get("size"))

    def glob(self, pattern: str) -> list["Location"]:
        """Files below this folder matching `pattern` (`**` recursive), sorted."""
        if not self.is_url:
            return [Location(str(p)) for p in sorted(Path(self.uri).glob(pattern)) if p.is_file()]
        fs, path = self.filesystem()
        fs.invalidate_cache(path)
        found = fs.glob(posixpath.join(path, pattern))
        return [Location(fs.unstrip_protocol(p)) for p in sorted(found) if fs.isfile(p)]

    def listdir(self) -> list["Location"]:
        """Direct children (files and folders), sorted by name; empty when absent."""
        if not self.is_url:
            base = Path(self.uri)
            return [Location(str(p)) for p in sorted(base.iterdir())] if base.is_dir() else []
        fs, path = self.filesystem()
        fs.invalidate_cache(path)
        try:
            found = fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return [Location(fs.unstrip_protocol(p)) for p in sorted(found) if p.rstrip("/") != path.rstrip("/")]
