"""Operator calibration: stand still in a reference pose for N ticks -> scale, offsets, floor, pelvis height.

What it estimates (model: `teleop.body`):
- forward direction: perpendicular to the line between the wrists (no tracker orientation needed);
- per-site rotation offsets: tracker frame -> body-site frame, so that in the reference pose the pelvis and
  head frames face forward level and the wrist frames equal the G1's wrist frames in that pose
  (trackers can be strapped on at any angle). Translation offsets are not observable from one pose and
  are left zero;
- floor height from the ankle trackers (else `floor_height`), stature from the head tracker, the shoulder
  centre (anthropometric height, head's horizontal position) relative to the pelvis;
- operator scale = robot / operator shoulder->wrist distance in the reference pose (G1 FK vs measured);
- standing pelvis height (the zero of the squat command) and palm lengths (hand retargeting scale).

Saved with the session as canonical JSON (`to_json` / `from_json`).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from teleop.body import HEAD_RATIO, FOOT_TRACKER_HEIGHT, SHOULDER_RATIO, PELVIS_RATIO, robot_reference_wrists, \
    robot_shoulder_center
from teleop.geometry import mean_rotation, rot_z
from teleop.streams import BODY_SITES, HAND_SIDES, REQUIRED_SITES, OperatorInput

CALIBRATION_VERSION = 1


class CalibrationError(ValueError):
    """The calibration samples cannot produce a calibration (too few valid ticks, operator moving, ...)."""


def _default_offsets() -> dict[str, np.ndarray]:
    return {s: np.eye(4) for s in BODY_SITES}


@dataclass(frozen=True)
class Calibration:
    reference: str = "ready"
    scale: float = 0.637                       # robot / operator arm length (1.75 m operator)
    shoulder_offset: tuple[float, float, float] = (0.0, 0.0, (SHOULDER_RATIO - PELVIS_RATIO) * 1.75)
    head_offset: tuple[float, float, float] = (0.0, 0.0, (HEAD_RATIO - PELVIS_RATIO) * 1.75)
    """Shoulder centre / head relative to the pelvis, pelvis heading frame, in the reference pose."""
    floor_height: float = 0.0
    standing_pelvis_height: float = PELVIS_RATIO * 1.75
    stature: float = 1.75
    palm_length: dict[str, float] = field(default_factory=lambda: {"left": 0.094, "right": 0.094})
    site_offsets: dict[str, np.ndarray] = field(default_factory=_default_offsets)
    """site -> 4x4, body-site frame = tracker pose @ offset."""
    ticks: int = 0

    def apply(self, poses: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raw tracker poses -> body-site poses."""
        return {s: p @ self.site_offsets[s] if s in self.site_offsets else p for s, p in poses.items()}

    # -- JSON
    def to_dict(self) -> dict:
        return {
            "version": CALIBRATION_VERSION, "reference": self.reference, "scale": float(self.scale),
            "shoulder_offset": [float(v) for v in self.shoulder_offset],
            "head_offset": [float(v) for v in self.head_offset],
            "floor_height": float(self.floor_height), "standing_pelvis_height": float(self.standing_pelvis_height),
            "stature": float(self.stature), "palm_length": {k: float(v) for k, v in sorted(self.palm_length.items())},
            "site_offsets": {k: np.asarray(v, np.float64).tolist() for k, v in sorted(self.site_offsets.items())},
            "ticks": int(self.ticks),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        if d.get("version") != CALIBRATION_VERSION:
            raise CalibrationError(f"calibration version {d.get('version')!r} != {CALIBRATION_VERSION}")
        return cls(reference=d["reference"], scale=float(d["scale"]), shoulder_offset=tuple(d["shoulder_offset"]),
                   head_offset=tuple(d["head_offset"]), floor_height=float(d["floor_height"]),
                   standing_pelvis_height=float(d["standing_pelvis_height"]), stature=float(d["stature"]),
                   palm_length={k: float(v) for k, v in d["palm_length"].items()},
                   site_offsets={k: np.asarray(v, np.float64) for k, v in d["site_offsets"].items()},
                   ticks=int(d["ticks"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return cls.from_json(Path(path).read_text())


def _robust_mean_position(ps: np.ndarray) -> np.ndarray:
    return np.median(ps, axis=0)


def calibrate(samples: Iterable[OperatorInput], reference: str = "ready", *, min_ticks: int = 20,
              max_motion: float = 0.04, floor_height: float = 0.0, embodiment: str | None = None) -> Calibration:
    """Estimate a `Calibration` from ticks of an operator holding `reference` still (a reference pose of
    `embodiment`'s arms; None: the default embodiment's).

    Ticks where a required site is lost are skipped; raises `CalibrationError` with fewer than `min_ticks`
    usable ticks or when a site moved more than `max_motion` m (p95 distance from its median)."""
    use = [s for s in samples if all(s.pose_valid.get(k, False) for k in REQUIRED_SITES)]
    if len(use) < min_ticks:
        raise CalibrationError(f"calibration needs {min_ticks} ticks with {', '.join(REQUIRED_SITES)} tracked; "
                               f"got {len(use)}")
    pos = {k: np.stack([s.poses[k][:3, 3] for s in use]) for k in REQUIRED_SITES}
    for k, p in pos.items():
        spread = np.percentile(np.linalg.norm(p - np.median(p, axis=0), axis=1), 95)
        if spread > max_motion:
            raise CalibrationError(f"operator moved during calibration: {k} p95 {spread:.3f} m > {max_motion} m; "
                                   f"hold the {reference} pose still")
    m = {k: _robust_mean_position(p) for k, p in pos.items()}
    lateral = m["left_wrist"] - m["right_wrist"]
    lateral[2] = 0.0
    if np.linalg.norm(lateral) < 0.05:
        raise CalibrationError("wrists are not side by side; cannot tell which way the operator faces")
    forward = np.cross(lateral, [0.0, 0.0, 1.0])
    yaw0 = float(np.arctan2(forward[1], forward[0]))
    r_heading = rot_z(yaw0)

    feet = [k for k in ("left_foot", "right_foot")
            if sum(s.pose_valid.get(k, False) for s in use) >= min_ticks // 2]
    if feet:
        floor = float(np.median([s.poses[k][2, 3] for s in use for k in feet if s.pose_valid.get(k, False)])
                      - FOOT_TRACKER_HEIGHT)
    else:
        floor = float(floor_height)

    stature = (m["head"][2] - floor) / HEAD_RATIO
    pelvis = m["pelvis"]
    shoulder_world = np.array([m["head"][0], m["head"][1], floor + SHOULDER_RATIO * stature])
    shoulder_offset = r_heading.T @ (shoulder_world - pelvis)
    head_offset = r_heading.T @ (m["head"] - pelvis)

    robot_wrists = robot_reference_wrists(reference, embodiment)
    c_robot = np.asarray(robot_shoulder_center(embodiment))
    robot_len = sum(np.linalg.norm(robot_wrists[s][:3, 3] - c_robot) for s in HAND_SIDES)
    human_len = sum(np.linalg.norm(m[f"{s}_wrist"] - shoulder_world) for s in HAND_SIDES)
    scale = float(robot_len / human_len)

    offsets = _default_offsets()
    expected = {"pelvis": r_heading, "head": r_heading, "left_foot": r_heading, "right_foot": r_heading,
                "left_wrist": r_heading @ robot_wrists["left"][:3, :3],
                "right_wrist": r_heading @ robot_wrists["right"][:3, :3]}
    for site, r_exp in expected.items():
        rots = [s.poses[site][:3, :3] for s in use if s.pose_valid.get(site, False)]
        if not rots:
            continue
        r_tracker = mean_rotation(np.stack(rots))
        offsets[site][:3, :3] = r_tracker.T @ r_exp

    palm = {}
    for side in HAND_SIDES:
        kps = [s.hand_keypoints[side] for s in use if s.hand_valid.get(side, False)]
        if kps:
            kp = np.stack(kps)
            palm[side] = float(np.median(np.linalg.norm((kp[:, 5] + kp[:, 9]) / 2 - kp[:, 0], axis=-1)))
        else:
            palm[side] = 0.094 * stature / 1.75
    return Calibration(reference=reference, scale=scale, shoulder_offset=tuple(float(v) for v in shoulder_offset),
                       head_offset=tuple(float(v) for v in head_offset), floor_height=floor,
                       standing_pelvis_height=float(pelvis[2] - floor), stature=float(stature), palm_length=palm,
                       site_offsets=offsets, ticks=len(use))


class Calibrator:
    """Streaming form for the recorder: feed ticks while the operator holds the pose; `result()` when ready."""

    def __init__(self, reference: str = "ready", ticks: int = 100, **kw):
        self.reference = reference
        self.ticks = ticks
        self.kw = kw
        self.samples: list[OperatorInput] = []

    def add(self, inp: OperatorInput) -> float:
        """Add one tick; returns progress in [0, 1] (valid ticks collected / needed)."""
        if all(inp.pose_valid.get(k, False) for k in REQUIRED_SITES):
            self.samples.append(inp)
        return min(1.0, len(self.samples) / self.ticks)

    @property
    def ready(self) -> bool:
        return len(self.samples) >= self.ticks

    def result(self) -> Calibration:
        return calibrate(self.samples, self.reference, min_ticks=self.ticks, **self.kw)


__all__ = ["Calibration", "CalibrationError", "Calibrator", "calibrate", "CALIBRATION_VERSION"]
