"""Hand postures and the optional grasp assist.

Capsule fingers under PD control hold light objects by friction only some of the time. The grasp
assist (off unless asked for; every eval/benchmark log carries the flag) makes a grasp rigid: when a
hand is commanded closed (closure >= CLOSE_ON) and at least two of its parts (palm, thumb, the two
fingers) touch an object, a weld equality between the palm and the object is switched on at their
current relative pose; it is released when the hand opens (closure < CLOSE_OFF). Nothing is welded
that the hand is not physically touching, so the expert still has to reach, enclose and lift.
"""
from __future__ import annotations

import functools

import mujoco
import numpy as np

from sim.embodiment import hand_table
from sim.robot import SIDES

CLOSE_ON, CLOSE_OFF = 0.55, 0.3

# Hand postures, left hand (hardware order thumb_0..2, middle_0..1, index_0..1); the right mirrors
# the z-axis joints (thumb_1, thumb_2, fingers). "open": fingers straight, thumb swung back;
# "closed": a power grasp around a ~6 cm object.
_OPEN_LEFT = np.array([0.0, -0.7, 0.0, 0.1, 0.0, 0.1, 0.0])
_CLOSED_LEFT = np.array([0.0, 0.6, 1.3, -1.2, -1.1, -1.2, -1.1])
_MIRROR = np.array([1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0])


def hand_posture(side: str, closure: float) -> np.ndarray:
    """(7,) joint targets between open (0) and closed (1), clipped to the hand's limits."""
    q = _OPEN_LEFT + float(np.clip(closure, 0.0, 1.0)) * (_CLOSED_LEFT - _OPEN_LEFT)
    if side == "right":
        q = q * _MIRROR
    lo, hi = _hand_limits(side)
    return np.clip(q, lo, hi)


@functools.lru_cache(maxsize=None)
def _hand_limits(side: str) -> tuple[np.ndarray, np.ndarray]:
    joints = hand_table(side).joints
    return np.array([j.lower for j in joints]), np.array([j.upper for j in joints])


_OPEN_TO_CLOSED = _CLOSED_LEFT - _OPEN_LEFT
_OPEN_TO_CLOSED_SQ = float(_OPEN_TO_CLOSED @ _OPEN_TO_CLOSED)


def closure_of(side: str, q: np.ndarray) -> float:
    """Inverse of `hand_posture`: how closed a (7,) hand command is, 0..1 (projection on open->closed)."""
    q = np.asarray(q, np.float64) * (_MIRROR if side == "right" else 1.0)
    return min(1.0, max(0.0, float((q - _OPEN_LEFT) @ _OPEN_TO_CLOSED) / _OPEN_TO_CLOSED_SQ))


def add_welds(spec: mujoco.MjSpec, objects: list[str]) -> None:
    """One inactive palm-object weld per (hand, object); `GraspAssist` switches them."""
    for side in SIDES:
        for obj in objects:
            eq = spec.add_equality(name=f"grasp_{side}_{obj}", type=mujoco.mjtEq.mjEQ_WELD,
                                   objtype=mujoco.mjtObj.mjOBJ_BODY, name1=f"{side}_hand_palm_link", name2=obj)
            eq.active = False
            eq.solref = [0.01, 1.0]


class GraspAssist:
    """Switches the welds (see module doc). `held[side]` = the object welded to that hand, or None."""

    def __init__(self, model: mujoco.MjModel, objects: list[str], finger_geoms: dict, enabled: bool):
        self.model, self.enabled, self.objects = model, enabled, list(objects)
        self.held: dict[str, str | None] = {s: None for s in SIDES}
        self.eq = {(s, o): mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_EQUALITY, f"grasp_{s}_{o}")
                   for s in SIDES for o in self.objects}
        self.obj_body = {o: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, o) for o in self.objects}
        self.palm_body = {s: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{s}_hand_palm_link") for s in SIDES}
        # hand part of every hand geom: palm / thumb / middle / index
        self.part: dict[int, tuple[str, str]] = {}
        for s in SIDES:
            self.part[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{s}_palm_collision")] = (s, "palm")
            for gid in finger_geoms[s]["thumb"]:
                self.part[gid] = (s, "thumb")
            for gid in finger_geoms[s]["fingers"]:
                name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, gid)
                self.part[gid] = (s, "index" if "index" in name else "middle")

    def reset(self, data: mujoco.MjData) -> None:
        for eq in self.eq.values():
            data.eq_active[eq] = 0
        self.held = {s: None for s in SIDES}

    def touching(self, data: mujoco.MjData) -> dict[tuple[str, str], set[str]]:
        """(side, object) -> hand parts in contact with it now."""
        out: dict[tuple[str, str], set[str]] = {}
        body_obj = {b: o for o, b in self.obj_body.items()}
        for c in data.contact[:data.ncon]:
            for g_hand, g_other in ((c.geom1, c.geom2), (c.geom2, c.geom1)):
                if g_hand in self.part:
                    obj = body_obj.get(int(self.model.geom_bodyid[g_other]))
                    if obj is not None:
                        side, part = self.part[g_hand]
                        out.setdefault((side, obj), set()).add(part)
        return out

    def update(self, data: mujoco.MjData, closure: dict[str, float]) -> None:
        if not self.enabled:
            return
        touch = None
        for side in SIDES:
            held = self.held[side]
            if held is not None:
                if closure[side] < CLOSE_OFF:
                    data.eq_active[self.eq[(side, held)]] = 0
                    self.held[side] = None
                continue
            if closure[side] < CLOSE_ON:
                continue
            touch = self.touching(data) if touch is None else touch
            for obj in self.objects:
                if len(touch.get((side, obj), ())) >= 2 and obj not in self.held.values():
                    self._weld(data, side, obj)
                    break

    def _weld(self, data: mujoco.MjData, side: str, obj: str) -> None:
        """Weld at the current relative pose: eq_data = [anchor on body2 (3), body2's origin in body1 (3),
        relative orientation quat(body1 -> body2) (4), torque scale]."""
        eq = self.eq[(side, obj)]
        b1, b2 = self.palm_body[side], self.obj_body[obj]
        r1 = data.xmat[b1].reshape(3, 3)
        rel_pos = r1.T @ (data.xpos[b2] - data.xpos[b1])
        q1_inv = np.zeros(4)
        mujoco.mju_negQuat(q1_inv, data.xquat[b1])
        rel_quat = np.zeros(4)
        mujoco.mju_mulQuat(rel_quat, q1_inv, data.xquat[b2])
        self.model.eq_data[eq, 0:3] = 0.0
        self.model.eq_data[eq, 3:6] = rel_pos
        self.model.eq_data[eq, 6:10] = rel_quat
        self.model.eq_data[eq, 10] = 1.0
        data.eq_active[eq] = 1
        self.held[side] = obj
