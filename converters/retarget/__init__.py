"""Retargeting stage: human hand keypoints -> a robot's arms + dexterous hands, with residuals.

The target robot is an embodiment of `schemas.embodiments` (`RetargetConfig.embodiment`; unset: the
episode's own embodiment when it names a robot configuration, else `embodiments.DEFAULT`, G1 + Dex3-1).
`retarget_episode(episode, config)` adds, for an EgoDex-style episode:
- `action.robot` (`schemas.PSI0_ACTION`): the hands (vector retargeting on the embodiment's hand
  chains, placed in the hand blocks by its slot map: Dex3-1 as is, Inspire thumb -> little + a zero
  pad), the arms (DLS IK of its arm chains on the wrist poses, camera -> torso via `Calibration`),
  lower body = standing still at nominal height;
- `retarget.residual` (6): per-frame arm position (m) / rotation (rad) errors and hand fingertip errors (m);
and records residual percentiles in `meta.quality`. Episodes whose p95 residuals exceed the configured
limits raise `EpisodeError(RETARGET_ERROR)`.
"""
from __future__ import annotations

from typing import Any

# The stage solves in torch. Importing it lazily keeps torch out of every process that only needs this package's
# numpy modules (`frames`, `robot_hand48`): the converters and so `--help` of the ingest entry points
# (~4.5 s of imports before), and the Ray workers of sources that do not retarget (Humanoid Everyday, teleop).
_STAGE_NAMES = ("RetargetConfig", "RESIDUAL_NAMES", "KEYPOINT_COLUMNS", "retarget_episode", "retarget_keypoints",
                "target_embodiment")


def __getattr__(name: str) -> Any:
    if name in _STAGE_NAMES:
        from converters.retarget import episode  # noqa: PLC0415 - lazy on purpose (see above)
        return getattr(episode, name)
    raise AttributeError(f"module 'converters.retarget' has no attribute {name!r}")


__all__ = ["RetargetConfig", "RESIDUAL_NAMES", "retarget_episode", "retarget_keypoints", "target_embodiment"]
