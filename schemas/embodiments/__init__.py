"""Embodiments as data: one module per robot/hand configuration, found by a registry.

    from schemas import embodiments
    emb = embodiments.get("g1_inspire")          # or "g1-inspire"; `names()` lists the canonical names
    emb.body.joints, emb.hand.slots, emb.ik.chains["left"], emb.action_space().bounds()

Layout of this package:
- `spec.py`: the data types (`ChainSpec`, `HandSpec`, `BodySpec`, `ArmIK`, `Embodiment`).
- `parts/`: shared part tables - G1 and H1 bodies, Dex3-1 and Inspire hands, the human (EgoDex /
  MediaPipe) hand - transcribed from the robots' published descriptions (each file cites its source).
- every other module here is ONE configuration and defines `EMBODIMENT`; the registry imports them
  on first use. Adding a robot/hand configuration = one module here (+ its test); readers,
  retargeting, the teleop mapper and `psi0 embodiments` pick it up from the registry.

The canonical name is written into shards (`EpisodeMeta.embodiment`): `g1_dex3` must never change.
The hyphenated spelling (`g1-dex3`, as old teleop recordings' session metadata and CLIs used) and any
declared aliases are accepted by `get`.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from schemas.embodiments.parts.dex3 import DEX3, DEX3_LEFT, DEX3_RIGHT
from schemas.embodiments.parts.g1 import G1_ARMS, G1_BODY, G1_LEGS_WAIST
from schemas.embodiments.parts.h1 import H1_ARMS, H1_BODY, H1_LEGS_WAIST
from schemas.embodiments.parts.human import (EGODEX_JOINTS, FINGERS, HUMAN_BODY_JOINTS, HUMAN_HAND_KEYPOINTS,
                                             HUMAN_HAND_KNUCKLE, HUMAN_HAND_MID, HUMAN_HAND_TIP, HUMAN_HAND_TIPS,
                                             HUMAN_HAND_WRIST, MEDIAPIPE_FROM_HUMAN25, MEDIAPIPE_LANDMARKS,
                                             human_hand_joints, xyz_space)
from schemas.embodiments.parts.inspire import INSPIRE, INSPIRE_HAND
from schemas.embodiments.spec import (SIDES, ArmIK, BodySpec, ChainSpec, Embodiment, HandDDS, HandSide, HandSpec,
                                      JointSpec)

DEFAULT = "g1_dex3"
"""The configuration a caller gets when it names none (the Ψ₀ reference robot)."""

_NOT_CONFIGURATIONS = frozenset({"spec", "parts", "cli"})


@lru_cache(maxsize=None)
def _registry() -> dict[str, Embodiment]:
    found: dict[str, Embodiment] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_CONFIGURATIONS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        emb = getattr(module, "EMBODIMENT", None)
        if not isinstance(emb, Embodiment):
            raise TypeError(f"{module.__name__}: a configuration module must define EMBODIMENT = Embodiment(...)")
        if emb.name != info.name:
            raise ValueError(f"{module.__name__}: EMBODIMENT.name {emb.name!r} must equal the module name")
        found[emb.name] = emb
    spellings: dict[str, str] = {}
    for emb in found.values():
        for spelling in emb.spellings:
            if spellings.setdefault(spelling, emb.name) != emb.name:
                raise ValueError(f"spelling {spelling!r} names both {spellings[spelling]} and {emb.name}")
    return dict(sorted(found.items()))


def names() -> tuple[str, ...]:
    """Canonical names of every registered configuration, sorted."""
    return tuple(_registry())


def spellings() -> tuple[str, ...]:
    """Every accepted spelling (canonical names first), e.g. for a CLI's `choices`."""
    regs = _registry().values()
    return tuple(e.name for e in regs) + tuple(s for e in regs for s in e.spellings if s != e.name)


def all_embodiments() -> tuple[Embodiment, ...]:
    return tuple(_registry().values())


def get(name: str | Embodiment | None = None) -> Embodiment:
    """The configuration named `name` (canonical, hyphenated or alias); `None` gives `DEFAULT`."""
    if isinstance(name, Embodiment):
        return name
    registry = _registry()
    key = DEFAULT if name is None else str(name)
    if key in registry:
        return registry[key]
    for emb in registry.values():
        if key in emb.spellings:
            return emb
    raise ValueError(f"unknown embodiment {key!r}; choose from {', '.join(registry)}")


def canonical(name: str | None) -> str:
    """The canonical name for any accepted spelling (raises ValueError for unknown names)."""
    return get(name).name


def find(body_family: str, stored_hand_size: int | None = None) -> Embodiment | None:
    """The configuration with a body of `body_family` (e.g. "g1") whose hands store `stored_hand_size`
    values for both sides; without a match on the hand, the body's stock hand. None if no such body.

    Why: datasets name the robot but not the hand (Humanoid Everyday: `robot_type` "G1", a 14-D Dex3-1
    or 12-D Inspire `hand_state`)."""
    bodies = [e for e in _registry().values() if e.body.family == body_family]
    matches = [e for e in bodies if stored_hand_size is not None and e.hand.stored_size == stored_hand_size]
    if len(matches) > 1:
        raise ValueError(f"{body_family} hands of {stored_hand_size} stored values are ambiguous: "
                         f"{', '.join(e.name for e in matches)}")
    if matches:
        return matches[0]
    return next((e for e in bodies if e.hand.name == e.body.stock_hand), None)


__all__ = [
    "DEFAULT", "names", "spellings", "all_embodiments", "get", "canonical", "find",
    "Embodiment", "BodySpec", "HandSpec", "HandSide", "HandDDS", "ArmIK", "ChainSpec", "JointSpec", "SIDES",
    "G1_BODY", "G1_ARMS", "G1_LEGS_WAIST", "H1_BODY", "H1_ARMS", "H1_LEGS_WAIST", "DEX3", "DEX3_LEFT", "DEX3_RIGHT",
    "INSPIRE", "INSPIRE_HAND", "FINGERS", "human_hand_joints", "HUMAN_HAND_TIPS", "HUMAN_BODY_JOINTS",
    "HUMAN_HAND_WRIST", "HUMAN_HAND_KNUCKLE", "HUMAN_HAND_MID", "HUMAN_HAND_TIP",
    "EGODEX_JOINTS", "MEDIAPIPE_LANDMARKS", "MEDIAPIPE_FROM_HUMAN25", "xyz_space", "HUMAN_HAND_KEYPOINTS",
]
