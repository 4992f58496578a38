"""Forward kinematics of the robot parts we retarget to, evaluated batched in torch (no URDF at run time).

Every model is a small kinematic tree of revolute joints (`Chain`) evaluated batched in torch
(float64, CPU): `fk(q)` maps (B, n_actuated) joint angles to (B, n_joints, 4, 4) child-link frames,
differentiable, so the same code serves DLS IK (geometric Jacobian) and autograd hand retargeting.

The numbers (joint origins xyz/rpy, axes, limits, mimic ratios, named points) are data in
`schemas.embodiments` (`ChainSpec`, each citing the Unitree description it is transcribed from);
`chain(spec)` builds the torch `Chain` for one, once per process.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from schemas.embodiments.spec import ChainSpec, rpy_matrix, transform

DTYPE = torch.float64


@dataclass(frozen=True)
class Joint:
    """A revolute (or fixed, axis=None) joint: child frame = parent frame @ origin @ Rot(axis, q)."""

    name: str
    parent: int                     # index of the parent joint's child frame; -1 = chain base
    origin: np.ndarray              # 4x4
    axis: tuple[float, float, float] | None
    lower: float = 0.0
    upper: float = 0.0
    mimic: tuple[str, float, float] | None = None   # (source joint, multiplier, offset)


@dataclass
class Chain:
    """A kinematic tree. Actuated joints are revolute joints without `mimic`, in declaration order."""

    name: str
    joints: list[Joint]
    points: dict[str, tuple[int, tuple[float, float, float]]] = field(default_factory=dict)
    """Named points: (frame index, offset in that frame), e.g. fingertips."""

    def __post_init__(self) -> None:
        names = [j.name for j in self.joints]
        self.actuated = [i for i, j in enumerate(self.joints) if j.axis is not None and j.mimic is None]
        act_names = [names[i] for i in self.actuated]
        # full joint value = M @ q_actuated + b
        m = np.zeros((len(self.joints), len(self.actuated)))
        b = np.zeros(len(self.joints))
        for i, j in enumerate(self.joints):
            if j.axis is None:
                continue
            if j.mimic is None:
                m[i, act_names.index(j.name)] = 1.0
            else:
                src, mult, off = j.mimic
                m[i, act_names.index(src)] = mult
                b[i] = off
        self._m = torch.tensor(m, dtype=DTYPE)
        self._b = torch.tensor(b, dtype=DTYPE)
        self._origins = torch.tensor(np.stack([j.origin for j in self.joints]), dtype=DTYPE)
        self._axes = torch.tensor([j.axis if j.axis is not None else (0.0, 0.0, 0.0) for j in self.joints], dtype=DTYPE)
        self.lower = torch.tensor([self.joints[i].lower for i in self.actuated], dtype=DTYPE)
        self.upper = torch.tensor([self.joints[i].upper for i in self.actuated], dtype=DTYPE)
        for j in self.joints:
            if j.parent >= len(self.joints):
                raise ValueError(f"{self.name}: bad parent for {j.name}")

    @property
    def dof(self) -> int:
        return len(self.actuated)

    @property
    def joint_names(self) -> list[str]:
        return [self.joints[i].name for i in self.actuated]

    def clamp(self, q: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(q, self.upper), self.lower)

    def fk(self, q: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """(B, dof) -> (B, n_joints, 4, 4) child frames in the chain base frame (or `base` (B,4,4) @ ...)."""
        rot, pos = self.fk_rp(q)
        b = rot.shape[0]
        top = torch.cat([rot, pos[..., None]], dim=-1)
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=DTYPE).expand(b, rot.shape[1], 1, 4)
        frames = torch.cat([top, bottom], dim=-2)
        return frames if base is None else base[:, None] @ frames

    def fk_rp(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, dof) -> rotations (B, n, 3, 3) and positions (B, n, 3) of the child frames (cheaper than 4x4)."""
        q = torch.as_tensor(q, dtype=DTYPE)
        full = q @ self._m.T + self._b                                   # (B, n_joints)
        local_r = self._origins[:, :3, :3] @ axis_angle_matrix(self._axes, full)   # (B, n, 3, 3)
        rots: list[torch.Tensor] = []
        poss: list[torch.Tensor] = []
        for i, j in enumerate(self.joints):
            t = self._origins[i, :3, 3]
            if j.parent < 0:
                rots.append(local_r[:, i])
                poss.append(t.expand(q.shape[0], 3))
            else:
                pr, pp = rots[j.parent], poss[j.parent]
                rots.append(pr @ local_r[:, i])
                poss.append(pp + pr @ t)
        return torch.stack(rots, dim=1), torch.stack(poss, dim=1)

    def points_rp(self, rot: torch.Tensor, pos: torch.Tensor, names: list[str]) -> torch.Tensor:
        """Named point positions (B, len(names), 3) from `fk_rp` output."""
        if not hasattr(self, "_point_cache"):
            self._point_cache = {}
        key = tuple(names)
        if key not in self._point_cache:
            idx = [self.points[n][0] for n in names]
            off = torch.tensor([self.points[n][1] for n in names], dtype=DTYPE)
            self._point_cache[key] = (idx, off)
        idx, off = self._point_cache[key]
        base = torch.tensor([i < 0 for i in idx])
        safe = [max(i, 0) for i in idx]
        r = rot[:, safe]
        p = pos[:, safe]
        eye = torch.eye(3, dtype=DTYPE)
        r = torch.where(base[None, :, None, None], eye, r)
        p = torch.where(base[None, :, None], torch.zeros(3, dtype=DTYPE), p)
        return (r @ off[..., None])[..., 0] + p

    def point_positions(self, frames: torch.Tensor, names: list[str]) -> torch.Tensor:
        """World positions (B, len(names), 3) of named points given `fk` frames."""
        return self.points_rp(frames[..., :3, :3], frames[..., :3, 3], names)


def axis_angle_matrix(axes: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rodrigues: axes (N, 3) unit (or zero = identity), angles (B, N) -> (B, N, 3, 3)."""
    c, s = torch.cos(angles)[..., None, None], torch.sin(angles)[..., None, None]
    x, y, z = axes[:, 0], axes[:, 1], axes[:, 2]
    zero = torch.zeros_like(x)
    k = torch.stack([torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1),
                     torch.stack([-y, x, zero], -1)], -2)                # (N, 3, 3)
    eye = torch.eye(3, dtype=axes.dtype)
    return eye + s * k + (1 - c) * (k @ k)


# ------------------------------------------------------------------------------------ from the tables
_BUILT: dict[int, tuple[ChainSpec, Chain]] = {}


def chain(spec: ChainSpec) -> Chain:
    """The torch `Chain` of a `schemas.embodiments` chain table (built once per process and table)."""
    hit = _BUILT.get(id(spec))
    if hit is None or hit[0] is not spec:
        joints = [Joint(j.name, j.parent, j.origin(), j.axis, j.lower, j.upper, j.mimic) for j in spec.joints]
        hit = _BUILT[id(spec)] = (spec, Chain(spec.name, joints, dict(spec.points)))
    return hit[1]


__all__ = ["DTYPE", "Joint", "Chain", "chain", "axis_angle_matrix", "rpy_matrix", "transform"]
