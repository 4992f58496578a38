"""Forward kinematics of the robot parts we retarget to, authored in the project (no URDF at run time).

Every model is a small kinematic tree of revolute joints (`Chain`) evaluated batched in torch
(float64, CPU): `fk(q)` maps (B, n_actuated) joint angles to (B, n_joints, 4, 4) child-link frames,
differentiable, so the same code serves DLS IK (geometric Jacobian) and autograd hand retargeting.

Numbers (joint origins xyz/rpy, axes, limits, mimic ratios) are transcribed from Unitree's public
robot descriptions:
- G1 arms: unitreerobotics/unitree_ros `robots/g1_description/g1_29dof.urdf` (torso_link ->
  {side}_shoulder_pitch ... {side}_wrist_yaw joints).
- Dex3-1: unitreerobotics/avp_teleoperate `assets/unitree_hand/unitree_dex3_{left,right}.urdf`
  (palm -> zero/one/two thumb, three/four middle, five/six index; fingertip offsets from the
  file's `thumb_tip_joint` / `middle_joint` / `index_joint` auxiliary links).
- Inspire: unitreerobotics/avp_teleoperate `assets/inspire_hand/inspire_hand_right.urdf`
  (6 actuated joints + mimic joints: finger intermediate = 1.0 x proximal, thumb intermediate =
  1.6 x pitch, thumb distal = 2.4 x pitch). The left hand is handled as the mirror image of the right.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

DTYPE = torch.float64


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF fixed-axis rpy -> rotation matrix (Rz(yaw) @ Ry(pitch) @ Rx(roll))."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def transform(xyz=(0.0, 0.0, 0.0), rpy=(0.0, 0.0, 0.0)) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = rpy_matrix(*rpy)
    out[:3, 3] = xyz
    return out


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


# ------------------------------------------------------------------------------------ G1 arm
_Y, _X, _Z = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def g1_arm(side: str) -> Chain:
    """G1 7-DoF arm, torso_link frame -> wrist_yaw_link (g1_29dof.urdf). Point `wrist` = wrist_yaw_link
    origin, `palm` = the fixed hand-mount offset of `{side}_hand_palm_joint`."""
    s = 1.0 if side == "left" else -1.0
    roll_lim = (-1.5882, 2.2515) if side == "left" else (-2.2515, 1.5882)
    joints = [
        Joint(f"{side}_shoulder_pitch", -1, transform((0.0039563, 0.10022 if side == "left" else -0.10021, 0.23778),
                                                      (s * 0.27931, 5.4949e-05, -s * 0.00019159)), _Y, -3.0892, 2.6704),
        Joint(f"{side}_shoulder_roll", 0, transform((0, s * 0.038, -0.013831), (-s * 0.27925, 0, 0)), _X, *roll_lim),
        Joint(f"{side}_shoulder_yaw", 1, transform((0, s * 0.00624, -0.1032)), _Z, -2.618, 2.618),
        Joint(f"{side}_elbow", 2, transform((0.015783, 0, -0.080518)), _Y, -1.0472, 2.0944),
        Joint(f"{side}_wrist_roll", 3, transform((0.100, s * 0.00188791, -0.010)), _X, -1.972222054, 1.972222054),
        Joint(f"{side}_wrist_pitch", 4, transform((0.038, 0, 0)), _Y, -1.614429558, 1.614429558),
        Joint(f"{side}_wrist_yaw", 5, transform((0.046, 0, 0)), _Z, -1.614429558, 1.614429558),
    ]
    return Chain(f"g1_{side}_arm", joints, {"wrist": (6, (0.0, 0.0, 0.0)), "palm": (6, (0.0415, s * 0.003, 0.0))})


# ------------------------------------------------------------------------------------ Dex3-1
def dex3(side: str) -> Chain:
    """Dex3-1 hand in its palm-link frame; actuated order = hardware order (thumb 0..2, middle 0..1,
    index 0..1). Points: `{thumb,middle,index}_tip`, finger bases `{middle,index}_base`, `wrist` = palm origin,
    `{finger}_mid` = the second-phalanx joint (PIP-like)."""
    s = 1.0 if side == "left" else -1.0

    def lim(lo: float, hi: float) -> tuple[float, float]:   # right hand mirrors the left's range
        return (lo, hi) if side == "left" else (-hi, -lo)

    mid_z, idx_z = -s * 0.0285, s * 0.0285      # left: three (middle) at z=-0.0285, five (index) at +0.0285
    joints = [
        Joint("thumb_0", -1, transform((0.028, 0, 0)), _Y, -1.04719755, 1.04719755),
        Joint("thumb_1", 0, transform((0, -s * 0.0246, 0)), _Z, *lim(-0.72431163, 1.04719755)),
        Joint("thumb_2", 1, transform((0.0055, -s * 0.0528, 0)), _Z, *lim(0.0, 2.09439510)),
        Joint("middle_0", -1, transform((0.1, -s * 0.0017, mid_z)), _Z, *lim(-1.83259571, 0.19198621)),
        Joint("middle_1", 3, transform((0.0528, -s * 0.0055, 0)), _Z, *lim(-2.09439510, 0.0)),
        Joint("index_0", -1, transform((0.1, -s * 0.0017, idx_z)), _Z, *lim(-1.83259571, 0.19198621)),
        Joint("index_1", 5, transform((0.0528, -s * 0.0055, 0)), _Z, *lim(-2.09439510, 0.0)),
    ]
    points = {
        "wrist": (-1, (0.0, 0.0, 0.0)),
        "thumb_tip": (2, (0.003, -s * 0.06, 0.0)), "thumb_mid": (2, (0.0, 0.0, 0.0)),
        "middle_tip": (4, (0.06, -s * 0.003, 0.0)), "middle_mid": (4, (0.0, 0.0, 0.0)), "middle_base": (3, (0.0, 0.0, 0.0)),
        "index_tip": (6, (0.06, -s * 0.003, 0.0)), "index_mid": (6, (0.0, 0.0, 0.0)), "index_base": (5, (0.0, 0.0, 0.0)),
    }
    return Chain(f"dex3_{side}", joints, points)


# ------------------------------------------------------------------------------------ Inspire
def inspire_right() -> Chain:
    """Inspire hand (right) in R_hand_base_link; actuated order = hardware order
    (pinky, ring, middle, index, thumb_bend, thumb_rotation). The left hand = mirror image."""
    finger_mid = transform((-0.0024229, 0.032041, -0.001))
    joints = [
        Joint("pinky", -1, transform((0.00028533, -0.13571, 0.025488), (3.0369, 0, 0)), _Z, 0.0, 1.7),
        Joint("pinky_intermediate", 0, finger_mid, _Z, 0.0, 1.7, ("pinky", 1.0, 0.0)),
        Joint("ring", -1, transform((0.00028533, -0.13691, 0.0062872), (3.0892, 0, 0)), _Z, 0.0, 1.7),
        Joint("ring_intermediate", 2, finger_mid, _Z, 0.0, 1.7, ("ring", 1.0, 0.0)),
        Joint("middle", -1, transform((0.00028533, -0.1371, -0.01295), (-3.1416, 0, 0)), _Z, 0.0, 1.7),
        Joint("middle_intermediate", 4, finger_mid, _Z, 0.0, 1.7, ("middle", 1.0, 0.0)),
        Joint("index", -1, transform((0.00028533, -0.13653, -0.032268), (-3.1067, 0, 0)), _Z, 0.0, 1.7),
        Joint("index_intermediate", 6, transform((-0.0026138, 0.032026, -0.001)), _Z, 0.0, 1.7, ("index", 1.0, 0.0)),
        # thumb: yaw (rotation) first in the tree, pitch (bend) on it, then two mimic joints
        Joint("thumb_rotation_joint", -1, transform((-0.01696, -0.0691, -0.02045), (1.5708, -1.5708, 0)),
              (0.0, 0.0, -1.0), -0.1, 1.3, ("thumb_rotation", 1.0, 0.0)),
        Joint("thumb_bend", 8, transform((-0.0088099, 0.010892, -0.00925), (1.5708, 0, 2.8587)), _Z, 0.0, 0.5),
        Joint("thumb_intermediate", 9, transform((0.04407, 0.034553, -0.0008)), _Z, 0.0, 0.8, ("thumb_bend", 1.6, 0.0)),
        Joint("thumb_distal", 10, transform((0.020248, 0.010156, -0.0012)), _Z, 0.0, 1.2, ("thumb_bend", 2.4, 0.0)),
    ]
    # `thumb_rotation` must be actuated (last, hardware order): declare it as a zero-origin virtual joint
    # at the end and make the real thumb-yaw joint mimic it 1:1.
    joints.append(Joint("thumb_rotation", -1, np.eye(4), _Z, -0.1, 1.3))
    points = {
        "wrist": (-1, (0.0, 0.0, 0.0)),
        "pinky_tip": (1, (-0.002, 0.032, -0.004)), "ring_tip": (3, (-0.002, 0.04, -0.004)),
        "middle_tip": (5, (-0.005, 0.045, -0.004)), "index_tip": (7, (-0.005, 0.04, -0.004)),
        "thumb_tip": (11, (0.015, 0.013, -0.004)),
        "pinky_base": (0, (0.0, 0.0, 0.0)), "ring_base": (2, (0.0, 0.0, 0.0)),
        "middle_base": (4, (0.0, 0.0, 0.0)), "index_base": (6, (0.0, 0.0, 0.0)),
        "pinky_mid": (1, (0.0, 0.0, 0.0)), "ring_mid": (3, (0.0, 0.0, 0.0)),
        "middle_mid": (5, (0.0, 0.0, 0.0)), "index_mid": (7, (0.0, 0.0, 0.0)),
        "thumb_mid": (10, (0.0, 0.0, 0.0)),
    }
    return Chain("inspire_right", joints, points)
