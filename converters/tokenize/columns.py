"""Pass 2 of tokenization: the FAST tokens of the action chunk starting at every frame, as fixed-shape columns.

`action.tokens` (int32, length `max_len` = horizon x dims, the worst case, padded with the tokenizer's
`pad_id`) and `action.tokens_len` (int32 scalar) — fixed shapes so LeRobot and zarr read them as is.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa

from converters.tokenize.fast import FastTokenizer, pad_token_arrays
from converters.tokenize.sources import frame_chunks
from schemas import Episode, EpisodeError, FeatureSpec, RejectReason

CAMERA_POSE_COLUMN = "human.camera.pose"


def egodex_delta_chunks(episode: Episode, horizon: int, rate: float = 10.0) -> np.ndarray:
    """(T, horizon, 48) HUMAN_ACTION_48_DELTA chunks starting at every frame (source rate = episode fps)."""
    from converters.retarget.human_action import HumanActionConfig, delta_chunks
    kps = {s: episode.column(f"human.{s}_hand.keypoints").reshape(-1, 25, 3).astype(np.float64) for s in ("left", "right")}
    if CAMERA_POSE_COLUMN not in episode.frames.column_names:
        raise EpisodeError(RejectReason.MISSING_KEY, f"tokenize needs column {CAMERA_POSE_COLUMN!r}")
    camera = episode.column(CAMERA_POSE_COLUMN).reshape(-1, 4, 4).astype(np.float64)
    cfg = HumanActionConfig(source_rate=episode.meta.fps, rate=rate, chunk=horizon)
    return delta_chunks(kps, camera, cfg, every_frame=True)[1]


def token_columns(tokenizer: FastTokenizer, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = tokenizer.encode(chunks)
    return pad_token_arrays(ids, tokenizer.config.coefficients, tokenizer.pad_id)


def tokenize_episode(episode: Episode, tokenizer: FastTokenizer, column: str | None = "action",
                     egodex_rate: float = 10.0) -> Episode:
    """Add `action.tokens` / `action.tokens_len`. `column=None` tokenizes EgoDex 48-D delta chunks from the
    keypoint + camera-pose columns; otherwise the chunks of `column` starting at every frame."""
    h = tokenizer.config.horizon
    if column is None:
        chunks = egodex_delta_chunks(episode, h, egodex_rate)
    else:
        values = episode.column(column).astype(np.float64)
        if values.ndim != 2 or values.shape[1] != tokenizer.config.dims:
            raise EpisodeError(RejectReason.SHAPE_MISMATCH,
                               f"{column}: expected (T, {tokenizer.config.dims}) for the tokenizer, got {values.shape}")
        chunks = frame_chunks(values, h)
    if not np.isfinite(chunks).all():
        raise EpisodeError(RejectReason.NON_FINITE, "non-finite action chunk for tokenization")
    tokens, lens = token_columns(tokenizer, chunks)
    width = tokens.shape[1]
    frames = episode.frames.append_column(
        "action.tokens", pa.FixedSizeListArray.from_arrays(pa.array(tokens.reshape(-1), type=pa.int32()), width))
    frames = frames.append_column("action.tokens_len", pa.array(lens, type=pa.int32()))
    features = dict(episode.features)
    features["action.tokens"] = FeatureSpec("action.tokens", "int32", (width,), None)
    features["action.tokens_len"] = FeatureSpec("action.tokens_len", "int32", (1,), None)
    derived = dict(episode.meta.derived)
    derived["action.tokens"] = (f"FAST tokens ({tokenizer.config.version}, horizon {h}, scale {tokenizer.config.scale}, "
                                f"vocab {tokenizer.vocab_size}) of the chunk starting at each frame; pad id {tokenizer.pad_id}")
    return Episode(replace(episode.meta, derived=derived), frames, features, dict(episode.videos))
