"""Records of the catalog: which shards exist and what became of every input.

`catalog.json` at an output root is the single source of truth downstream: training, `merge`,
`validate` and the dashboard read it. Invariant: inputs == ingested + rejected.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from schemas.episode import Rejected, canonical_json

CATALOG_FORMAT = "psi0.catalog/1"


@dataclass(frozen=True)
class ShardRecord:
    """One committed shard (a LeRobot v3 dataset directory or a Zarr v3 store)."""

    shard_id: str
    format: str                    # "lerobot" | "zarr"
    path: str                      # relative to the output root
    source: str
    episodes: int
    frames: int
    inputs: tuple[str, ...]        # source ids, in episode order
    content_hash: str              # sha256 over the shard's files (names + bytes)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["inputs"] = list(self.inputs)
        return out


@dataclass(frozen=True)
class Ingested:
    """An input that is in a shard."""

    shard_id: str
    episode_index: int
    frames: int
    task: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": "ingested", "shard": self.shard_id, "episode_index": self.episode_index,
                "frames": self.frames, "task": self.task}


Fate = Ingested | Rejected


@dataclass
class Catalog:
    """The whole catalog. Serialized with canonical JSON so identical runs give identical bytes."""

    shards: list[ShardRecord] = field(default_factory=list)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokenizer: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def record(self, source_id: str, fate: Fate) -> None:
        self.inputs[source_id] = fate.to_json()

    def counts(self) -> dict[str, int]:
        ingested = sum(1 for v in self.inputs.values() if v["status"] == "ingested")
        return {"inputs": len(self.inputs), "ingested": ingested, "rejected": len(self.inputs) - ingested}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CATALOG_FORMAT,
            "config": self.config,
            "counts": self.counts(),
            "shards": [s.to_json() for s in sorted(self.shards, key=lambda s: (s.format, s.shard_id))],
            "stats": self.stats,
            "tokenizer": self.tokenizer,
            "inputs": dict(sorted(self.inputs.items())),
        }

    def dumps(self) -> str:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Catalog":
        if data.get("format") != CATALOG_FORMAT:
            raise ValueError(f"not a psi0 catalog (format={data.get('format')!r})")
        shards = [ShardRecord(**{**s, "inputs": tuple(s["inputs"])}) for s in data.get("shards", [])]
        return cls(shards=shards, inputs=dict(data.get("inputs", {})), stats=dict(data.get("stats", {})),
                   tokenizer=data.get("tokenizer"), config=dict(data.get("config", {})))
