"""The `Source` protocol: what every dataset reader (`converters/<source>.py`) implements.

A source knows where its episodes are (`discover`), how to read one into a `schemas.Episode`
(`read`, raising `EpisodeError` for unusable input), what it produces (`describe`), and the steps
only it can do: which of its columns its FAST tokens are made of (`token_inputs`, in the token space
`token_space`: every built-in source uses the 48-D human-hand deltas of `converters.tokenize.hand48`,
so one tokenizer covers a stage-1 mixture) and, where it has one, a hand-pose QA step (`hand_qa`).
`chunks_from_columns` builds the chunks from those columns wherever they come from: an Episode at
ingest (`token_chunks`), shards for `psi0 tokenizer fit` and the training loader. The pipeline
(`pipelines/`) asks the registry (`converters.registry`) for a source by name and never branches on
which one it got.

Optional: `videos(ref) -> dict[str, VideoRef] | None`, the episode's cameras as `read` will return them,
from the containers' headers alone (cheap; None when unsure). A job then starts decoding a shard's first
episode while `read` is still reading its poses (`pipelines.prefetch`); the decode is dropped if `read`
rejects the episode or returns other cameras.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from converters.tokenize import hand48
from schemas import Episode, SourceRef


@dataclass(frozen=True)
class JobDefaults:
    """Job options whose best value depends on the source (the entry scripts' and `psi0 ingest` defaults)."""

    token_horizon: int = 16
    episodes_per_shard: int = 32


@runtime_checkable
class Source(Protocol):
    """One dataset behind one face; see the module docstring."""

    name: str
    token_column: str | None
    """The frame column whose chunks `token_chunks` returns (recorded in the catalog); None when the
    source derives its chunks from other columns."""
    token_space: str
    """The meaning of its token chunks (e.g. `converters.tokenize.hand48.SPACE`); recorded in the catalog."""
    token_inputs: Mapping[str, str]
    """Role -> frame column the chunks are built from (roles: `converters.tokenize.hand48.ROLES`)."""
    defaults: JobDefaults

    def discover(self, root: str) -> list[SourceRef]:
        """Every episode under `root` (a path or URL), sorted; unusable ones too, so `read` can reject them."""
        ...

    def read(self, ref: SourceRef) -> Episode:
        """One episode; raises `schemas.EpisodeError` with a reason for anything unusable."""
        ...

    def describe(self) -> dict[str, Any]:
        """Features, fps, embodiments, what is derived rather than recorded, and the job defaults."""
        ...

    def token_chunks(self, episode: Episode, horizon: int) -> np.ndarray:
        """(T, horizon, D) float64 action chunks starting at every frame: what FAST tokenizes."""
        ...

    def chunks_from_columns(self, columns: Mapping[str, np.ndarray], fps: float, horizon: int) -> np.ndarray:
        """`token_chunks` from role -> (T, ...) arrays (the `token_inputs` columns of one episode)."""
        ...

    def hand_qa(self) -> Any | None:
        """The source's hand-pose QA transform, or None when it has none."""
        ...


def action_chunks(episode: Episode, horizon: int, column: str = "action") -> np.ndarray:
    """(T, horizon, D) chunks of a recorded (T, D) action column starting at every frame, end-padded
    by repeating the last frame: the token chunks of sources that record robot actions."""
    from converters.tokenize.sources import frame_chunks   # noqa: PLC0415 - pulls in the retargeting math

    return frame_chunks(episode.column(column).astype(np.float64), horizon)


def input_columns(source: "Source", episode: Episode) -> dict[str, np.ndarray]:
    """Role -> the episode's `token_inputs` column (float64), for `chunks_from_columns`."""
    return {role: episode.column(column).astype(np.float64) for role, column in source.token_inputs.items()}


class Hand48Tokens:
    """`Source`'s token methods for a source whose stage-1 chunks are `hand48` deltas of its `token_inputs`
    columns at `hand48.RATE` (every built-in source), and no hand QA unless it overrides `hand_qa`.
    A mixin, so the three sources state only what differs."""

    def token_chunks(self, episode: Episode, horizon: int) -> np.ndarray:
        return self.chunks_from_columns(input_columns(self, episode), episode.meta.fps, horizon)

    def chunks_from_columns(self, columns: Mapping[str, np.ndarray], fps: float, horizon: int) -> np.ndarray:
        return hand48.chunks(columns, fps, horizon, hand48.RATE)

    def hand_qa(self) -> Any | None:
        return None


def features_summary(features: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`describe()`'s feature table: key -> dtype and shape."""
    return {key: {"dtype": spec.dtype, "shape": list(spec.shape)} for key, spec in features.items()}


def task_key(name: str) -> str:
    """Stable task key from a folder / archive / session task name: `Push a button` -> `push_a_button`."""
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


def task_sentence(name: str) -> str:
    """A task folder / session task name as an instruction: underscores as spaces, sentence case."""
    words = re.sub(r"[_\s]+", " ", name).strip()
    return words[:1].upper() + words[1:]
