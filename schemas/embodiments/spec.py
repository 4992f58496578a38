"""The data types an embodiment is made of: kinematic chains, a hand, a body, and their combination.

Everything here is plain data (numpy only), so every package can read a robot's tables; the torch
FK/IK of `converters.retarget` builds its `Chain` objects from `ChainSpec`, the teleop mapper and the
readers take joint orders, limits and the map into the Ψ₀ action / state from `Embodiment`.

Why the map lives here: the model trains on one 36-D action (`schemas.actions.PSI0_ACTION`) whose
hand blocks are 7 slots per side and whose arm blocks are 7 joints per side. Each configuration says
how its native joints fill those slots (Dex3-1: as is; Inspire: thumb -> little, one zero pad), so the
Humanoid Everyday reader, the retargeting stage and the teleop mapper all write the same layout.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

import numpy as np

from schemas.spaces import Space

SIDES = ("left", "right")


# ------------------------------------------------------------------------------------------ geometry
def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF fixed-axis rpy -> rotation matrix (Rz(yaw) @ Ry(pitch) @ Rx(roll))."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def transform(xyz=(0.0, 0.0, 0.0), rpy=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 homogeneous transform of a URDF joint origin."""
    out = np.eye(4)
    out[:3, :3] = rpy_matrix(*rpy)
    out[:3, 3] = xyz
    return out


def joint_space(name: str, joints: list[tuple[str, float, float]],
                slices: dict[str, tuple[int, int]] | None = None) -> Space:
    """A `Space` from (joint name, lower, upper) rows."""
    return Space(name, tuple(j for j, _, _ in joints), slices or {},
                 tuple(lo for _, lo, _ in joints), tuple(hi for _, _, hi in joints))


# ------------------------------------------------------------------------------------------ chains
Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class JointSpec:
    """A revolute (or fixed: axis None) joint as a URDF states it: child = parent @ origin @ Rot(axis, q)."""

    name: str
    parent: int                          # index of the parent joint's child frame; -1 = chain base
    xyz: Vec3 = (0.0, 0.0, 0.0)
    rpy: Vec3 = (0.0, 0.0, 0.0)
    axis: Vec3 | None = None
    lower: float = 0.0
    upper: float = 0.0
    mimic: tuple[str, float, float] | None = None     # (source joint, multiplier, offset)

    def origin(self) -> np.ndarray:
        return transform(self.xyz, self.rpy)


@dataclass(frozen=True)
class ChainSpec:
    """A kinematic tree of revolute joints plus named points (fingertips, wrist, ...).

    Actuated joints are the revolute joints without `mimic`, in declaration order; that order is the
    hardware order of the part the chain models."""

    name: str
    joints: tuple[JointSpec, ...]
    points: Mapping[str, tuple[int, Vec3]] = field(default_factory=dict)
    source: str = ""                     # the published description the numbers are transcribed from

    def __post_init__(self) -> None:
        names = [j.name for j in self.joints]
        if len(set(names)) != len(names):
            raise ValueError(f"chain {self.name}: duplicate joint names")
        actuated = set(self.actuated)
        for i, j in enumerate(self.joints):
            if not -1 <= j.parent < len(self.joints) or j.parent == i:
                raise ValueError(f"chain {self.name}: bad parent for {j.name}")
            if j.mimic is not None and j.mimic[0] not in actuated:
                raise ValueError(f"chain {self.name}: {j.name} mimics {j.mimic[0]}, not an actuated joint")
        for point, (frame, _) in self.points.items():
            if not -1 <= frame < len(self.joints):
                raise ValueError(f"chain {self.name}: point {point} on missing frame {frame}")

    @property
    def actuated(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints if j.axis is not None and j.mimic is None)

    @property
    def dof(self) -> int:
        return len(self.actuated)

    def limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the actuated joints, float64."""
        act = [j for j in self.joints if j.axis is not None and j.mimic is None]
        return np.array([j.lower for j in act]), np.array([j.upper for j in act])


# ------------------------------------------------------------------------------------------ hands
@dataclass(frozen=True)
class HandSide:
    """One side's hand as the retargeting sees it."""

    joints: Space                        # native joints, hardware order, with limits
    chain: ChainSpec                     # FK in the palm frame; actuated order == `joints` order
    model_side: str                      # chirality of the human hand the chain is shaped like
    mirror_input: bool                   # mirror human keypoints first (a left hand on a right-hand chain)
    finger_map: tuple[tuple[str, str], ...]   # (robot finger, human finger), the retargeting's finger order


@dataclass(frozen=True)
class HandDDS:
    """How Unitree's DDS drivers talk to this hand (topic per side, motors, PD gains)."""

    cmd_topic: str                       # format string with {side}
    state_topic: str
    motors: int
    kp: float
    kd: float


@dataclass(frozen=True)
class HandSpec:
    """A dexterous hand type: both sides, how its joints fill a Ψ₀ hand block, how drivers store it."""

    name: str                            # model-name prefix, e.g. "dex3" -> models "dex3_left", "dex3_right"
    title: str                           # for messages, e.g. "Dex3-1"
    left: HandSide
    right: HandSide
    pinch: tuple[str, ...]               # robot fingers paired with the thumb in the retargeting objective
    slots: tuple[int | None, ...]        # Ψ₀ hand-block slot -> native joint index (None = zero pad)
    stored_sides: tuple[str, ...] = SIDES   # order of the sides in a stored two-hand vector (HE hand_state)
    stored_as_closure: bool = False      # stored values are 0..1 closures (1 = open), not joint angles
    dds: HandDDS | None = None           # None: no DDS driver in the project
    conversion: str = ""                 # how stored values become the hand block, when not as is (meta.derived)
    source: str = ""

    def __post_init__(self) -> None:
        for side in SIDES:
            hs = self.side(side)
            if hs.chain.actuated != tuple(hs.joints.dims):
                raise ValueError(f"hand {self.name}: {side} chain actuates {hs.chain.actuated}, "
                                 f"the joint table lists {hs.joints.dims}")
            lo, hi = hs.chain.limits()
            if not (np.allclose(lo, hs.joints.low) and np.allclose(hi, hs.joints.high)):
                raise ValueError(f"hand {self.name}: {side} chain limits differ from the joint table")
        used = [i for i in self.slots if i is not None]
        if sorted(used) != list(range(self.dof)):
            raise ValueError(f"hand {self.name}: slots {self.slots} must place every native joint exactly once")

    def side(self, side: str) -> HandSide:
        if side not in SIDES:
            raise ValueError(f"unknown side {side!r}")
        return self.left if side == "left" else self.right

    @property
    def dof(self) -> int:
        """Native joints per hand."""
        return self.left.joints.size

    @property
    def stored_size(self) -> int:
        """Width of a stored two-hand vector (e.g. Humanoid Everyday `hand_state`)."""
        return self.dof * len(self.stored_sides)

    @cached_property
    def _slot_map(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(filled slots, their native joints, slots == native order): one gather per conversion instead of a
        loop over slots (the teleop mapper converts each hand every tick)."""
        filled = np.array([i for i, n in enumerate(self.slots) if n is not None], np.intp)
        native = np.array([n for n in self.slots if n is not None], np.intp)
        return filled, native, list(self.slots) == list(range(self.dof))

    def to_slots(self, q: np.ndarray) -> np.ndarray:
        """(..., dof) native joint values -> (..., len(slots)) Ψ₀ hand-block values (pads are 0)."""
        q = np.asarray(q)
        dtype = np.result_type(q.dtype, np.float64)
        filled, native, identity = self._slot_map
        if identity:
            return q.astype(dtype, copy=True)
        out = np.zeros(q.shape[:-1] + (len(self.slots),), dtype=dtype)
        out[..., filled] = q[..., native]
        return out

    def from_slots(self, block: np.ndarray) -> np.ndarray:
        """Inverse of `to_slots`: (..., len(slots)) -> (..., dof)."""
        block = np.asarray(block)
        filled, native, _ = self._slot_map
        out = np.zeros(block.shape[:-1] + (self.dof,), dtype=np.result_type(block.dtype, np.float64))
        out[..., native] = block[..., filled]
        return out

    def slot_bounds(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """float32 (low, high) of one side's hand block (pads bounded to 0)."""
        lo, hi = self.side(side).joints.bounds()
        low = np.zeros(len(self.slots), np.float32)
        high = np.zeros(len(self.slots), np.float32)
        for slot, native in enumerate(self.slots):
            if native is not None:
                low[slot], high[slot] = lo[native], hi[native]
        return low, high

    def stored_to_angles(self, stored: np.ndarray, side: str) -> np.ndarray:
        """One side's joint angles (N, dof) from a stored two-hand vector (N, stored_size).

        Closure-stored hands (Inspire: 0..1, 1 = open) map to `lo + (1 - q) (hi - lo)` within the joint
        limits, q clipped to [0, 1] first."""
        start = self.dof * self.stored_sides.index(side)
        q = stored[:, start:start + self.dof]
        if not self.stored_as_closure:
            return q
        lo, hi = self.side(side).joints.bounds()
        q = np.clip(q, 0.0, 1.0)
        return lo + (1.0 - q) * (hi - lo)

    def stored_names(self) -> tuple[str, ...]:
        """`<side>.<joint>` names of a stored two-hand vector, in stored order."""
        return tuple(f"{s}.{j}" for s in self.stored_sides for j in self.side(s).joints.dims)


# ------------------------------------------------------------------------------------------ arms, body
@dataclass(frozen=True)
class LegGeometry:
    """The sagittal leg lengths a pelvis height is computed from (no full leg chain needed): pelvis ->
    hip-pitch axis drop, thigh, shank, ankle -> sole; and the pelvis height of the lower-body tracker's
    nominal stance (the height its `torso_height` command calls NOMINAL_TORSO_HEIGHT)."""

    hip_drop: float
    thigh: float
    shank: float
    sole: float
    stance_pelvis_height: float
    source: str = ""


@dataclass(frozen=True)
class ArmIK:
    """What the arm IK solves on: torso -> wrist chains, reference poses, multi-start seeds."""

    title: str                           # e.g. "G1"
    chains: Mapping[str, ChainSpec]      # side -> chain (base = torso frame, last frame = wrist)
    poses: Mapping[str, Mapping[str, tuple[float, ...]]]   # pose name -> side -> joint vector
    rest: str                            # the pose the redundant arm is pulled towards ("ready")
    seeds: tuple[tuple[float, ...], ...]  # multi-start seeds of the episode solver (left-arm convention)
    source: str = ""

    def __post_init__(self) -> None:
        if self.rest not in self.poses:
            raise ValueError(f"arm IK {self.title}: rest pose {self.rest!r} not among {sorted(self.poses)}")
        for name, per_side in self.poses.items():
            for side in SIDES:
                if len(per_side[side]) != self.chains[side].dof:
                    raise ValueError(f"arm IK {self.title}: pose {name}/{side} has {len(per_side[side])} joints")
        for seed in self.seeds:
            if len(seed) != self.chains["left"].dof:
                raise ValueError(f"arm IK {self.title}: seed of {len(seed)} joints")

    @property
    def dof(self) -> int:
        return self.chains["left"].dof

    def pose(self, name: str, side: str) -> np.ndarray:
        if name not in self.poses:
            raise ValueError(f"unknown reference pose {name!r}; choose from {sorted(self.poses)}")
        return np.asarray(self.poses[name][side], np.float64)


@dataclass(frozen=True)
class BodySpec:
    """A humanoid body: its joints in SDK motor order and the parts readers and drivers use."""

    name: str                            # e.g. "g1_29dof"
    title: str                           # e.g. "G1"
    family: str                          # lower-case key that Humanoid Everyday's `robot_type` contains
    joints: Space                        # every body joint, SDK order; slices left_leg ... arms
    arms: Space                          # both arms, left then right (datasets' `arm_state` order)
    legs_waist: Space                    # legs then waist, SDK order (Humanoid Everyday `leg_state`)
    stock_hand: str                      # the hand a dataset means when it names only the body
    arm_ik: ArmIK | None = None          # None: the project has no kinematics for this body's arms
    arm_kp: tuple[float, ...] | None = None   # per arm joint (both arms), PD gains drivers command with
    arm_kd: tuple[float, ...] | None = None
    color_intrinsics: tuple[float, float, float, float] | None = None   # head camera fx, fy, cx, cy
    source: str = ""
    arm_fk: Mapping[str, ChainSpec] | None = None   # the body's own arm chains when IK uses a stand-in or none
    legs: LegGeometry | None = None      # None: no leg lengths (a pelvis height cannot be derived)

    def __post_init__(self) -> None:
        if self.arms.size % 2 or self.joints.size < self.arms.size:
            raise ValueError(f"body {self.name}: arms {self.arms.size} not two equal arms within the body")
        for gains in (self.arm_kp, self.arm_kd):
            if gains is not None and len(gains) != self.arms.size:
                raise ValueError(f"body {self.name}: {len(gains)} arm gains for {self.arms.size} arm joints")

    @property
    def arm_dof(self) -> int:
        """Joints per arm."""
        return self.arms.size // 2


# ------------------------------------------------------------------------------------------ embodiment
@dataclass(frozen=True)
class Embodiment:
    """One robot/hand configuration: a body, a hand type, and what the pipeline does with them.

    `name` is written into shards (`EpisodeMeta.embodiment`): it never changes once data exists.
    """

    name: str
    description: str
    body: BodySpec
    hand: HandSpec
    aliases: tuple[str, ...] = ()        # other accepted spellings (the hyphenated name always is)
    arm_ik: ArmIK | None = None          # None: the body's own arm IK
    notes: tuple[str, ...] = ()          # caveats a user must know (e.g. a stand-in arm model)
    hand_mount: Mapping[str, tuple[Vec3, Vec3]] | None = None
    """Per side, the hand chain's base frame in the arm chain's last (wrist) frame as URDF (xyz, rpy);
    None: identity at the arm chain's `palm` point. A mirrored hand (`HandSide.mirror_input`) is
    mounted as the mirror image its chain is evaluated in."""

    def __post_init__(self) -> None:
        from schemas.actions import PSI0_ACTION  # noqa: PLC0415  (actions imports this package's parts)
        block = PSI0_ACTION.slices["left_hand"]
        if len(self.hand.slots) != block[1] - block[0]:
            raise ValueError(f"{self.name}: {len(self.hand.slots)} hand slots, the action has {block[1] - block[0]}")
        arm = PSI0_ACTION.slices["left_arm"]
        if self.body.arm_dof != arm[1] - arm[0]:
            raise ValueError(f"{self.name}: {self.body.arm_dof}-DoF arms, the action has {arm[1] - arm[0]} slots")
        if self.ik is not None and self.ik.dof != self.body.arm_dof:
            raise ValueError(f"{self.name}: arm IK has {self.ik.dof} joints, the body's arms {self.body.arm_dof}")

    @property
    def spellings(self) -> tuple[str, ...]:
        hyphen = self.name.replace("_", "-")
        return (self.name,) + ((hyphen,) if hyphen != self.name else ()) + tuple(
            a for a in self.aliases if a not in (self.name, hyphen))

    @property
    def arm_chains(self) -> Mapping[str, ChainSpec] | None:
        """The body's own torso -> wrist chains (forward kinematics of recorded arm joints), never a stand-in."""
        if self.body.arm_fk is not None:
            return self.body.arm_fk
        return self.body.arm_ik.chains if self.body.arm_ik is not None else None

    def mount(self, side: str) -> np.ndarray:
        """4x4: the hand chain base in the arm chain's wrist frame (see `hand_mount`)."""
        if self.hand_mount is not None:
            xyz, rpy = self.hand_mount[side]
            return transform(xyz, rpy)
        chains = self.arm_chains
        if chains is None or "palm" not in chains[side].points:
            raise ValueError(f"{self.name}: no hand mount and no arm chain `palm` point")
        return transform(chains[side].points["palm"][1])

    @property
    def ik(self) -> ArmIK | None:
        """The arm kinematics IK solves on (the body's own unless a stand-in is declared)."""
        return self.arm_ik if self.arm_ik is not None else self.body.arm_ik

    def action_space(self) -> Space:
        """PSI0_ACTION with this robot's limits: hand slots from the hand table, arms from the body."""
        from schemas.actions import PSI0_ACTION  # noqa: PLC0415
        return _with_limits(PSI0_ACTION, f"{PSI0_ACTION.name}.{self.name}", self)

    def state_space(self) -> Space:
        """PSI0_STATE with this robot's hand and arm limits."""
        from schemas.actions import PSI0_STATE  # noqa: PLC0415
        return _with_limits(PSI0_STATE, f"{PSI0_STATE.name}.{self.name}", self)

    def hands_to_slots(self, q: Mapping[str, np.ndarray]) -> np.ndarray:
        """{side: (N, dof) native angles} -> (N, 2 * slots) Ψ₀ hands block (left, then right)."""
        return np.concatenate([self.hand.to_slots(q[side]) for side in SIDES], axis=-1)

    def stored_hands_to_slots(self, stored: np.ndarray) -> np.ndarray:
        """A stored two-hand vector (N, hand.stored_size) -> the Ψ₀ hands block (N, 2 * slots)."""
        from schemas.actions import PSI0_HANDS  # noqa: PLC0415
        out = np.zeros((len(stored), PSI0_HANDS.size))
        for side in SIDES:
            out[:, PSI0_HANDS.slice(f"{side}_hand")] = self.hand.to_slots(self.hand.stored_to_angles(stored, side))
        return out

    def describe(self) -> dict[str, Any]:
        """The dimensions `psi0 embodiments` lists."""
        from schemas.actions import PSI0_ACTION, PSI0_STATE, PSI0_STATE_USED  # noqa: PLC0415
        ik = self.ik
        chains = {}
        if ik is not None:
            for side in SIDES:
                c = ik.chains[side]
                chains[f"{side}_arm"] = {"chain": c.name, "dof": c.dof, "joints": list(c.actuated)}
        for side in SIDES:
            c = self.hand.side(side).chain
            chains[f"{side}_hand"] = {"chain": c.name, "dof": c.dof, "joints": list(c.actuated),
                                      "mirrored": self.hand.side(side).mirror_input}
        return {
            "name": self.name, "spellings": list(self.spellings), "description": self.description,
            "body": self.body.name, "hand": self.hand.name,
            "body_dof": self.body.joints.size, "arm_dof": self.body.arm_dof, "hand_dof": self.hand.dof,
            "hand_slots": len(self.hand.slots),
            "hand_slot_joints": [None if i is None else self.hand.left.joints.dims[i] for i in self.hand.slots],
            "hand_stored": {"size": self.hand.stored_size, "sides": list(self.hand.stored_sides),
                            "closure": self.hand.stored_as_closure},
            "action_dim": PSI0_ACTION.size, "state_dim": PSI0_STATE.size, "state_used": PSI0_STATE_USED,
            "arm_ik": None if ik is None else ik.title, "arm_ik_stand_in": self.arm_ik is not None,
            "chains": chains, "color_intrinsics": self.body.color_intrinsics, "notes": list(self.notes),
        }


def _with_limits(space: Space, name: str, emb: Embodiment) -> Space:
    low, high = (b.copy() for b in space.bounds())
    for side in SIDES:
        hand = space.slice(f"{side}_hand")
        low[hand], high[hand] = emb.hand.slot_bounds(side)
        arm = space.slice(f"{side}_arm")
        lo, hi = emb.body.arms.bounds()
        part = slice(0, emb.body.arm_dof) if side == "left" else slice(emb.body.arm_dof, 2 * emb.body.arm_dof)
        low[arm], high[arm] = lo[part], hi[part]
    return Space(name, space.dims, dict(space.slices), tuple(low.tolist()), tuple(high.tolist()))
