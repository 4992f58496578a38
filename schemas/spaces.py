"""Named vector spaces: every dimension of every vector we store has a name.

A `Space` is an ordered list of dimension names plus named slices over them, so code says
`PSI0_ACTION.slice("left_arm")` instead of `a[14:21]`, and shard metadata can carry the names.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Space:
    """An ordered, named vector space with named contiguous slices."""

    name: str
    dims: tuple[str, ...]
    slices: dict[str, tuple[int, int]] = field(default_factory=dict)
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if len(set(self.dims)) != len(self.dims):
            raise ValueError(f"space {self.name}: duplicate dimension names")
        for key, (start, stop) in self.slices.items():
            if not 0 <= start < stop <= len(self.dims):
                raise ValueError(f"space {self.name}: slice {key}={start}:{stop} out of range")
        for bound in (self.low, self.high):
            if bound is not None and len(bound) != len(self.dims):
                raise ValueError(f"space {self.name}: bounds length != {len(self.dims)}")

    @property
    def size(self) -> int:
        return len(self.dims)

    def slice(self, key: str) -> slice:
        start, stop = self.slices[key]
        return slice(start, stop)

    def index(self, dim: str) -> int:
        return self.dims.index(dim)

    def names(self, key: str) -> tuple[str, ...]:
        return self.dims[self.slice(key)]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) as float32 arrays; unbounded dims are ±inf."""
        low = np.full(self.size, -np.inf, np.float32) if self.low is None else np.asarray(self.low, np.float32)
        high = np.full(self.size, np.inf, np.float32) if self.high is None else np.asarray(self.high, np.float32)
        return low, high

    def clip(self, x: np.ndarray) -> np.ndarray:
        low, high = self.bounds()
        return np.clip(x, low, high)


def concat(name: str, parts: list[tuple[str, Space]]) -> Space:
    """Concatenate spaces; each part becomes a slice named by its key, and its own slices are
    kept as `<key>.<slice>`. Dimension names are prefixed with the part key."""
    dims: list[str] = []
    slices: dict[str, tuple[int, int]] = {}
    low: list[float] = []
    high: list[float] = []
    for key, space in parts:
        start = len(dims)
        dims.extend(f"{key}.{d}" for d in space.dims)
        slices[key] = (start, len(dims))
        for sub, (a, b) in space.slices.items():
            slices[f"{key}.{sub}"] = (start + a, start + b)
        lo, hi = space.bounds()
        low.extend(lo.tolist())
        high.extend(hi.tolist())
    return Space(name, tuple(dims), slices, tuple(low), tuple(high))


def padded(space: Space, size: int, name: str | None = None) -> Space:
    """`space` zero-padded to `size` dims (pad dims are named `pad.<i>` and bounded to 0)."""
    if size < space.size:
        raise ValueError(f"cannot pad {space.name} ({space.size}) to {size}")
    extra = size - space.size
    lo, hi = space.bounds()
    return Space(
        name or f"{space.name}_pad{size}",
        space.dims + tuple(f"pad.{i}" for i in range(extra)),
        dict(space.slices) | ({"pad": (space.size, size)} if extra else {}),
        tuple(lo.tolist()) + (0.0,) * extra,
        tuple(hi.tolist()) + (0.0,) * extra,
    )
