"""Hand keypoints (21 MediaPipe landmarks, any rigid frame) -> a robot hand's joint angles, per tick.

Uses the models and objective of `converters.retarget.hands` (vector retargeting over the project's hand
FK), solved one frame at a time by `teleop.fastkin.FastHand` (numpy Levenberg-Marquardt, analytic
Jacobian), warm-started from the previous tick's solution so a few iterations suffice; the human -> robot
scale is fixed per session from the calibrated palm length (not re-estimated every tick, which would
make the hand breathe with tracking noise).

The hand is the embodiment's (`schemas.embodiments`: Dex3-1, Inspire, ...). Output per side is one
PSI0_ACTION hand block, filled by the hand table's slot map: Dex3-1 hardware order as is; Inspire's 6
angles thumb -> little plus one zero pad (the Ψ₀ convention for Inspire data, as the HE reader writes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converters.retarget.hands import HandModel, HandRetargetConfig, hand_model, human25_from_mediapipe, retarget_hand
from schemas import embodiments
from schemas.embodiments import Embodiment
from teleop.calibration import Calibration
from teleop.fastkin import FastHand, compiled_available
from teleop.streams import HAND_SIDES


@dataclass(frozen=True)
class HandMapperConfig:
    iterations: int = 4              # Levenberg-Marquardt iterations per tick (warm-started)
    first_iterations: int = 40       # first tick / after a reset
    # "compiled" (FastHand's numba kernel; its numpy calls where numba is missing) | "numpy" (teleop.fastkin.FastHand)
    # | "torch" (converters' retarget_hand per tick)
    backend: str = "compiled"
    prior: float = 5e-3              # weight of |q - q_prev|^2 (m^2 per rad^2): damps chatter from keypoint noise
    mid_weight: float = 0.5
    pinch_weight: float = 1.0


class HandMapper:
    def __init__(self, robot: str | Embodiment | None, calibration: Calibration,
                 config: HandMapperConfig = HandMapperConfig()):
        self.embodiment = embodiments.get(robot)
        self.hand = self.embodiment.hand
        self.cfg = config
        self.models: dict[str, HandModel] = {s: hand_model(self.hand, s) for s in HAND_SIDES}
        compiled = config.backend == "compiled" and compiled_available()
        self.solvers = {s: FastHand(m, config.mid_weight, config.pinch_weight, compiled=compiled)
                        for s, m in self.models.items()}
        self.scale = {s: self.models[s].length / max(calibration.palm_length[s], 1e-3) for s in HAND_SIDES}
        self.reset()

    def reset(self) -> None:
        self._q: dict[str, np.ndarray | None] = {s: None for s in HAND_SIDES}

    @property
    def dof(self) -> int:
        return self.models["left"].chain.dof

    def step_side(self, side: str, keypoints21: np.ndarray) -> tuple[np.ndarray, float]:
        """(21, 3) landmarks of one hand -> its action hand-block values and the mean fingertip error (m, robot
        scale)."""
        kp = human25_from_mediapipe(np.asarray(keypoints21, np.float64))
        prev = self._q[side]
        if self.cfg.backend == "torch":
            cfg = HandRetargetConfig(scale=self.scale[side], mid_weight=self.cfg.mid_weight,
                                     pinch_weight=self.cfg.pinch_weight,
                                     iterations=self.cfg.iterations if prev is not None else self.cfg.first_iterations)
            res = retarget_hand(self.models[side], kp[None], cfg, q_init=None if prev is None else prev[None])
            return self._out(side, res.q[0]), float(res.tip_error[0])
        q, err = self.solvers[side].solve(kp, self.scale[side], q0=prev,
                                          iterations=self.cfg.iterations if prev is not None else self.cfg.first_iterations,
                                          prior=self.cfg.prior)
        return self._out(side, q), err

    def _out(self, side: str, q: np.ndarray) -> np.ndarray:
        self._q[side] = q
        return self.hand.to_slots(q)


__all__ = ["HandMapper", "HandMapperConfig"]
