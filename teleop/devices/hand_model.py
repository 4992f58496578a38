"""A parametric human hand: 21 MediaPipe landmarks from one closure value (0 open .. 1 fist).

Built in the palmar hand frame of `converters.retarget.hands.human_hand_frame` (x: wrist -> knuckles,
z: palm normal pointing palmar, y = z x x, i.e. towards the index for a left hand and towards the little
finger for a right hand), so the retargeting reads it exactly as it reads real hand tracking.
Segment lengths are for a 1.75 m adult and scale with stature.
"""
from __future__ import annotations

import numpy as np

# (knuckle y offset for a left hand, knuckle x, phalanx lengths MCP->PIP, PIP->DIP, DIP->tip), metres
_FINGERS = {
    "index": (0.026, 0.094, (0.045, 0.025, 0.021)),
    "middle": (0.008, 0.096, (0.050, 0.030, 0.023)),
    "ring": (-0.010, 0.090, (0.046, 0.028, 0.022)),
    "pinky": (-0.027, 0.082, (0.035, 0.020, 0.019)),
}
_FLEX_MAX = (1.45, 1.6, 1.0)          # MCP, PIP, DIP flexion at closure 1 (rad)
_THUMB_CMC = np.array([0.022, 0.022, 0.012])
_THUMB_LENGTHS = (0.042, 0.032, 0.027)   # CMC->MCP, MCP->IP, IP->tip


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def hand21(closure: float, side: str, stature: float = 1.75, spread: float = 0.0) -> np.ndarray:
    """(21, 3) MediaPipe-order landmarks in the palmar hand frame of a `side` hand."""
    c = float(np.clip(closure, 0.0, 1.0))
    ys = 1.0 if side == "left" else -1.0
    k = stature / 1.75
    out = np.zeros((21, 3))
    for n, (name, (y0, x0, lengths)) in enumerate(_FINGERS.items()):
        base = 5 + 4 * n
        p = np.array([x0, ys * y0 * (1.0 + spread), 0.0])
        out[base] = p
        theta = 0.0
        splay = ys * (y0 / 0.03) * 0.12 * (1.0 - c)   # fingers fan out a little when open
        for j, length in enumerate(lengths):
            theta += c * _FLEX_MAX[j] + (0.08 if j == 0 else 0.05)   # relaxed hands are slightly curled
            d = np.array([np.cos(theta) * np.cos(splay), np.sin(splay), np.sin(theta)])
            p = p + length * d
            out[base + 1 + j] = p
    # thumb: swings from the index side across the palm as the hand closes
    out[1] = _THUMB_CMC * np.array([1.0, ys, 1.0])
    open_dir = np.array([0.55, ys * 0.75, 0.25])
    closed_dir = np.array([0.55, -ys * 0.25, 0.8])
    d0 = _unit((1 - c) * open_dir + c * closed_dir)
    curl = np.array([0.0, -ys * 0.5, 1.0]) * (0.25 + 0.35 * c)   # each segment bends further into the palm
    p = out[1]
    for j, length in enumerate(_THUMB_LENGTHS):
        p = p + length * _unit(d0 + j * curl)
        out[2 + j] = p
    return out * k
