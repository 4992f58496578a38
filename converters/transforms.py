"""Per-episode transforms: small frozen dataclasses that take an `Episode` and return one.

A transform either returns the (new) episode or raises `EpisodeError` with a reason; the pipeline
turns that into a `Rejected` naming the transform's `stage`. They compose (`compose(a, b, c)` runs
a, then b, then c) in the style of openpi's `transforms.py`. A job's chain is built once per worker:

    compose(Validate(), source.hand_qa(), Retarget(), Tokenize(tokenizer, source.token_chunks))

Heavy dependencies (torch for retargeting, MediaPipe for hand QA) are imported when a transform
first runs, so a chain without them never loads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import numpy as np

from schemas import Episode
from schemas.validation import validate_episode


@runtime_checkable
class Transform(Protocol):
    """Episode -> Episode, or `EpisodeError`. `stage` names the step in a reject ("transform" if absent)."""

    def __call__(self, episode: Episode) -> Episode: ...


def stage_of(transform: Transform) -> str:
    return getattr(transform, "stage", "transform")


@dataclass(frozen=True)
class Compose:
    """Run `steps` in order. Nested compositions are flattened, so `steps` are the leaf transforms."""

    steps: tuple[Transform, ...] = ()

    def __call__(self, episode: Episode) -> Episode:
        for step in self.steps:
            episode = step(episode)
        return episode


def compose(*transforms: Transform | None) -> Compose:
    """One transform running `transforms` in order (None entries are skipped)."""
    steps: list[Transform] = []
    for t in transforms:
        if isinstance(t, Compose):
            steps.extend(t.steps)
        elif t is not None:
            steps.append(t)
    return Compose(tuple(steps))


@dataclass(frozen=True)
class Validate:
    """The schema checks every episode passes before anything else (`schemas.validation`)."""

    stage: ClassVar[str] = "validate"

    def __call__(self, episode: Episode) -> Episode:
        validate_episode(episode)
        return episode


@dataclass(frozen=True)
class HandQA:
    """MediaPipe agreement of the recorded hand joints with the video (`converters.handqa`), with the
    camera the episode carries (`meta.extra["camera_intrinsic"]`, `video_width`/`video_height`: what
    the EgoDex reader records); reject on disagreement."""

    config: Any = None                      # converters.handqa.HandQAConfig; None: its defaults
    stage: ClassVar[str] = "transform"

    def __call__(self, episode: Episode) -> Episode:
        from converters.handqa import EGODEX_SIZE, HandQAConfig, hand_qa_episode  # noqa: PLC0415

        extra = episode.meta.extra
        k = np.asarray(extra["camera_intrinsic"], np.float64) if "camera_intrinsic" in extra else None
        size = (int(extra.get("video_width", EGODEX_SIZE[0])), int(extra.get("video_height", EGODEX_SIZE[1])))
        return hand_qa_episode(episode, self.config or HandQAConfig(), intrinsics=k, native_size=size)


@dataclass(frozen=True)
class Retarget:
    """Human hand keypoints -> robot joints of `embodiment` (`converters.retarget`), with residuals.
    `embodiment=None` retargets to the episode's own robot, or `schemas.embodiments.DEFAULT` for human data."""

    embodiment: str | None = None
    stage: ClassVar[str] = "transform"

    def __call__(self, episode: Episode) -> Episode:
        from converters.retarget import RetargetConfig, retarget_episode  # noqa: PLC0415

        return retarget_episode(episode, RetargetConfig(embodiment=self.embodiment))


@dataclass(frozen=True)
class Tokenize:
    """FAST tokens of the chunk starting at every frame (`action.tokens`, `action.tokens_len`); the chunks
    come from the source (`Source.token_chunks`)."""

    tokenizer: Any                                          # converters.tokenize.fast.FastTokenizer
    chunks: Callable[[Episode, int], np.ndarray]
    stage: ClassVar[str] = "transform"

    def __call__(self, episode: Episode) -> Episode:
        from converters.tokenize.columns import tokenize_episode  # noqa: PLC0415

        return tokenize_episode(episode, self.tokenizer, self.chunks(episode, self.tokenizer.config.horizon))
