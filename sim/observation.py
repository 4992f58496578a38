"""The privileged observation: object poses, the task's target and the base pose, as one named vector.

For CPU proofs a policy may see this instead of (or next to) images (documented in docs/sim.md).
Poses are in the robot's base frame (pelvis position, heading only), so a policy sees what is
relative to it; the base pose itself is in the world frame of the episode.
"""
from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from schemas.spaces import Space

MAX_OBJECTS = 2
_OBJ = ("x", "y", "z", "qw", "qx", "qy", "qz")
PRIVILEGED = Space(
    "sim_privileged",
    tuple(f"object{k}.{a}" for k in range(MAX_OBJECTS) for a in _OBJ)
    + ("target.x", "target.y", "target.z", "base.x", "base.y", "base.yaw", "held.left", "held.right", "progress"),
    {"objects": (0, MAX_OBJECTS * len(_OBJ)), "target": (MAX_OBJECTS * len(_OBJ), MAX_OBJECTS * len(_OBJ) + 3)},
)


def to_base_frame(base: np.ndarray, p: np.ndarray) -> np.ndarray:
    """World point -> (x fwd, y left, z up) relative to the base pose (x, y, yaw); z stays absolute."""
    c, s = np.cos(base[2]), np.sin(base[2])
    dx, dy = p[0] - base[0], p[1] - base[1]
    return np.array([c * dx + s * dy, -s * dx + c * dy, p[2]])


def privileged_vector(env: Any) -> np.ndarray:
    from sim.tasks import TEMPLATES  # noqa: PLC0415
    out = np.zeros(PRIVILEGED.size, np.float32)
    base = env.base_pose()
    heading = np.array([np.cos(-base[2] / 2), 0.0, 0.0, np.sin(-base[2] / 2)])
    for k, obj in enumerate(env.task.objects[:MAX_OBJECTS]):
        bid = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, obj["name"])
        q = np.zeros(4)
        mujoco.mju_mulQuat(q, heading, env.data.xquat[bid])
        o = k * len(_OBJ)
        out[o:o + 3] = to_base_frame(base, env.data.xpos[bid])
        out[o + 3:o + 7] = q
    target = TEMPLATES[env.task.template].target_point(env)
    out[PRIVILEGED.slice("target")] = to_base_frame(base, target)
    tail = PRIVILEGED.index("base.x")
    out[tail:tail + 3] = base
    out[PRIVILEGED.index("held.left")] = float(env.assist.held["left"] is not None)
    out[PRIVILEGED.index("held.right")] = float(env.assist.held["right"] is not None)
    out[PRIVILEGED.index("progress")] = float(env.task_state.get("progress", 0.0))
    return out
