"""Smooth, physically plausible synthetic motion for the sample writers.

- `min_jerk_path`: piecewise minimum-jerk interpolation through waypoints (how people reach:
  bell-shaped speed, zero velocity and acceleration at each waypoint).
- `hand_pose`: a 25-joint human hand (EgoDex names/topology) as rigid 4x4 world transforms, built
  from a wrist pose and a grasp closure in [0, 1] by rotating finger segments of anatomical length
  about their flexion axes — every joint transform is rigid by construction.
"""
from __future__ import annotations

import numpy as np

from schemas.embodiments import human_hand_joints


def min_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile 10s^3 - 15s^4 + 6s^5 on s in [0, 1]."""
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s * s)


def min_jerk_path(times: np.ndarray, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values (K, D) at knot times (K,) -> (T, D) at `times`, minimum-jerk between knots, held outside."""
    times = np.asarray(times, np.float64)
    idx = np.clip(np.searchsorted(knots, times, side="right") - 1, 0, len(knots) - 2)
    t0, t1 = knots[idx], knots[idx + 1]
    s = min_jerk((times - t0) / np.maximum(t1 - t0, 1e-9))[:, None]
    return values[idx] * (1 - s) + values[idx + 1] * s


def random_knots(rng: np.random.Generator, duration: float, n_segments: int) -> np.ndarray:
    """Knot times 0 = k0 < ... < kN = duration with segment lengths varying by ±30 %."""
    seg = rng.uniform(0.7, 1.3, n_segments)
    return np.concatenate([[0.0], np.cumsum(seg / seg.sum() * duration)])


# ------------------------------------------------------------------------------------------ rotations
def rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def transform(R: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(..., 3, 3), (..., 3) -> (..., 4, 4)."""
    T = np.zeros(R.shape[:-2] + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = p
    T[..., 3, 3] = 1.0
    return T


# ------------------------------------------------------------------------------------------ the hand
# Hand frame: z along the fingers, y out of the back of the hand (palm faces -y), x towards the
# thumb for the right hand (mirrored for the left). Lengths in metres (adult hand).
_FINGERS = {  # name: (knuckle x offset, knuckle z, metacarpal->knuckle, three phalanx lengths, spread rad)
    "IndexFinger": (0.024, 0.090, (0.045, 0.026, 0.022), 0.10),
    "MiddleFinger": (0.006, 0.094, (0.050, 0.030, 0.024), 0.0),
    "RingFinger": (-0.012, 0.088, (0.047, 0.028, 0.022), -0.08),
    "LittleFinger": (-0.028, 0.078, (0.037, 0.021, 0.019), -0.18),
}
_FLEX = (1.25, 1.45, 0.95)       # MCP, PIP, DIP flexion at full closure (within human ranges)
_THUMB_LEN = (0.040, 0.032, 0.027)


def hand_pose(side: str, wrist: np.ndarray, closure: np.ndarray) -> dict[str, np.ndarray]:
    """World transforms (T, 4, 4) of the 25 joints of one hand, keyed by EgoDex joint name.

    wrist: (T, 4, 4) wrist pose in the world; closure: (T,) 0 = open flat hand, 1 = closed grasp.
    """
    mirror = 1.0 if side == "right" else -1.0
    g = np.asarray(closure, np.float64)
    n = len(g)
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    out: dict[str, np.ndarray] = {f"{side}Hand": wrist}

    def emit(name: str, R_local: np.ndarray, p_local: np.ndarray) -> None:
        R = wrist[:, :3, :3] @ R_local
        p = wrist[:, :3, 3] + np.einsum("nij,nj->ni", wrist[:, :3, :3], p_local)
        out[f"{side}{name}"] = transform(R, p)

    for finger, (x, z, lengths, spread) in _FINGERS.items():
        R = rot_y(np.full(n, mirror * spread * (1 - 0.6 * g)))     # fingers fan out when open
        base = np.tile([mirror * x * 0.55, 0.0, 0.015], (n, 1))
        emit(f"{finger}Metacarpal", eye.copy(), base)
        p = np.tile([mirror * x, 0.0, z], (n, 1))
        emit(f"{finger}Knuckle", R, p)
        for k, (joint, length) in enumerate(zip(("IntermediateBase", "IntermediateTip", "Tip"), lengths)):
            R = R @ rot_x(_FLEX[k] * g)
            p = p + np.einsum("nij,j->ni", R, [0.0, 0.0, length])
            emit(f"{finger}{joint}", R, p)

    # Thumb: leaves the palm sideways and forward, then swings towards the index as the hand closes.
    R = rot_y(mirror * (1.05 - 0.55 * g)) @ rot_z(mirror * -0.5) @ rot_x(0.25 + 0.35 * g)
    p = np.tile([mirror * 0.022, -0.012, 0.028], (n, 1))
    emit("ThumbKnuckle", R, p)
    for k, (joint, length) in enumerate(zip(("IntermediateBase", "IntermediateTip", "Tip"), _THUMB_LEN)):
        R = R @ rot_x((0.25, 0.55, 0.6)[k] * g)
        p = p + np.einsum("nij,j->ni", R, [0.0, 0.0, length])
        emit(f"Thumb{joint}", R, p)
    assert len(out) == 25 and set(out) == set(human_hand_joints(side))
    return out
