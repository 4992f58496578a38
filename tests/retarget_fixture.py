"""Human hand keypoints synthesised from a known robot trajectory, for any embodiment with arm kinematics.

The robot's arms and hands move (within limits); the hands are rendered in the human 25-joint layout
(`robot_keypoints25`), placed at the wrist poses and expressed in the head-camera frame by inverting
`Calibration` — so retargeting them back must recover the trajectory."""
from __future__ import annotations

import numpy as np
import torch

from converters.retarget.arm_ik import HAND_IN_WRIST, Calibration, arm_chain, arm_fk
from converters.retarget.hands import hand_model, human_hand_frame, robot_keypoints25
from schemas import Episode, EpisodeMeta, FeatureSpec, build_frames, embodiments
from schemas.embodiments import HUMAN_HAND_KEYPOINTS


def human_episode(embodiment: str = embodiments.DEFAULT, t: int = 40, far: bool = False, seed: int = 0,
                  meta_embodiment: str = "human") -> tuple[Episode, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(episode with `human.<side>_hand.keypoints`, {side: (arm q (t, arm dof), hand q (t, hand dof))})."""
    emb = embodiments.get(embodiment)
    rng = np.random.default_rng(seed)
    cal = Calibration()
    r = cal.rotation()
    cols, truth = {}, {}
    for side in ("left", "right"):
        ch, model = arm_chain(side, emb.name), hand_model(emb.hand, side)
        lo, hi = ch.lower.numpy(), ch.upper.numpy()
        tt = np.linspace(0, 3, t)[:, None]
        q_arm = (lo + hi) / 2 + (hi - lo) / 2 * 0.3 * np.sin(tt * rng.uniform(0.3, 1, ch.dof) + rng.uniform(0, 6, ch.dof))
        hl, hh = model.chain.lower.numpy(), model.chain.upper.numpy()
        n = model.chain.dof
        q_hand = (hl + hh) / 2 + (hh - hl) / 2 * 0.5 * np.sin(tt * rng.uniform(0.3, 1, n) + rng.uniform(0, 6, n))
        wrist = arm_fk(side, q_arm, emb.name)                                # torso frame
        r_hand_cam = r.T @ wrist[:, :3, :3] @ HAND_IN_WRIST                   # inverse of Calibration rotation
        p_cam = (wrist[:, :3, 3] - np.array(cal.head_position)) @ r / cal.scale
        if far:
            p_cam = p_cam + np.array([0.0, 0.0, 3.0])
        kp = robot_keypoints25(model, q_hand)                                 # human layout of this side
        frame = human_hand_frame(torch.as_tensor(kp[:1]), side)[0].numpy()    # palm knuckles do not move with q
        kp_hand = (kp - kp[:, :1]) @ frame                                    # -> hand-frame coordinates
        kp_cam = np.einsum("tij,tkj->tki", r_hand_cam, kp_hand) + p_cam[:, None]
        cols[f"human.{side}_hand.keypoints"] = kp_cam.reshape(t, HUMAN_HAND_KEYPOINTS[side].size)
        truth[side] = (q_arm, q_hand)
    meta = EpisodeMeta("egodex", "egodex/test/0", meta_embodiment, 30.0, "pick", "pick")
    frames = build_frames(np.arange(t) / 30.0, cols)
    feats = {k: FeatureSpec(k, "float32", (HUMAN_HAND_KEYPOINTS["left"].size,)) for k in cols}
    return Episode(meta, frames, feats), truth
