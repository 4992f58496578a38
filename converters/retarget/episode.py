"""The retargeting stage on whole episodes (`converters.retarget` documents it): batched torch IK and hand
retargeting, residual checks, the `action.robot` column."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from converters.retarget.arm_ik import Calibration, IKConfig, solve_ik
from converters.retarget.hands import HandRetargetConfig, hand_model, retarget_hand
from converters.retarget.human_action import hand_poses
from converters.retarget.kinematics import chain
from schemas import (LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT, PSI0_ACTION, Episode, EpisodeError, FeatureSpec,
                     RejectReason, embodiments, vector_column)
from schemas.embodiments import HUMAN_HAND_KEYPOINTS, SIDES, Embodiment

KEYPOINT_COLUMNS = {"left": "human.left_hand.keypoints", "right": "human.right_hand.keypoints"}
RESIDUAL_NAMES = ("left_arm.position_m", "left_arm.rotation_rad", "right_arm.position_m", "right_arm.rotation_rad",
                  "left_hand.tip_m", "right_hand.tip_m")


@dataclass(frozen=True)
class RetargetConfig:
    calibration: Calibration = field(default_factory=Calibration)
    ik: IKConfig = field(default_factory=IKConfig)
    hands: HandRetargetConfig = field(default_factory=HandRetargetConfig)
    embodiment: str | None = None              # target robot; None: the episode's, else embodiments.DEFAULT
    max_arm_position_error: float = 0.05       # p95 over frames, metres
    max_arm_rotation_error: float = 0.5        # p95, radians
    max_hand_tip_error: float = 0.03           # p95, metres (robot scale)


def _keypoints(episode: Episode, side: str) -> np.ndarray:
    key = KEYPOINT_COLUMNS[side]
    if key not in episode.frames.column_names:
        raise EpisodeError(RejectReason.MISSING_KEY, f"retarget needs column {key!r}")
    kp = episode.column(key).astype(np.float64)
    width = HUMAN_HAND_KEYPOINTS[side].size
    if kp.ndim != 2 or kp.shape[1] != width:
        raise EpisodeError(RejectReason.SHAPE_MISMATCH, f"{key}: expected (T, {width}), got {kp.shape}")
    if not np.isfinite(kp).all():
        raise EpisodeError(RejectReason.NON_FINITE, f"{key}: non-finite keypoints")
    return kp.reshape(len(kp), -1, 3)


def target_embodiment(config: "RetargetConfig", episode: Episode | None = None) -> Embodiment:
    """The robot to retarget to: the configured one, else the episode's (when it names a registered robot
    configuration; human data does not), else `embodiments.DEFAULT`."""
    if config.embodiment is not None:
        return embodiments.get(config.embodiment)
    if episode is not None and episode.meta.embodiment in embodiments.spellings():
        return embodiments.get(episode.meta.embodiment)
    return embodiments.get()


def retarget_keypoints(keypoints: dict[str, np.ndarray], config: RetargetConfig = RetargetConfig(),
                       embodiment: str | Embodiment | None = None) -> dict[str, np.ndarray]:
    """Both hands' (T, 25, 3) camera-frame keypoints -> robot arrays (no episode plumbing).

    `embodiment` (else `config.embodiment`, else the default) names the robot; the result's "action" is its
    PSI0_ACTION rows, "hands" its native hand joints per side (`<side>_hand`, (T, hand dof))."""
    emb = embodiments.get(embodiment if embodiment is not None else config.embodiment)
    if emb.ik is None:
        raise ValueError(f"{emb.name}: no arm kinematics to retarget the arms onto")
    t = len(keypoints["left"])
    out: dict[str, np.ndarray] = {}
    action = np.zeros((t, PSI0_ACTION.size), dtype=np.float64)
    residual = np.zeros((t, len(RESIDUAL_NAMES)))
    for i, side in enumerate(SIDES):
        kp = keypoints[side]
        hand = retarget_hand(hand_model(emb.hand, side), kp, config.hands)
        action[:, PSI0_ACTION.slice(f"{side}_hand")] = emb.hand.to_slots(hand.q)
        out[f"{side}_hand"] = hand.q
        residual[:, 4 + i] = hand.tip_error
        targets = config.calibration.camera_to_torso(hand_poses(kp, side))
        arm = solve_ik(chain(emb.ik.chains[side]), targets, config.ik)
        action[:, PSI0_ACTION.slice(f"{side}_arm")] = arm.q
        residual[:, 2 * i] = arm.position_error
        residual[:, 2 * i + 1] = arm.rotation_error
    lower = PSI0_ACTION.slice("lower_body")
    action[:, lower.start + LOWER_BODY_COMMAND.index("torso_height")] = NOMINAL_TORSO_HEIGHT
    out["action"] = action
    out["residual"] = residual
    return out


def retarget_episode(episode: Episode, config: RetargetConfig = RetargetConfig()) -> Episode:
    """Add `action.robot` and `retarget.residual` columns; reject on large residuals."""
    kps = {side: _keypoints(episode, side) for side in SIDES}
    emb = target_embodiment(config, episode)
    res = retarget_keypoints(kps, config, emb)
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
    derived["action.robot"] = (f"retargeted from human hand keypoints: {emb.hand.title} vector retargeting, "
                               f"{emb.ik.title} DLS IK on palmar wrist frames (camera->torso {config.calibration}), "
                               "lower body standing")
    meta = replace(episode.meta, quality=quality, derived=derived)
    return Episode(meta, frames, features, dict(episode.videos))


__all__ = ["RetargetConfig", "RESIDUAL_NAMES", "retarget_episode", "retarget_keypoints", "target_embodiment"]
