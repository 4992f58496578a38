"""Rotation encodings that are part of a stored representation (see `schemas.actions`)."""
from __future__ import annotations

import numpy as np


def rot6d(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): the first then the second column of each rotation matrix (the wrist
    rotation of HUMAN_ACTION_48; continuous, unlike Euler angles or quaternions)."""
    return np.concatenate([R[..., :, 0], R[..., :, 1]], axis=-1)
