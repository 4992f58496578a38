"""The shard formats, registered in this one place.

A format is one module holding its layout names, its write sink and its reader (see `base.py`);
`register` makes it known to the writer (`ShardConfig.formats`), the readers (`shards.reader`), the
job CLIs (`--format`), training (`DataConfig.format`) and the dashboard. Built in: `lerobot`
(LeRobot v3 dataset folders) and `zarr` (Zarr v3 stores).
"""
from __future__ import annotations

from shards.formats.base import (BaseReader, Camera, EpisodeEntry, EpisodeInfo, FrameSink, ShardContents,
                                 ShardFormat, ShardInfo, ShardReader, ShardSink, VideoSpan)
from shards.location import Location

_REGISTRY: dict[str, ShardFormat] = {}


def register(fmt: ShardFormat) -> ShardFormat:
    """Make `fmt` known everywhere (replacing a format of the same name)."""
    if not fmt.name or not fmt.name.replace("_", "").isalnum():
        raise ValueError(f"format name must be a plain word, got {fmt.name!r}")
    _REGISTRY[fmt.name] = fmt
    return fmt


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> ShardFormat:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown shard format {name!r}; registered: {', '.join(names())}") from None


def names() -> tuple[str, ...]:
    """Registered format names, built-ins first (the order readers prefer when twins exist)."""
    return tuple(_REGISTRY)


def detect(location: Location) -> ShardFormat | None:
    """The format whose shard folder `location` is (by its content), or None. Formats whose folders
    carry a suffix are asked first: their markers are the more specific ones."""
    for fmt in sorted(_REGISTRY.values(), key=lambda f: not f.suffix):
        if fmt.recognizes(location):
            return fmt
    return None


def _register_builtins() -> tuple[str, ...]:
    from shards.formats import lerobot_v3, zarr_v3

    register(lerobot_v3.FORMAT)
    register(zarr_v3.FORMAT)
    return lerobot_v3.NAME, zarr_v3.NAME


TWINS = _register_builtins()
"""The built-in pair a job writes by default (`--format both`): the same episodes as a LeRobot v3 dataset
and as a Zarr v3 store."""

__all__ = ["TWINS", "BaseReader", "Camera", "EpisodeEntry", "EpisodeInfo", "FrameSink", "ShardContents", "ShardFormat",
           "ShardInfo", "ShardReader", "ShardSink", "VideoSpan", "detect", "get", "names", "register", "unregister"]
