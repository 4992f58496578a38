"""Forward kinematics of an embodiment chain table (`schemas.embodiments.ChainSpec`) in numpy.

The torch `Chain` of `converters.retarget.kinematics` serves IK and autograd retargeting; readers that
only need where a recorded joint vector puts the wrist and fingertips (the robot side of the 48-D hand
action) use this one and never import torch. Same convention: child = parent @ origin @ Rot(axis, q),
mimic joints follow `multiplier * q + offset`; tests check both agree.
"""
from __future__ import annotations

import numpy as np

from schemas.embodiments.spec import ChainSpec


def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues for one unit axis (3,) and angles (T,) -> (T, 3, 3)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def joint_values(spec: ChainSpec, q: np.ndarray) -> np.ndarray:
    """(T, dof) actuated angles -> (T, n_joints) every joint's value (mimics filled, fixed joints 0)."""
    q = np.asarray(q, np.float64)
    names = spec.actuated
    out = np.zeros((q.shape[0], len(spec.joints)))
    for i, j in enumerate(spec.joints):
        if j.axis is None:
            continue
        if j.mimic is None:
            out[:, i] = q[:, names.index(j.name)]
        else:
            src, mult, off = j.mimic
            out[:, i] = mult * q[:, names.index(src)] + off
    return out


def chain_frames(spec: ChainSpec, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, dof) -> rotations (T, n, 3, 3) and positions (T, n, 3) of every joint's child frame, chain base frame."""
    values = joint_values(spec, q)
    t = values.shape[0]
    rots, poss = [], []
    for i, j in enumerate(spec.joints):
        origin = j.origin()
        local = np.broadcast_to(origin[:3, :3], (t, 3, 3))
        if j.axis is not None:
            local = local @ _axis_angle(np.asarray(j.axis, np.float64), values[:, i])
        if j.parent < 0:
            rots.append(np.array(local))
            poss.append(np.broadcast_to(origin[:3, 3], (t, 3)).copy())
        else:
            pr, pp = rots[j.parent], poss[j.parent]
            rots.append(pr @ local)
            poss.append(pp + pr @ origin[:3, 3])
    return np.stack(rots, axis=1), np.stack(poss, axis=1)


def points(spec: ChainSpec, rots: np.ndarray, poss: np.ndarray, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Named points (T, len(names), 3) of `chain_frames` output (a point on frame -1 sits in the base frame)."""
    out = []
    for name in names:
        frame, offset = spec.points[name]
        off = np.asarray(offset, np.float64)
        if frame < 0:
            out.append(np.broadcast_to(off, (rots.shape[0], 3)))
        else:
            out.append(rots[:, frame] @ off + poss[:, frame])
    return np.stack(out, axis=1)


def end_pose(spec: ChainSpec, q: np.ndarray) -> np.ndarray:
    """(T, dof) -> (T, 4, 4) pose of the chain's last frame (an arm chain: the wrist) in the chain base."""
    rots, poss = chain_frames(spec, q)
    out = np.tile(np.eye(4), (rots.shape[0], 1, 1))
    out[:, :3, :3] = rots[:, -1]
    out[:, :3, 3] = poss[:, -1]
    return out
