"""The 8-DoF lower-body command of a recording that has none (Humanoid Everyday), with AMO's meaning, or masked.

AMO (the system-0 tracker Ψ₀ commands; shared/reference/egodex_amo.md, psi0_amo_teleop_detail.md 2)
takes torso roll / pitch / yaw (waist commands), a torso height (0.75 m + an offset from its nominal
stance), forward / lateral velocity in the heading frame, and a target heading that the bridge integrates
from a yaw rate. A recording of the robot's *state* shows what such a command did; each dim is derived
from the state that carries its meaning, or masked out of the loss when the robot has no such state:

| dim | derived from | masked when |
|---|---|---|
| torso_roll, torso_pitch | waist roll / pitch joints + the pelvis roll / pitch (odometry, else IMU): the torso's tilt | the body has no waist roll / pitch joint (H1) |
| torso_yaw | the waist yaw joint (relative to the pelvis heading, as AMO's command is) | the body has no waist yaw joint |
| torso_height | leg forward kinematics (`LegGeometry`): pelvis height above the soles, relative to the stance AMO calls 0.75 m | the body has no leg table (H1: AMO is a G1 controller) |
| vx, vy | odometry velocity (else the derivative of odometry position) rotated into the heading frame | no odometry |
| yaw_rate | derivative of the unwrapped heading | a frame whose rate is outside the command bounds |
| target_yaw | the unwrapped heading relative to the episode's first frame (the bridge's yaw offset), never wrapped | - |

A masked value is written as the neutral command (0, or the nominal height) so vectors stay finite;
`action.mask` says it is not a label. Derivations are checked against simulators that record the command
they executed (tests/test_lower_body_labels.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT
from schemas.embodiments import Embodiment

DIMS = {d: i for i, d in enumerate(LOWER_BODY_COMMAND.dims)}


@dataclass
class LowerBody:
    """(T, 8) command in LOWER_BODY_COMMAND order, (T, 8) bool validity, and one line per dim saying how."""

    command: np.ndarray
    valid: np.ndarray
    how: dict[str, str]


def _joint(emb: Embodiment, legs_waist: np.ndarray, name: str) -> np.ndarray | None:
    dims = emb.body.legs_waist.dims
    return legs_waist[:, dims.index(name)] if name in dims else None


def pelvis_height(emb: Embodiment, legs_waist: np.ndarray, pelvis_roll: np.ndarray,
                  pelvis_pitch: np.ndarray) -> np.ndarray | None:
    """Pelvis height above the soles (T,) from the leg joints and the pelvis tilt (the stance leg: the higher
    of the two), or None without a leg table. Sagittal chain: hip drop, thigh, shank, flat foot."""
    legs = emb.body.legs
    if legs is None:
        return None
    heights = []
    for side in ("left", "right"):
        hip = _joint(emb, legs_waist, f"{side}_hip_pitch")
        knee = _joint(emb, legs_waist, f"{side}_knee")
        roll = _joint(emb, legs_waist, f"{side}_hip_roll")
        if hip is None or knee is None:
            return None
        thigh = pelvis_pitch + hip                                   # from vertical, + = backwards
        tilt = np.cos(pelvis_roll + (0.0 if roll is None else roll))
        heights.append(legs.hip_drop * np.cos(pelvis_pitch) * np.cos(pelvis_roll)
                       + tilt * (legs.thigh * np.cos(thigh) + legs.shank * np.cos(thigh + knee)) + legs.sole)
    return np.maximum(*heights)


def derive(emb: Embodiment, t: np.ndarray, legs_waist: np.ndarray, imu_rpy: np.ndarray,
           odometry: dict[str, np.ndarray | None]) -> LowerBody:
    """The lower-body command a recorded state shows (see the module table). `odometry` holds optional
    "position", "velocity" (world frame), "rpy" arrays (T, 3)."""
    n = len(t)
    out = np.zeros((n, LOWER_BODY_COMMAND.size))
    valid = np.zeros((n, LOWER_BODY_COMMAND.size), bool)
    how: dict[str, str] = {}
    att_name = "odometry.rpy" if odometry.get("rpy") is not None else "imu.rpy"
    attitude = np.asarray(odometry["rpy"] if odometry.get("rpy") is not None else imu_rpy, np.float64)
    roll, pitch = attitude[:, 0], attitude[:, 1]
    heading = np.unwrap(attitude[:, 2])

    # torso roll / pitch / yaw: the waist joints (+ the pelvis tilt for roll and pitch)
    for dim, joint, tilt in (("torso_roll", "waist_roll", roll), ("torso_pitch", "waist_pitch", pitch),
                             ("torso_yaw", "waist_yaw", None)):
        q = _joint(emb, legs_waist, joint)
        if q is None:
            how[dim] = f"masked: {emb.body.title} has no {joint} joint"
            continue
        out[:, DIMS[dim]] = q if tilt is None else q + tilt
        valid[:, DIMS[dim]] = True
        how[dim] = f"leg_state {joint}" + ("" if tilt is None else f" + pelvis {dim.split('_')[1]} ({att_name})")

    # torso height: leg kinematics relative to the nominal stance
    height = pelvis_height(emb, legs_waist, roll, pitch)
    if height is None:
        out[:, DIMS["torso_height"]] = NOMINAL_TORSO_HEIGHT
        how["torso_height"] = f"masked: no leg table for {emb.body.title} (AMO's height is a G1 stance command)"
    else:
        stance = emb.body.legs.stance_pelvis_height
        out[:, DIMS["torso_height"]] = NOMINAL_TORSO_HEIGHT + height - stance
        valid[:, DIMS["torso_height"]] = True
        how["torso_height"] = (f"{NOMINAL_TORSO_HEIGHT} m + leg-FK pelvis height - {stance} m (the stance AMO calls "
                               f"{NOMINAL_TORSO_HEIGHT} m)")

    # planar velocity in the heading frame
    vel, pos = odometry.get("velocity"), odometry.get("position")
    if vel is None and pos is not None and n > 1:
        vel = np.gradient(np.asarray(pos, np.float64), t, axis=0)
        vel_how = "d/dt odometry.position"
    else:
        vel_how = "odometry.velocity"
    if vel is not None:
        c, s = np.cos(heading), np.sin(heading)
        out[:, DIMS["vx"]] = c * vel[:, 0] + s * vel[:, 1]
        out[:, DIMS["vy"]] = -s * vel[:, 0] + c * vel[:, 1]
        valid[:, DIMS["vx"]] = valid[:, DIMS["vy"]] = True
        how["vx"] = how["vy"] = f"{vel_how} (world) rotated into the heading frame ({att_name} yaw)"
    else:
        how["vx"] = how["vy"] = "masked: no odometry"

    # heading: yaw rate and the integrated target
    out[:, DIMS["yaw_rate"]] = np.gradient(heading, t) if n > 1 else 0.0
    valid[:, DIMS["yaw_rate"]] = True
    how["yaw_rate"] = f"d/dt unwrapped {att_name} yaw"
    out[:, DIMS["target_yaw"]] = heading - heading[0]
    valid[:, DIMS["target_yaw"]] = True
    how["target_yaw"] = f"unwrapped {att_name} yaw minus the first frame's (not wrapped)"

    # a rate beyond the command's range is no command AMO was given: masked there, never clipped
    low, high = LOWER_BODY_COMMAND.bounds()
    for dim in ("torso_roll", "torso_pitch", "torso_yaw", "torso_height", "vx", "vy", "yaw_rate"):
        k = DIMS[dim]
        outside = (out[:, k] < low[k]) | (out[:, k] > high[k])
        if outside.any() and valid[:, k].any():
            valid[:, k] &= ~outside
            how[dim] += f"; {int(outside.sum())} frame(s) outside [{low[k]:g}, {high[k]:g}] masked"
        out[:, k] = np.clip(out[:, k], low[k], high[k])
    return LowerBody(out, valid, how)


def describe_mask(valid: np.ndarray) -> dict[str, Any]:
    """Fraction of frames with a label, per lower-body dim (for meta.quality)."""
    return {f"lower_body.{d}.labelled": float(valid[:, k].mean()) if len(valid) else 0.0
            for d, k in DIMS.items()}
