"""Scripted experts: privileged-state demonstrators for every template (the demo source).

An expert reads the simulator directly (object poses, furniture), plans with small motion primitives
and emits PSI0_ACTION rows, exactly what a learned policy would emit:
- hands: `sim.grasp.hand_posture` between open and closed;
- arms: `sim.ik.ArmIK` (damped least squares on MuJoCo's site Jacobians) along min-jerk paths of
  the hand's grasp site; grasp points from the object's size (the hand comes down beside the object,
  slides onto it, closes, lifts);
- lower body: only through the 8-DoF command: squat height / torso pitch, target yaw for turning,
  body-frame vx / vy from a proportional controller on the base pose for walking.

Each plan is a generator that yields once per control tick after updating `self.action`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from schemas.actions import NOMINAL_TORSO_HEIGHT, PSI0_ACTION
from sim.env import LOWER_IDX, PSI0_BODY_ARMS, READY_ARM
from sim.grasp import hand_posture
from sim.ik import ArmIK
from sim.robot import GRASP_SITE_IN_PALM, SIDES
from sim.tasks import body_pos
from sim.tracker import wrap

_LOWER = PSI0_ACTION.slice("lower_body")
PALM_HALF_THICKNESS = 0.014
"""Half thickness of the capsule hand's palm box (sim.robot): palm surface -> palm centre (m)."""
SITE_INSIDE_PALM = float(-GRASP_SITE_IN_PALM[1])
"""How far the grasp site sits from the palm centre towards the fingers' closing side (m)."""


def min_jerk(s: float) -> float:
    s = float(np.clip(s, 0.0, 1.0))
    return s ** 3 * (10 - 15 * s + 6 * s * s)


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_y(pitch: float) -> np.ndarray:
    c, s = np.cos(pitch), np.sin(pitch)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


HAND_PITCH = 0.35
"""Fingers tilted this much (rad) below horizontal: keeps table-height grasps inside the G1 arm's reach."""


class ScriptedExpert:
    """`act(obs) -> action` for the env's current task (see module doc)."""

    def __init__(self, env: Any):
        self.env = env
        self.dt = env.dt
        self.ik = {s: ArmIK(env.model, s, f"{s}_grasp") for s in SIDES}
        self.action = env.last_action.copy()
        self.closure = {s: 0.0 for s in SIDES}
        self.grip_offset: dict[str, np.ndarray] = {}
        plan = PLANS.get(env.task.template)
        if plan is None:
            raise KeyError(f"no expert for task {env.task.template!r}")
        self._plan = plan(self)
        self.done = False

    def act(self, obs: Any = None) -> np.ndarray:
        if not self.done:
            try:
                next(self._plan)
            except StopIteration:
                self.done = True
        return self.action.copy()

    # ------------------------------------------------------------------ state
    def heading(self) -> float:
        return float(self.action[_LOWER.start + LOWER_IDX["target_yaw"]])

    def site(self, side: str) -> np.ndarray:
        return self.env.data.site_xpos[self.env.idx.grasp_sites[side]].copy()

    def arm(self, side: str) -> np.ndarray:
        return self.action[PSI0_ACTION.slice(f"{side}_arm")]

    def set_lower(self, **values: float) -> None:
        for k, v in values.items():
            self.action[_LOWER.start + LOWER_IDX[k]] = v

    # ------------------------------------------------------------------ primitives
    def move(self, targets: dict[str, np.ndarray], duration: float, settle: float = 0.2,
             rot: dict[str, np.ndarray] | None = None) -> Iterator[None]:
        """Grasp sites along straight min-jerk paths to world `targets`, IK every tick."""
        start = {s: self.site(s) for s in targets}
        n = max(1, int(round(duration / self.dt)))
        for k in range(n + int(round(settle / self.dt))):
            a = min_jerk((k + 1) / n)
            for side, goal in targets.items():
                r = (rot or {}).get(side, rot_z(self.heading()) @ rot_y(HAND_PITCH))
                p = start[side] + a * (np.asarray(goal) - start[side])
                q, _ = self.ik[side].solve(self.env.data.qpos, self.arm(side), p, r, rest=READY_ARM[side])
                self.action[PSI0_ACTION.slice(f"{side}_arm")] = q
            yield

    def move_joints(self, side: str, q_goal: np.ndarray, duration: float) -> Iterator[None]:
        q0 = self.arm(side).copy()
        n = max(1, int(round(duration / self.dt)))
        for k in range(n):
            self.action[PSI0_ACTION.slice(f"{side}_arm")] = q0 + min_jerk((k + 1) / n) * (q_goal - q0)
            yield

    def grip(self, closures: dict[str, float], duration: float) -> Iterator[None]:
        start = dict(self.closure)
        n = max(1, int(round(duration / self.dt)))
        for k in range(n):
            for side, c in closures.items():
                self.closure[side] = start[side] + min_jerk((k + 1) / n) * (c - start[side])
                self.action[PSI0_ACTION.slice(f"{side}_hand")] = hand_posture(side, self.closure[side])
            yield

    def wait(self, duration: float) -> Iterator[None]:
        for _ in range(max(1, int(round(duration / self.dt)))):
            yield

    def posture(self, height: float, pitch: float, duration: float) -> Iterator[None]:
        self.set_lower(torso_height=height, torso_pitch=pitch)
        yield from self.wait(duration)

    def turn(self, yaw: float, tol: float = 0.03, timeout: float = 8.0) -> Iterator[None]:
        self.set_lower(target_yaw=yaw, vx=0.0, vy=0.0, yaw_rate=0.0)
        for _ in range(int(timeout / self.dt)):
            if abs(wrap(yaw - self.env.base_pose()[2])) < tol:
                break
            yield
        yield from self.wait(0.3)

    def walk_to(self, x: float, y: float, yaw: float, tol: float = 0.02, timeout: float = 15.0,
                vmax: tuple[float, float] = (0.35, 0.3)) -> Iterator[None]:
        """Base to (x, y) at heading `yaw` with body-frame velocity commands (P-control, decelerating)."""
        self.set_lower(target_yaw=yaw, yaw_rate=0.0)
        for _ in range(int(timeout / self.dt)):
            bx, by, byaw = self.env.base_pose()
            ex, ey = x - bx, y - by
            c, s = np.cos(byaw), np.sin(byaw)
            fx, fy = c * ex + s * ey, -s * ex + c * ey
            if np.hypot(ex, ey) < tol and abs(wrap(yaw - byaw)) < 0.05:
                break
            self.set_lower(vx=float(np.clip(1.5 * fx, -vmax[0], vmax[0])), vy=float(np.clip(1.5 * fy, -vmax[1], vmax[1])))
            yield
        self.set_lower(vx=0.0, vy=0.0)
        yield from self.wait(0.5)

    # ------------------------------------------------------------------ grasping
    def lateral(self, side: str) -> np.ndarray:
        """World direction from the object towards the hand's palm (the hand's outer side)."""
        sgn = 1.0 if side == "left" else -1.0
        return rot_z(self.heading()) @ np.array([0.0, sgn, 0.0])

    def grasp_point(self, side: str, obj: dict) -> np.ndarray:
        """Where the grasp site goes: beside the object's upper part, palm surface on its side."""
        p = body_pos(self.env, obj["name"])
        radius = obj["size"][0] if obj["kind"] in ("cylinder", "cup") else float(np.hypot(*obj["size"][:2]) * 0.85)
        if obj["kind"] == "bag":
            radius = obj["size"][1]
            height = 2 * obj["size"][2]
        else:
            height = obj["height"]
        z = p[2] + max(height / 2, height - 0.04)
        shift = SITE_INSIDE_PALM - PALM_HALF_THICKNESS - radius
        return np.array([p[0], p[1], z]) + shift * self.lateral(side)

    def pick(self, side: str, obj: dict, lift: float = 0.12) -> Iterator[None]:
        g = self.grasp_point(side, obj)
        out = 0.02 * self.lateral(side)
        # above the object's highest point (a bag's handle) before coming down beside it: the hand's
        # lowest finger hangs ~7 cm under the grasp site
        above = max(0.10, body_pos(self.env, obj["name"])[2] + obj["height"] + 0.08 - g[2])
        yield from self.grip({side: 0.0}, 0.2)
        yield from self.move({side: g + out + [0, 0, above]}, 1.2)
        yield from self.move({side: g + out}, 0.8)
        yield from self.move({side: g}, 0.5)
        yield from self.grip({side: 1.0}, 0.6)
        yield from self.wait(0.2)
        self.grip_offset[side] = body_pos(self.env, obj["name"]) - self.site(side)
        yield from self.move({side: self.site(side) + [0, 0, lift]}, 0.8)

    def held_offset(self, side: str, obj: dict) -> np.ndarray:
        """Where the held object's base sits relative to the grasp site now (privileged state)."""
        self.grip_offset[side] = body_pos(self.env, obj["name"]) - self.site(side)
        return self.grip_offset[side]

    def place(self, side: str, obj: dict, point: np.ndarray, clearance: float = 0.08) -> Iterator[None]:
        """Put the held object's bottom centre at `point` (x, y, surface z), open, back off."""
        point = np.asarray(point, float)
        site_goal = point - self.held_offset(side, obj)
        here = self.site(side)
        if site_goal[2] + clearance > here[2] + 0.02:      # rise first: a diagonal path catches board edges and rims
            yield from self.move({side: np.array([here[0], here[1], site_goal[2] + clearance])}, 0.6, settle=0.0)
        yield from self.move({side: site_goal + [0, 0, clearance]}, 1.2)
        # a friction grasp lets the object shift in the hand while carrying: look again before going down
        site_goal = point - self.held_offset(side, obj)
        yield from self.move({side: site_goal + [0, 0, clearance]}, 0.4)
        yield from self.move({side: site_goal + [0, 0, 0.012]}, 0.7)
        yield from self.grip({side: 0.0}, 0.4)
        yield from self.move({side: self.site(side) + 0.03 * self.lateral(side)}, 0.4, settle=0.0)
        yield from self.move({side: self.site(side) + [0, 0, 0.10]}, 0.6)


# ------------------------------------------------------------------------------------------ plans
def _pick_place(e: ScriptedExpert) -> Iterator[None]:
    t = e.env.task
    side, obj, b = t.params["side"], t.objects[0], t.furniture["bin"]
    yield from e.pick(side, obj)
    yield from e.place(side, obj, np.array([*b["pos"], b["floor"] + 0.005]), clearance=b["wall"] + 0.06)
    yield from e.wait(1.0)


def _carry_and_place(e: ScriptedExpert, obj: dict, goal: tuple[float, float, float], place_at: np.ndarray,
                     clearance: float = 0.08) -> Iterator[None]:
    x, y, yaw = goal
    if abs(wrap(yaw - e.heading())) > 0.05:
        yield from e.turn(yaw)
    yield from e.walk_to(x, y, yaw)
    yield from e.place("right", obj, place_at, clearance)
    yield from e.wait(1.0)


def _lunchbag(e: ScriptedExpert) -> Iterator[None]:
    t = e.env.task
    shelf, bag = t.furniture["shelf"], t.objects[0]
    yield from e.pick("right", bag, lift=0.15)
    turn, stand = shelf["turn"], shelf["dist"] - 0.24
    goal = (stand * np.cos(turn), stand * np.sin(turn), turn)
    place = np.array([*(np.array(goal[:2]) + rot_z(turn)[:2, :2] @ np.array([0.4, -0.18])), t.params["level"] + 0.004])
    yield from _carry_and_place(e, bag, goal, place, clearance=0.08)


def _walk_place(e: ScriptedExpert) -> Iterator[None]:
    t = e.env.task
    obj = t.objects[0]
    yield from e.pick("right", obj, lift=0.12)
    goal = (0.0, t.params["offset"], 0.0)
    yield from _carry_and_place(e, obj, goal, np.array([*t.params["mat"], t.params["top2"] + 0.004]))


def _turn_place(e: ScriptedExpert) -> Iterator[None]:
    t = e.env.task
    obj, b = t.objects[0], t.furniture["bin"]
    yield from e.pick("right", obj, lift=0.14)
    turn, stand = t.params["turn"], t.params["dist"] - 0.22
    goal = (stand * np.cos(turn), stand * np.sin(turn), turn)
    yield from _carry_and_place(e, obj, goal, np.array([*b["pos"], b["floor"] + 0.005]), clearance=b["wall"] + 0.06)


def _squat_pick(e: ScriptedExpert) -> Iterator[None]:
    t = e.env.task
    top, obj = t.params["top"], t.objects[0]
    # deep enough that the stool top sits about where a table top does when standing (a side grasp, not
    # fingers pointing down from above), leaning 0.35 rad forward
    height = float(np.clip(top + 0.12, 0.45, 0.62))
    # squatting and leaning carry the hand down and forward: take it out beside the object first
    yield from e.move({"right": e.site("right") + 0.10 * e.lateral("right")}, 0.6, settle=0.0)
    yield from e.posture(height, 0.35, 1.2)
    yield from e.pick("right", obj, lift=0.10)
    yield from e.posture(NOMINAL_TORSO_HEIGHT, 0.0, 1.6)
    yield from e.move({"right": e.site("right") + [0, 0, 0.08]}, 0.6)
    yield from e.wait(1.0)


def _bimanual_lift(e: ScriptedExpert) -> Iterator[None]:
    t = e.env.task
    box = t.objects[0]
    hx, hy, hz = box["size"]
    c = body_pos(e.env, "box") + [0, 0, hz]
    touch = {s: c + (hy + PALM_HALF_THICKNESS - SITE_INSIDE_PALM) * e.lateral(s) for s in SIDES}
    yield from e.move({s: touch[s] + 0.06 * e.lateral(s) + [0, 0, 0.06] for s in SIDES}, 1.2)
    yield from e.move({s: touch[s] + 0.06 * e.lateral(s) for s in SIDES}, 0.6)
    yield from e.move({s: touch[s] - 0.012 * e.lateral(s) for s in SIDES}, 0.8)
    yield from e.grip({s: 0.7 for s in SIDES}, 0.5)
    # the box lags the squeezing hands by 6-7 cm while they rise: lift them 22 cm for the predicate's 10
    squeeze = {s: touch[s] - 0.02 * e.lateral(s) + [0, 0, 0.22] for s in SIDES}
    yield from e.move(squeeze, 1.2)
    yield from e.wait(1.0)


def _wipe(e: ScriptedExpert) -> Iterator[None]:
    t = e.env.task
    (cx, cy), (hx, hy), top = t.params["center"], t.params["half"], t.params["top"]
    z = top + 0.042 - 0.012          # lowest hand part ~4 cm under the grasp site, pressed 1.2 cm into the top
    y0, y1 = cy + hy + 0.04, cy - hy - 0.02
    yield from e.move({"right": np.array([cx - hx + 0.01, y0, z + 0.08])}, 1.2)
    for x in (cx - hx + 0.01, cx - hx - 0.03):
        yield from e.move({"right": np.array([x, y0, z])}, 0.6)
        yield from e.move({"right": np.array([x, y1, z])}, 1.5)
        yield from e.move({"right": np.array([x, y0, z])}, 1.5)
    yield from e.move({"right": np.array([cx - hx, y0, z + 0.1])}, 0.6)
    yield from e.wait(1.0)


PLANS: dict[str, Callable[[ScriptedExpert], Iterator[None]]] = {
    "pick_place_left": _pick_place, "pick_place_right": _pick_place, "lunchbag": _lunchbag,
    "bimanual_lift": _bimanual_lift, "wipe": _wipe, "walk_place": _walk_place, "squat_pick": _squat_pick,
    "turn_place": _turn_place,
}


def run_episode(env: Any, task: str, seed: int, policy: str = "expert", on_step: Callable | None = None) -> dict:
    """One episode with the scripted expert (or "zero": hold the reset pose); returns the outcome."""
    env.reset(task, seed)
    expert = ScriptedExpert(env) if policy == "expert" else None
    hold = env.last_action.copy()
    info: dict = {"success": False}
    while True:
        action = expert.act() if expert is not None else hold
        obs, done, info = env.step(action)
        if on_step is not None:
            on_step(env, obs, action, info)
        if done:
            break
    return {"task": task, "seed": seed, "success": bool(info["success"]), "steps": env.steps, "t": env.t,
            "grasp_assist": env.cfg.grasp_assist}


__all__ = ["ScriptedExpert", "run_episode", "PLANS", "READY_ARM", "PSI0_BODY_ARMS"]
