"""Procedural indoor scenes: room layouts (size, floor/wall textures, lighting, decor furniture) and the
furniture and rigid objects that task templates place in them.

A layout is a pure function of its index (`layout(i)`, i < N_LAYOUTS); task templates add their own
work furniture and objects around the robot's start pose with the episode seed. The robot starts at
the origin facing +x; decor stays out of the work area (|y| < 1.6 m, -1.2 < x < 3.0 m).
All furniture and objects use contact bit WORLD_BIT (see `sim.robot`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from sim.robot import FLOOR_BIT, ROBOT_BIT, WORLD_BIT

N_LAYOUTS = 50
FLOOR_GRID = 0.5
"""Rendering grid of the floor plane (m)."""
WORK_AREA = ((-1.2, 3.0), (-1.6, 1.6))
"""x and y ranges (m) around the robot's start kept free of decor."""


def _rgb(rng: np.random.Generator, lo: float, hi: float) -> list[float]:
    return rng.uniform(lo, hi, size=3).round(3).tolist()


@dataclass(frozen=True)
class Layout:
    index: int
    room: tuple[float, float, float, float]       # x_min, x_max, y_min, y_max (m)
    wall_height: float
    floor: dict                                  # builtin texture parameters
    wall_rgb: list[float]
    light_pos: list[float]
    light_rgb: list[float]
    ambient: float
    decor: list[dict] = field(default_factory=list)   # {"kind", "pos", "yaw", "size"...}


def layout(index: int) -> Layout:
    """Room `index` (0 <= index < N_LAYOUTS): a deterministic function of the index."""
    if not 0 <= index < N_LAYOUTS:
        raise ValueError(f"layout index {index} outside [0, {N_LAYOUTS})")
    rng = np.random.default_rng([index, 1017])
    room = (-rng.uniform(1.8, 3.0), rng.uniform(3.5, 5.0), -rng.uniform(2.2, 3.2), rng.uniform(2.2, 3.2))
    builtin = ("checker", "gradient", "flat")[index % 3]
    floor = {"builtin": builtin, "rgb1": _rgb(rng, 0.25, 0.75), "rgb2": _rgb(rng, 0.15, 0.6),
             "mark": ("edge", "random", "none")[(index // 3) % 3], "markrgb": _rgb(rng, 0.1, 0.9),
             "random": 0.02 if index % 2 else 0.0, "texrepeat": float(rng.uniform(2.0, 8.0))}
    decor = []
    for _ in range(int(rng.integers(2, 6))):
        kind = str(rng.choice(["table", "counter", "shelf", "bin", "cabinet"]))
        side = int(rng.integers(0, 3))          # 0: left wall, 1: right wall, 2: far wall
        if side == 2:
            pos = [room[1] - rng.uniform(0.35, 0.6), rng.uniform(room[2] + 0.5, room[3] - 0.5)]
            yaw = np.pi
        else:
            y = room[3] - rng.uniform(0.3, 0.5) if side == 0 else room[2] + rng.uniform(0.3, 0.5)
            pos = [rng.uniform(room[0] + 0.5, room[1] - 0.5), y]
            yaw = -np.pi / 2 if side == 0 else np.pi / 2
        if WORK_AREA[0][0] < pos[0] < WORK_AREA[0][1] and WORK_AREA[1][0] < pos[1] < WORK_AREA[1][1]:
            continue
        decor.append({"kind": kind, "pos": [float(pos[0]), float(pos[1])], "yaw": float(yaw),
                      "width": float(rng.uniform(0.5, 1.2)), "depth": float(rng.uniform(0.35, 0.6)),
                      "height": float(rng.uniform(0.5, 1.3)), "rgb": _rgb(rng, 0.2, 0.8)})
    return Layout(index, tuple(float(v) for v in room), float(rng.uniform(2.4, 3.0)), floor, _rgb(rng, 0.45, 0.95),
                  [float(rng.uniform(-0.5, 1.5)), float(rng.uniform(-1.0, 1.0)), float(rng.uniform(2.2, 2.8))],
                  _rgb(rng, 0.6, 0.9), float(rng.uniform(0.25, 0.45)), decor)


# ------------------------------------------------------------------------------------------ builders
def _static_box(body: mujoco.MjsBody, name: str, pos, half, rgba, material: str | None = None) -> mujoco.MjsGeom:
    g = body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(pos), size=list(half), rgba=list(rgba),
                      friction=[0.8, 0.005, 0.0001])
    g.contype, g.conaffinity = WORLD_BIT, 0
    if material:
        g.material = material
    return g


def add_room(spec: mujoco.MjSpec, lay: Layout) -> None:
    """Floor, four walls, lights and the layout's decor furniture."""
    x0, x1, y0, y1 = lay.room
    f = lay.floor
    spec.add_texture(name="floor_tex", type=mujoco.mjtTexture.mjTEXTURE_2D,
                     builtin={"checker": mujoco.mjtBuiltin.mjBUILTIN_CHECKER, "gradient": mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
                              "flat": mujoco.mjtBuiltin.mjBUILTIN_FLAT}[f["builtin"]],
                     mark={"edge": mujoco.mjtMark.mjMARK_EDGE, "random": mujoco.mjtMark.mjMARK_RANDOM,
                           "none": mujoco.mjtMark.mjMARK_NONE}[f["mark"]],
                     rgb1=f["rgb1"], rgb2=f["rgb2"], markrgb=f["markrgb"], random=f["random"], width=128, height=128)
    spec.add_material(name="floor_mat", textures=["", "floor_tex"], texrepeat=[f["texrepeat"], f["texrepeat"]],
                      reflectance=0.0)
    spec.add_texture(name="wall_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
                     rgb1=lay.wall_rgb, rgb2=[c * 0.8 for c in lay.wall_rgb], width=64, height=64)
    spec.add_material(name="wall_mat", textures=["", "wall_tex"], texrepeat=[1.0, 1.0])
    world = spec.worldbody
    # a plane's third size is its rendering grid: every cell is drawn, so 0.05 m cells (6-8 k quads in a room)
    # cost a software renderer more than the whole robot; 0.5 m cells look the same under our lights
    floor = world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[(x1 - x0) / 2, (y1 - y0) / 2, FLOOR_GRID],
                           pos=[(x0 + x1) / 2, (y0 + y1) / 2, 0.0], material="floor_mat", friction=[0.9, 0.005, 0.0001])
    floor.contype, floor.conaffinity = FLOOR_BIT, 0
    h = lay.wall_height
    t = 0.05
    for name, pos, half in (("wall_far", [x1 + t, (y0 + y1) / 2, h / 2], [t, (y1 - y0) / 2 + t, h / 2]),
                            ("wall_back", [x0 - t, (y0 + y1) / 2, h / 2], [t, (y1 - y0) / 2 + t, h / 2]),
                            ("wall_left", [(x0 + x1) / 2, y1 + t, h / 2], [(x1 - x0) / 2 + t, t, h / 2]),
                            ("wall_right", [(x0 + x1) / 2, y0 - t, h / 2], [(x1 - x0) / 2 + t, t, h / 2])):
        _static_box(world, name, pos, half, [1, 1, 1, 1], "wall_mat")
    spec.visual.headlight.ambient = [lay.ambient] * 3
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
    world.add_light(name="ceiling", pos=lay.light_pos, dir=[0.0, 0.0, -1.0], diffuse=lay.light_rgb, castshadow=False)
    for k, item in enumerate(lay.decor):
        add_furniture(spec, f"decor{k}", item["kind"], item["pos"], item["yaw"], item["width"], item["depth"],
                      item["height"], item["rgb"] + [1.0])


def add_furniture(spec: mujoco.MjSpec, name: str, kind: str, pos, yaw: float, width: float, depth: float,
                  height: float, rgba) -> dict:
    """A static table / counter / shelf / cabinet / bin at floor position `pos` (x, y), its front facing
    -x rotated by `yaw`. Returns its surfaces: {"top": z, "levels": [z...], "inner": half sizes} etc."""
    body = spec.worldbody.add_body(name=name, pos=[pos[0], pos[1], 0.0],
                                   quat=[np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    hx, hy = depth / 2, width / 2
    leg = [0.35 * c for c in rgba[:3]] + [1.0]
    info: dict = {"kind": kind, "pos": [float(pos[0]), float(pos[1])], "yaw": float(yaw), "half": [hx, hy]}
    if kind in ("table", "counter", "cabinet"):
        top = 0.03
        _static_box(body, f"{name}_top", [0, 0, height - top / 2], [hx, hy, top / 2], rgba)
        if kind == "table":
            for i, (sx, sy) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
                _static_box(body, f"{name}_leg{i}", [sx * (hx - 0.03), sy * (hy - 0.03), (height - top) / 2],
                            [0.02, 0.02, (height - top) / 2], leg)
        else:   # a solid base set back from the front edge (toe kick), so feet and shins fit under the lip
            _static_box(body, f"{name}_base", [0.06, 0, (height - top) / 2], [hx - 0.06, hy - 0.02, (height - top) / 2], leg)
        info["top"] = height
    elif kind == "shelf":
        levels = [0.0] + sorted(np.linspace(0.35, height, max(2, int(height / 0.35))).tolist())
        board = 0.02
        for i, z in enumerate(levels[1:]):
            _static_box(body, f"{name}_board{i}", [0, 0, z - board / 2], [hx, hy, board / 2], rgba)
        for i, sy in enumerate((1, -1)):
            _static_box(body, f"{name}_side{i}", [0, sy * (hy + 0.01), levels[-1] / 2], [hx, 0.01, levels[-1] / 2], leg)
        _static_box(body, f"{name}_back", [hx + 0.01, 0, levels[-1] / 2], [0.01, hy + 0.02, levels[-1] / 2], leg)
        info["levels"] = levels[1:]
        info["top"] = levels[-1]
    elif kind == "bin":
        add_bin(body, name, [0.0, 0.0, 0.0], hx, hy, height, rgba)
        info["top"] = height
    else:
        raise ValueError(f"unknown furniture kind {kind!r}")
    return info


def add_bin(body: mujoco.MjsBody, name: str, pos, hx: float, hy: float, height: float, rgba) -> None:
    """An open box (floor + 4 walls), `pos` = centre of its floor's underside, in `body`'s frame."""
    t = 0.01
    x, y, z = pos
    _static_box(body, f"{name}_floor", [x, y, z + t / 2], [hx, hy, t / 2], rgba)
    for i, (px, py, sx, sy) in enumerate(((hx, 0, t, hy), (-hx, 0, t, hy), (0, hy, hx, t), (0, -hy, hx, t))):
        _static_box(body, f"{name}_wall{i}", [x + px, y + py, z + height / 2], [sx, sy, height / 2], rgba)


def add_object(spec: mujoco.MjSpec, name: str, kind: str, pos, yaw: float, size, rgba, mass: float) -> dict:
    """A free rigid object resting with its bottom at pos[2]. kinds: box (size = half x, y, z), cylinder /
    cup (radius, half height), bag (box + a handle on top: size = half x, y, z), sponge (flat box)."""
    body = spec.worldbody.add_body(name=name, pos=[pos[0], pos[1], pos[2]],
                                   quat=[np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    body.add_freejoint(name=f"{name}_free")
    geoms = []
    if kind in ("box", "sponge", "bag"):
        hx, hy, hz = size
        geoms.append(body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, 0, hz],
                                   size=[hx, hy, hz], rgba=list(rgba), mass=mass))
        height = 2 * hz
        if kind == "bag":   # a handle arch: two posts and a bar, grasped by the hand
            dark = [0.5 * c for c in rgba[:3]] + [1.0]
            for i, sx in enumerate((-1, 1)):
                geoms.append(body.add_geom(name=f"{name}_post{i}", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                                           fromto=[sx * 0.6 * hx, 0, 2 * hz, sx * 0.6 * hx, 0, 2 * hz + 0.06],
                                           size=[0.008, 0, 0], rgba=dark, mass=0.01))
            geoms.append(body.add_geom(name=f"{name}_handle", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                                       fromto=[-0.6 * hx, 0, 2 * hz + 0.06, 0.6 * hx, 0, 2 * hz + 0.06],
                                       size=[0.01, 0, 0], rgba=dark, mass=0.01))
            height = 2 * hz + 0.07
    elif kind in ("cylinder", "cup"):
        r, hz = size
        geoms.append(body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, hz],
                                   size=[r, hz, 0], rgba=list(rgba), mass=mass))
        height = 2 * hz
        if kind == "cup":
            dark = [0.6 * c for c in rgba[:3]] + [1.0]
            geoms.append(body.add_geom(name=f"{name}_rim", type=mujoco.mjtGeom.mjGEOM_CYLINDER, pos=[0, 0, 2 * hz],
                                       size=[r * 1.05, 0.004, 0], rgba=dark, mass=0.005))
    else:
        raise ValueError(f"unknown object kind {kind!r}")
    for g in geoms:
        g.contype, g.conaffinity = WORLD_BIT, FLOOR_BIT | ROBOT_BIT | WORLD_BIT
        g.friction = [1.0, 0.01, 0.001]
        g.condim = 4
    return {"name": name, "kind": kind, "size": [float(v) for v in size], "height": float(height), "mass": float(mass)}
