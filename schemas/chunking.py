"""The chunking constants training and serving must agree on: ONE definition.

Why one place: training-time RTC draws a delay d in 0..max_delay-1 and keeps the first d actions of a
chunk clean; a server that sends d = max_delay asks the model for something it never saw. The chunk
length, the minimum execution horizon and the number of flow steps are the same kind of contract. The
policy config carries a `ChunkingSpec` (saved in `policy.json` and in every checkpoint's config), the
action expert takes `max_delay` from it, and `deploy/` builds its RTC engine from it and refuses a delay
the training never drew (`ChunkingSpec.check_delay`).

Reference values (psi0_official.md, psi0_amo_teleop_detail.md 1e/1f): chunk 30 at 30 Hz, training
`max_delay = 8` (d in 0..7), serving minimum execution horizon 15, 10 flow steps at evaluation (the
reference's serving script uses 8; `--steps` overrides per call).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ChunkingSpec:
    """horizon: actions per chunk; max_delay: training draws d in [0, max_delay), so serving may use
    d <= max_delay - 1; min_execute_horizon: actions of a chunk executed before the next inference starts
    (the engine's default execute horizon); flow_steps: Euler steps when sampling a chunk."""

    horizon: int = 30
    max_delay: int = 8
    min_execute_horizon: int = 15
    flow_steps: int = 10

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.flow_steps < 1 or self.max_delay < 1:
            raise ValueError(f"horizon, max_delay and flow_steps must be >= 1 (got {self})")
        if self.max_delay > self.horizon:
            raise ValueError(f"max_delay {self.max_delay} > horizon {self.horizon}: a delay would span the chunk")
        largest = self.max_delay - 1
        if not largest <= self.min_execute_horizon <= self.horizon - largest:
            raise ValueError(f"min_execute_horizon {self.min_execute_horizon} must lie in [{largest}, "
                             f"{self.horizon - largest}] (d <= s <= H - d for every trained delay d <= {largest})")

    @property
    def largest_delay(self) -> int:
        """The largest delay training ever drew (max_delay - 1): serving must not exceed it."""
        return self.max_delay - 1

    def check_delay(self, delay: int) -> int:
        """`delay` if training saw it, else ValueError (never clamp silently: the caller's latency model is wrong)."""
        d = int(delay)
        if not 0 <= d <= self.largest_delay:
            raise ValueError(f"delay {d} was never drawn in training (training-time RTC max_delay {self.max_delay}: "
                             f"d in 0..{self.largest_delay}); lower the delay or retrain with a larger max_delay")
        return d

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ChunkingSpec":
        return cls(**{k: int(v) for k, v in d.items() if k in cls.__dataclass_fields__})


REFERENCE_CHUNKING = ChunkingSpec()
"""The Ψ₀ reference's values (chunk 30, max_delay 8, s_min 15, 10 flow steps)."""
