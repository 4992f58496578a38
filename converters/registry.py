"""The one registry of sources: name -> `Source` (see `converters.source`).

Adding a source = one `converters/<source>.py` implementing the protocol + one line here (+ its tests).
"""
from __future__ import annotations

from converters.egodex import EGODEX
from converters.humanoid_everyday import HUMANOID_EVERYDAY
from converters.source import Source
from converters.teleop import TELEOP

SOURCES: dict[str, Source] = {source.name: source for source in (EGODEX, HUMANOID_EVERYDAY, TELEOP)}


def get(name: str) -> Source:
    """The source called `name`; ValueError naming the choices otherwise."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; choose from {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(SOURCES)
