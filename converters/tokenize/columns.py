"""Pass 2 of tokenization: the FAST tokens of the action chunk starting at every frame, as fixed-shape columns.

`action.tokens` (int32, length = the tokenizer's `max_tokens`, the worst case: horizon x dims for ours,
up to twice that for a byte-level one such as the Ψ₀ authors', padded with the tokenizer's `pad_id`) and
`action.tokens_len` (int32 scalar) — fixed shapes so LeRobot and zarr read them as is.
Which chunks are tokenized is the source's choice (`converters.source.Source.token_chunks`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa

from converters.tokenize.fast import FastTokenizer, pad_token_arrays
from schemas import Episode, EpisodeError, FeatureSpec, RejectReason


def token_columns(tokenizer: FastTokenizer, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = tokenizer.encode(chunks)
    return pad_token_arrays(ids, tokenizer.max_tokens, tokenizer.pad_id)


def tokenize_episode(episode: Episode, tokenizer: FastTokenizer, chunks: np.ndarray) -> Episode:
    """Add `action.tokens` / `action.tokens_len` from `chunks` (T, horizon, dims): the chunk starting at
    every frame, in the tokenizer's space."""
    h, dims = tokenizer.config.horizon, tokenizer.config.dims
    if chunks.ndim != 3 or chunks.shape[0] != episode.length or chunks.shape[1:] != (h, dims):
        raise EpisodeError(RejectReason.SHAPE_MISMATCH,
                           f"action chunks of shape {chunks.shape}: expected ({episode.length}, {h}, {dims}) "
                           f"for the tokenizer")
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
    derived["action.tokens"] = (f"FAST tokens ({tokenizer.config.version}, horizon {h}, "
                                f"scale {tokenizer.config.scale}, vocab {tokenizer.vocab_size}) of the chunk "
                                f"starting at each frame; pad id {tokenizer.pad_id}")
    return Episode(replace(episode.meta, derived=derived), frames, features, dict(episode.videos))
