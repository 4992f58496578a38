"""Retargeting stage: human hand keypoints -> G1 arms + dexterous hands, with residuals.

`retarget_episode(episode, config)` adds, for an EgoDex-style episode:
- `action.robot` (36, `schemas.PSI0_ACTION`): Dex3-1 hands (vector retargeting), G1 arms (DLS IK on the
  wrist poses, camera -> torso via `Calibration`), lower body = standing still at nominal height;
- `action.inspire` (12: left 6, right 6) when `config.inspire`;
- `retarget.residual` (6): per-frame arm position (m) / rotation (rad) errors and hand fingertip errors (m);
and records residual percentiles in `meta.quality`. Episodes whose p95 residuals exceed the configured
limits raise `EpisodeError(RETARGET_ERROR)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from converters.retarget.arm_ik import Calibration, IKConfig, arm_chain, solve_ik
from converters.retarget.hands import HandRetargetConfig, dex3_model, inspire_model, retarget_hand
from converters.retarget.human_action import hand_poses
from schemas import NOMINAL_TORSO_HEIGHT, PSI0_ACTION, Episode, EpisodeError, FeatureSpec, RejectReason, vector_column
from schemas.embodiments import INSPIRE_HAND

KEYPOINT_COLUMNS = {"left": "human.left_hand.keypoints", "right": "human.right_hand.keypoints"}
RESIDUAL_NAMES = ("left_arm.position_m", "left_arm.rotation_rad", "right_arm.position_m", "right_arm.rotation_rad",
                  "left_hand.tip_m", "right_hand.tip_m")


@dataclass(frozen=True)
class RetargetConfig:
    calibration: Calibration = field(default_factory=Calibration)
    ik: IKConfig = field(default_factory=IKConfig)
    hands: HandRetargetConfig = field(default_factory=HandRetargetConfig)
    inspire: bool = False
    max_arm_position_error: float = 0.05       # p95 over frames, metres
    max_arm_rotation_error: float = 0.5        # p95, radians
    max_hand_tip_error: float = 0.03           # p95, metres (robot scale)


def _keypoints(episode: Episode, side: str) -> np.ndarray:
    key = KEYPOINT_COLUMNS[side]
    if key not in episode.frames.column_names:
        raise EpisodeError(RejectReason.MISSING_KEY, f"retarget needs column {key!r}")
    kp = episode.column(key).astype(np.float64)
    if kp.ndim != 2 or kp.shape[1] != 75:
        raise EpisodeError(RejectReason.SHAPE_MISMATCH, f"{key}: expected (T, 75), got {kp.shape}")
    if not np.isfinite(kp).all():
        raise EpisodeError(RejectReason.NON_FINITE, f"{key}: non-finite keypoints")
    return kp.reshape(-1, 25, 3)


def retarget_keypoints(keypoints: dict[str, np.ndarray], config: RetargetConfig = RetargetConfig()) -> dict[str, np.ndarray]:
    """Both hands' (T, 25, 3) camera-frame keypoints -> robot arrays (no episode plumbing)."""
    t = len(keypoints["left"])
    out: dict[str, np.ndarray] = {}
    action = np.zeros((t, PSI0_ACTION.size), dtype=np.float64)
    residual = np.zeros((t, len(RESIDUAL_NAMES)))
    for i, side in enumerate(("left", "right")):
        kp = keypoints[side]
        hand = retarget_hand(dex3_model(side), kp, config.hands)
        action[:, PSI0_ACTION.slice(f"{side}_hand")] = hand.q
        residual[:, 4 + i] = hand.tip_error
        targets = config.calibration.camera_to_torso(hand_poses(kp, side))
        arm = solve_ik(arm_chain(side), targets, config.ik)
        action[:, PSI0_ACTION.slice(f"{side}_arm")] = arm.q
        residual[:, 2 * i] = arm.position_error
        residual[:, 2 * i + 1] = arm.rotation_error
        if config.inspire:
            out[f"inspire_{side}"] = retarget_hand(inspire_model(side), kp, config.hands).q
    lower = PSI0_ACTION.slice("lower_body")
    action[:, lower.start + 3] = NOMINAL_TORSO_HEIGHT
    out["action"] = action
    out["residual"] = residual
    return out


def retarget_episode(episode: Episode, config: RetargetConfig = RetargetConfig()) -> Episode:
    """Add `action.robot`, `retarget.residual` (and `action.inspire`) columns; reject on large residuals."""
    kps = {side: _keypoints(episode, side) for side in ("left", "right")}
    res = retarget_keypoints(kps, config)
    residual = res["residual"]
    p95 = np.percentile(residual, 95, axis=0) if len(residual) else np.zeros(len(RESIDUAL_NAMES))
    quality = dict(episode.meta.quality)
    for j, name in enumerate(RESIDUAL_NAMES):
        quality[f"retarget.{name}.p50"] = float(np.median(residual[:, j])) if len(residual) else 0.0
        quality[f"retarget.{name}.p95"] = float(p95[j])
    limits = [(0, config.max_arm_position_error), (1, config.max_arm_rotation_error),
              (2, config.max_arm_position_error), (3, config.max_arm_rotation_error),
              (4, config.max_hand_tip_error), (5, config.max_hand_tip_error)]
    bad = {RESIDUAL_NAMES[j]: float(p95[j]) for j, lim in limits if p95[j] > lim}
    if bad:
        raise EpisodeError(RejectReason.RETARGET_ERROR,
                           "retargeting residual above limit (p95): " + ", ".join(f"{k}={v:.3g}" for k, v in sorted(bad.items())),
                           residual_p95=bad)
    frames = episode.frames.append_column("action.robot", vector_column(res["action"]))
    frames = frames.append_column("retarget.residual", vector_column(residual))
    features = dict(episode.features)
    features["action.robot"] = FeatureSpec("action.robot", "float32", (PSI0_ACTION.size,), PSI0_ACTION.dims)
    features["retarget.residual"] = FeatureSpec("retarget.residual", "float32", (len(RESIDUAL_NAMES),), RESIDUAL_NAMES)
    derived = dict(episode.meta.derived)
    derived["action.robot"] = ("retargeted from human hand keypoints: Dex3-1 vector retargeting, G1 DLS IK on "
                               f"palmar wrist frames (camera->torso {config.calibration}), lower body standing")
    if config.inspire:
        inspire = np.concatenate([res["inspire_left"], res["inspire_right"]], axis=1)
        frames = frames.append_column("action.inspire", vector_column(inspire))
        names = tuple(f"{s}.{d}" for s in ("left", "right") for d in INSPIRE_HAND.dims)
        features["action.inspire"] = FeatureSpec("action.inspire", "float32", (12,), names)
        derived["action.inspire"] = "retargeted from human hand keypoints: Inspire vector retargeting"
    meta = replace(episode.meta, quality=quality, derived=derived)
    return Episode(meta, frames, features, dict(episode.videos))


__all__ = ["RetargetConfig", "RESIDUAL_NAMES", "retarget_episode", "retarget_keypoints"]
