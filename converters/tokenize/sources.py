"""Action chunks from per-frame arrays: the chunk starting at every frame.

Reading shards or EgoDex files to get those arrays is not done here (converters/ may import only
schemas/): `psi0 tokenizer fit` lives in `pipelines/tokenizer_fit.py`.
"""
from __future__ import annotations

import numpy as np


def frame_chunks(values: np.ndarray, horizon: int) -> np.ndarray:
    """(T, D) -> (T, H, D): the chunk starting at every frame, end-padded by repeating the last frame."""
    t = len(values)
    idx = np.minimum(np.arange(t)[:, None] + np.arange(horizon)[None], t - 1)
    return values[idx]
