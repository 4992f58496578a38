"""Task templates modelled on Ψ₀'s real tasks. Each template builds its furniture and objects into a
layout with the episode seed, and owns a language instruction, a time limit and a success predicate
evaluated on simulator state.

Templates (robot hand in brackets): pick_place_left [left], pick_place_right [right], lunchbag (put
the lunch bag on the shelf: pick, turn, walk, place) [right], bimanual_lift [both], wipe [right],
walk_place (walk sideways to another table, place on its mat) [right], squat_pick (from a low stool)
[right], turn_place (turn left / right / around, place in a bin) [right].

Every predicate that involves placing requires the object to be released: no hand part touches it
and no grasp-assist weld holds it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from sim.scene import N_LAYOUTS, add_furniture, add_object

COLORS = {"red": (0.85, 0.15, 0.12), "green": (0.15, 0.7, 0.2), "blue": (0.15, 0.3, 0.85), "yellow": (0.9, 0.8, 0.1),
          "orange": (0.95, 0.5, 0.1), "purple": (0.55, 0.2, 0.7), "white": (0.92, 0.92, 0.9), "black": (0.12, 0.12, 0.12)}
NOUN = {"box": "box", "cylinder": "can", "cup": "cup", "bag": "lunch bag"}


@dataclass
class TaskInstance:
    template: str
    seed: int
    layout: int
    instruction: str
    time_limit: float
    start: tuple[float, float, float]                 # robot x, y, heading
    objects: list[dict]
    furniture: dict[str, dict]
    params: dict[str, Any] = field(default_factory=dict)


def layout_for(task: str, seed: int) -> int:
    """Layout index of (template, seed): consecutive seeds walk through all layouts."""
    offset = sum((i + 1) * ord(c) for i, c in enumerate(task))
    return int((seed + offset) % N_LAYOUTS)


# ------------------------------------------------------------------------------------------ state helpers
def body_pos(env: Any, name: str) -> np.ndarray:
    return env.data.xpos[mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, name)].copy()


def body_speed(env: Any, name: str) -> float:
    bid = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, name)
    return float(np.linalg.norm(env.data.cvel[bid][3:]))


def released(env: Any, obj: str) -> bool:
    """No weld holds the object and no hand part touches it."""
    if obj in env.assist.held.values():
        return False
    return not any(o == obj for (_, o) in env.assist.touching(env.data))


def in_box(p: np.ndarray, center: np.ndarray, half: tuple[float, float], yaw: float, margin: float = 0.0) -> bool:
    c, s = np.cos(yaw), np.sin(yaw)
    d = p[:2] - center[:2]
    local = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
    return bool(abs(local[0]) <= half[0] - margin and abs(local[1]) <= half[1] - margin)


def _jitter_start(rng: np.random.Generator) -> tuple[float, float, float]:
    return (float(rng.uniform(-0.02, 0.02)), float(rng.uniform(-0.02, 0.02)), float(rng.uniform(-0.05, 0.05)))


def _color(rng: np.random.Generator, exclude: tuple[str, ...] = ()) -> tuple[str, list[float]]:
    names = [c for c in COLORS if c not in exclude]
    name = str(rng.choice(names))
    return name, list(COLORS[name]) + [1.0]


def _small_object(spec: mujoco.MjSpec, rng: np.random.Generator, name: str, pos, kinds=("box", "cylinder", "cup")) -> tuple[dict, str]:
    kind = str(rng.choice(kinds))
    color, rgba = _color(rng)
    if kind == "box":
        size = [float(rng.uniform(0.022, 0.03)), float(rng.uniform(0.022, 0.03)), float(rng.uniform(0.06, 0.075))]
    elif kind == "cylinder":
        size = [float(rng.uniform(0.024, 0.032)), float(rng.uniform(0.06, 0.075))]
    else:
        size = [float(rng.uniform(0.028, 0.034)), float(rng.uniform(0.06, 0.07))]
    info = add_object(spec, name, kind, pos, float(rng.uniform(-0.3, 0.3)) if kind == "box" else 0.0, size, rgba,
                      float(rng.uniform(0.1, 0.3)))
    info["color"] = color
    return info, f"the {color} {NOUN[kind]}"


def _table(spec, rng, name, x_front, y, height, width=(0.9, 1.3), depth=(0.55, 0.7), kind="table", yaw=0.0) -> dict:
    d = float(rng.uniform(*depth))
    w = float(rng.uniform(*width))
    c, s = np.cos(yaw), np.sin(yaw)
    cx, cy = x_front + d / 2 * c, y + d / 2 * s
    rgba = [float(v) for v in rng.uniform(0.3, 0.8, 3)] + [1.0]
    info = add_furniture(spec, name, kind, (cx, cy), yaw, w, d, float(height), rgba)
    info["front"] = float(x_front)
    return info


def _bin(spec, name, center, half, wall, top, rgba, yaw=0.0) -> dict:
    from sim.scene import add_bin  # noqa: PLC0415
    body = spec.worldbody.add_body(name=name, pos=[center[0], center[1], top],
                                   quat=[np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    add_bin(body, name, [0.0, 0.0, 0.0], half[0], half[1], wall, rgba)
    return {"kind": "bin", "pos": [float(center[0]), float(center[1])], "half": [float(half[0]), float(half[1])],
            "wall": float(wall), "floor": float(top + 0.01), "yaw": float(yaw)}


def _in_bin(env: Any, obj: str, b: dict) -> bool:
    p = body_pos(env, obj)
    return (in_box(p, np.array(b["pos"]), tuple(b["half"]), b["yaw"], margin=0.012)
            and p[2] < b["floor"] + b["wall"] and released(env, obj))


def _rot(yaw: float, v) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


# ------------------------------------------------------------------------------------------ templates
class Template:
    name = ""
    time_limit = 20.0
    summary = ""

    def build(self, spec: mujoco.MjSpec, rng: np.random.Generator, seed: int, layout: int) -> TaskInstance:
        raise NotImplementedError

    def success(self, env: Any) -> bool:
        raise NotImplementedError

    def target_point(self, env: Any) -> np.ndarray:
        return np.asarray(env.task.params["target"], np.float64)

    def on_reset(self, env: Any) -> None:
        pass

    def on_step(self, env: Any) -> None:
        pass


class PickPlace(Template):
    time_limit = 20.0

    def __init__(self, side: str):
        self.side = side
        self.name = f"pick_place_{side}"
        self.summary = f"pick an object from a table with the {side} hand, put it in a bin on the same table"

    def build(self, spec, rng, seed, layout):
        s = 1.0 if self.side == "left" else -1.0
        x_front, top = float(rng.uniform(0.14, 0.18)), float(rng.uniform(0.70, 0.78))
        table = _table(spec, rng, "work_table", x_front, float(rng.uniform(-0.1, 0.1)), top)
        obj, noun = _small_object(spec, rng, "object", (x_front + rng.uniform(0.10, 0.14), s * rng.uniform(0.15, 0.21), top))
        bin_ = _bin(spec, "bin", (x_front + rng.uniform(0.10, 0.14), s * rng.uniform(-0.06, -0.02)),
                    (float(rng.uniform(0.075, 0.09)), float(rng.uniform(0.075, 0.09))), float(rng.uniform(0.045, 0.06)),
                    top, [0.3, 0.3, 0.35, 1.0])
        text = f"Pick up {noun} with your {self.side} hand and put it in the bin."
        return TaskInstance(self.name, seed, layout, text, self.time_limit, _jitter_start(rng), [obj],
                            {"table": table, "bin": bin_},
                            {"side": self.side, "target": [*bin_["pos"], top + bin_["wall"]], "top": top})

    def success(self, env):
        return _in_bin(env, "object", env.task.furniture["bin"])


class LunchBag(Template):
    name = "lunchbag"
    time_limit = 35.0
    summary = "pick the lunch bag from a table, turn to a shelf beside you, walk up to it, put the bag on a shelf board"

    def build(self, spec, rng, seed, layout):
        # a lower table and a shorter bag than the other templates: the bag's handle must stay under the
        # ready hands (~0.93 m) at reset
        x_front, top = float(rng.uniform(0.14, 0.18)), float(rng.uniform(0.64, 0.72))
        table = _table(spec, rng, "work_table", x_front, float(rng.uniform(-0.1, 0.0)), top)
        color, rgba = _color(rng, exclude=("black",))
        size = [float(rng.uniform(0.05, 0.065)), float(rng.uniform(0.024, 0.03)), float(rng.uniform(0.05, 0.06))]
        bag = add_object(spec, "bag", "bag", (x_front + rng.uniform(0.10, 0.14), -rng.uniform(0.15, 0.21), top), 0.0,
                         size, rgba, float(rng.uniform(0.2, 0.4)))
        bag["color"] = color
        turn = float(rng.choice([np.pi / 2, -np.pi / 2]))
        dist = float(rng.uniform(0.9, 1.2))                 # shelf front edge from the start, along `turn`
        level = float(rng.uniform(0.74, 0.86))
        depth, width = float(rng.uniform(0.3, 0.4)), float(rng.uniform(0.7, 1.0))
        center = _rot(turn, (dist + depth / 2, 0.0))
        shelf = _shelf(spec, "shelf", center, turn, width, depth, [0.35, level, level + 0.38])
        shelf["turn"] = turn
        shelf["dist"] = dist
        text = f"Put the {color} lunch bag on the shelf."
        return TaskInstance(self.name, seed, layout, text, self.time_limit, _jitter_start(rng), [bag],
                            {"table": table, "shelf": shelf},
                            {"side": "right", "level": level, "target": [*center, level], "top": top})

    def success(self, env):
        shelf, level = env.task.furniture["shelf"], env.task.params["level"]
        p = body_pos(env, "bag")
        return (in_box(p, np.array(shelf["pos"]), tuple(shelf["half"]), shelf["yaw"], margin=0.0)
                and level - 0.01 <= p[2] <= level + 0.05 and released(env, "bag"))


def _shelf(spec, name, center, yaw, width, depth, levels) -> dict:
    """A shelf whose open side faces the start (its back wall away from the robot)."""
    body = spec.worldbody.add_body(name=name, pos=[center[0], center[1], 0.0],
                                   quat=[np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    from sim.scene import _static_box  # noqa: PLC0415
    hx, hy = depth / 2, width / 2
    rgba, dark = [0.55, 0.4, 0.25, 1.0], [0.35, 0.25, 0.15, 1.0]
    for i, z in enumerate(levels):
        _static_box(body, f"{name}_board{i}", [0, 0, z - 0.01], [hx, hy, 0.01], rgba)
    top = levels[-1]
    for i, sy in enumerate((1, -1)):
        _static_box(body, f"{name}_side{i}", [0, sy * (hy + 0.01), top / 2], [hx, 0.01, top / 2], dark)
    _static_box(body, f"{name}_back", [hx + 0.01, 0, top / 2], [0.01, hy + 0.02, top / 2], dark)
    return {"kind": "shelf", "pos": [float(center[0]), float(center[1])], "half": [hx, hy], "yaw": float(yaw),
            "levels": [float(z) for z in levels], "top": float(top)}


class BimanualLift(Template):
    name = "bimanual_lift"
    time_limit = 15.0
    summary = "lift a large box off a table with both hands"

    def build(self, spec, rng, seed, layout):
        x_front, top = float(rng.uniform(0.14, 0.18)), float(rng.uniform(0.68, 0.75))
        table = _table(spec, rng, "work_table", x_front, float(rng.uniform(-0.1, 0.1)), top)
        color, rgba = _color(rng)
        half = [float(rng.uniform(0.06, 0.08)), float(rng.uniform(0.115, 0.135)), float(rng.uniform(0.07, 0.09))]
        box = add_object(spec, "box", "box", (x_front + rng.uniform(0.12, 0.15), rng.uniform(-0.02, 0.02), top), 0.0,
                         half, rgba, float(rng.uniform(0.5, 1.0)))
        box["color"] = color
        text = f"Lift the {color} box with both hands."
        return TaskInstance(self.name, seed, layout, text, self.time_limit, _jitter_start(rng), [box], {"table": table},
                            {"top": top, "lift": 0.10})

    def target_point(self, env):
        p = body_pos(env, "box")
        return np.array([p[0], p[1], env.task.params["top"] + env.task.params["lift"]])

    def success(self, env):
        return bool(body_pos(env, "box")[2] >= env.task.params["top"] + env.task.params["lift"])


class Wipe(Template):
    name = "wipe"
    time_limit = 20.0
    summary = "wipe a stain off the table with the right hand (80 % of its cells touched by the pressing hand)"
    CELL = 0.03

    def build(self, spec, rng, seed, layout):
        x_front, top = float(rng.uniform(0.14, 0.18)), float(rng.uniform(0.70, 0.78))
        table = _table(spec, rng, "work_table", x_front, float(rng.uniform(-0.1, 0.1)), top)
        cx, cy = x_front + float(rng.uniform(0.10, 0.13)), -float(rng.uniform(0.16, 0.24))
        half = (float(rng.uniform(0.045, 0.06)), float(rng.uniform(0.07, 0.1)))
        nx, ny = max(2, int(round(2 * half[0] / self.CELL))), max(2, int(round(2 * half[1] / self.CELL)))
        cells = []
        for i in range(nx):
            for j in range(ny):
                x = cx - half[0] + (i + 0.5) * 2 * half[0] / nx
                y = cy - half[1] + (j + 0.5) * 2 * half[1] / ny
                g = spec.worldbody.add_geom(name=f"stain{len(cells)}", type=mujoco.mjtGeom.mjGEOM_BOX,
                                            pos=[x, y, top + 0.0008], size=[half[0] / nx, half[1] / ny, 0.0008],
                                            rgba=[0.35, 0.22, 0.08, 1.0])
                g.contype, g.conaffinity = 0, 0
                cells.append([x, y])
        text = "Wipe the stain off the table."
        return TaskInstance(self.name, seed, layout, text, self.time_limit, _jitter_start(rng), [], {"table": table},
                            {"side": "right", "center": [cx, cy], "half": list(half), "cells": cells, "top": top,
                             "target": [cx, cy, top], "needed": 0.8})

    def on_reset(self, env):
        cells = np.asarray(env.task.params["cells"])
        env.task_state["clean"] = np.zeros(len(cells), bool)
        env.task_state["progress"] = 0.0
        env.task_state["geoms"] = [mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, f"stain{k}") for k in range(len(cells))]
        env.task_state["hand"] = [g for g in env.idx.finger_geoms["right"]["fingers"] + env.idx.finger_geoms["right"]["thumb"]]
        env.task_state["hand"].append(mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, "right_palm_collision"))
        env.task_state["table"] = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, "work_table_top")

    def on_step(self, env):
        """Cells under a hand part that presses on the table top get clean."""
        st = env.task_state
        pressing = set()
        for c in env.data.contact[:env.data.ncon]:
            pair = {int(c.geom1), int(c.geom2)}
            if st["table"] in pair:
                pressing |= pair & set(st["hand"])
        if not pressing:
            return
        cells = np.asarray(env.task.params["cells"])
        for gid in pressing:
            pos = env.data.geom_xpos[gid]
            axis = env.data.geom_xmat[gid].reshape(3, 3)[:, 2]
            size = env.model.geom_size[gid]
            half_len = size[1] if env.model.geom_type[gid] == mujoco.mjtGeom.mjGEOM_CAPSULE else 0.0
            radius = size[0] if half_len else float(np.max(size[:2]))
            a, b = pos - half_len * axis, pos + half_len * axis
            ab = (b - a)[:2]
            t = np.clip(((cells - a[:2]) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
            dist = np.linalg.norm(cells - (a[:2] + t[:, None] * ab), axis=1)
            st["clean"] |= dist <= radius + self.CELL / 2
        for k in np.flatnonzero(st["clean"]):
            env.model.geom_rgba[st["geoms"][k], 3] = 0.0
        st["progress"] = float(st["clean"].mean())

    def success(self, env):
        return env.task_state.get("progress", 0.0) >= env.task.params["needed"]


class WalkPlace(Template):
    name = "walk_place"
    time_limit = 30.0
    summary = "pick an object from a counter, walk sideways to another table, place it on the mat there"

    def build(self, spec, rng, seed, layout):
        x_front, top = float(rng.uniform(0.14, 0.18)), float(rng.uniform(0.72, 0.80))
        counter = _table(spec, rng, "counter", x_front, 0.0, top, width=(0.6, 0.7), kind="counter")
        obj, noun = _small_object(spec, rng, "object", (x_front + rng.uniform(0.10, 0.14), -rng.uniform(0.15, 0.21), top))
        side = float(rng.choice([1.0, -1.0]))
        offset = side * float(rng.uniform(1.1, 1.6))
        x2, top2 = float(rng.uniform(0.14, 0.18)), float(rng.uniform(0.70, 0.78))
        table = _table(spec, rng, "target_table", x2, offset, top2, width=(0.8, 1.0))
        mat = [x2 + float(rng.uniform(0.10, 0.14)), offset - 0.26]
        color, rgba = _color(rng, exclude=(obj["color"],))
        g = spec.worldbody.add_geom(name="mat", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[mat[0], mat[1], top2 + 0.001],
                                    size=[0.09, 0.09, 0.001], rgba=rgba)
        g.contype, g.conaffinity = 0, 0
        where = "left" if side > 0 else "right"
        text = f"Pick up {noun}, walk to the table on your {where} and put it on the {color} mat."
        return TaskInstance(self.name, seed, layout, text, self.time_limit, _jitter_start(rng), [obj],
                            {"counter": counter, "table": table},
                            {"side": "right", "offset": offset, "mat": mat, "top": top, "top2": top2,
                             "target": [mat[0], mat[1], top2]})

    def success(self, env):
        p = body_pos(env, "object")
        mat, top2 = env.task.params["mat"], env.task.params["top2"]
        return (in_box(p, np.array(mat), (0.09, 0.09), 0.0) and abs(p[2] - top2) < 0.03
                and released(env, "object"))


class SquatPick(Template):
    name = "squat_pick"
    time_limit = 25.0
    summary = "squat, pick an object from a low stool, stand up holding it"

    def build(self, spec, rng, seed, layout):
        x_front, top = float(rng.uniform(0.14, 0.18)), float(rng.uniform(0.30, 0.42))
        stool = _table(spec, rng, "stool", x_front, float(rng.uniform(-0.1, 0.0)), top, width=(0.5, 0.7), depth=(0.4, 0.5))
        obj, noun = _small_object(spec, rng, "object", (x_front + rng.uniform(0.10, 0.13), -rng.uniform(0.15, 0.21), top))
        text = f"Squat down, pick up {noun} from the low stool and stand up with it."
        return TaskInstance(self.name, seed, layout, text, self.time_limit, _jitter_start(rng), [obj], {"stool": stool},
                            {"side": "right", "top": top, "lift": 0.30, "stand": 0.70})

    def target_point(self, env):
        p = body_pos(env, "object")
        return np.array([p[0], p[1], env.task.params["top"] + env.task.params["lift"]])

    def success(self, env):
        from sim.tracker import PELVIS_ABOVE_TORSO_HEIGHT  # noqa: PLC0415
        standing = env.data.xpos[env.idx.pelvis][2] - PELVIS_ABOVE_TORSO_HEIGHT >= env.task.params["stand"]
        return bool(standing and body_pos(env, "object")[2] >= env.task.params["top"] + env.task.params["lift"])


class TurnPlace(Template):
    name = "turn_place"
    time_limit = 30.0
    summary = "pick an object from the table in front, turn to a table beside or behind, put it in the bin there"

    def build(self, spec, rng, seed, layout):
        x_front, top = float(rng.uniform(0.14, 0.18)), float(rng.uniform(0.70, 0.78))
        table = _table(spec, rng, "work_table", x_front, float(rng.uniform(-0.1, 0.0)), top, width=(0.8, 1.0))
        obj, noun = _small_object(spec, rng, "object", (x_front + rng.uniform(0.10, 0.14), -rng.uniform(0.15, 0.21), top))
        turn = float(rng.choice([np.pi / 2, -np.pi / 2, np.pi]))
        dist = float(rng.uniform(0.55, 0.7))                 # second table's front edge from the start
        top2 = float(rng.uniform(0.70, 0.78))
        depth, width = float(rng.uniform(0.5, 0.6)), float(rng.uniform(0.8, 1.0))
        center = _rot(turn, (dist + depth / 2, 0.0))
        rgba = [float(v) for v in rng.uniform(0.3, 0.8, 3)] + [1.0]
        table2 = add_furniture(spec, "target_table", "table", center, turn, width, depth, top2, rgba)
        bin_center = _rot(turn, (dist + 0.16, -0.2))
        bin_ = _bin(spec, "bin", bin_center, (0.085, 0.085), float(rng.uniform(0.045, 0.06)), top2, [0.3, 0.3, 0.35, 1.0],
                    yaw=turn)
        where = {np.pi / 2: "on your left", -np.pi / 2: "on your right", np.pi: "behind you"}[turn]
        text = f"Pick up {noun}, turn to the table {where} and put it in the bin."
        return TaskInstance(self.name, seed, layout, text, self.time_limit, _jitter_start(rng), [obj],
                            {"table": table, "target_table": table2, "bin": bin_},
                            {"side": "right", "turn": turn, "dist": dist, "top": top, "top2": top2,
                             "target": [*bin_center, top2 + bin_["wall"]]})

    def success(self, env):
        return _in_bin(env, "object", env.task.furniture["bin"])


TEMPLATES: dict[str, Template] = {t.name: t for t in (
    PickPlace("left"), PickPlace("right"), LunchBag(), BimanualLift(), Wipe(), WalkPlace(), SquatPick(), TurnPlace())}
