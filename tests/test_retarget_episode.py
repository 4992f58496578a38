import numpy as np
import pytest

from converters.retarget import RESIDUAL_NAMES, RetargetConfig, retarget_episode
from converters.retarget.arm_ik import HAND_IN_WRIST, Calibration, arm_chain, arm_fk
from converters.retarget.hands import dex3_model, robot_keypoints25
from schemas import PSI0_ACTION, EpisodeError, EpisodeMeta, FeatureSpec, RejectReason, build_frames
from schemas import Episode


def _episode(t=40, far=False, seed=0):
    """Human keypoints synthesised from a robot trajectory so the ground truth is known."""
    rng = np.random.default_rng(seed)
    cal = Calibration()
    r = cal.rotation()
    cols, truth = {}, {}
    for side in ("left", "right"):
        ch, model = arm_chain(side), dex3_model(side)
        lo, hi = ch.lower.numpy(), ch.upper.numpy()
        tt = np.linspace(0, 3, t)[:, None]
        q_arm = (lo + hi) / 2 + (hi - lo) / 2 * 0.3 * np.sin(tt * rng.uniform(0.3, 1, 7) + rng.uniform(0, 6, 7))
        hl, hh = model.chain.lower.numpy(), model.chain.upper.numpy()
        q_hand = (hl + hh) / 2 + (hh - hl) / 2 * 0.5 * np.sin(tt * rng.uniform(0.3, 1, 7) + rng.uniform(0, 6, 7))
        wrist = arm_fk(side, q_arm)                                          # torso frame
        r_hand_cam = r.T @ wrist[:, :3, :3] @ HAND_IN_WRIST                   # inverse of Calibration rotation
        p_cam = (wrist[:, :3, 3] - np.array(cal.head_position)) @ r / cal.scale
        if far:
            p_cam = p_cam + np.array([0.0, 0.0, 3.0])
        kp_palm = robot_keypoints25(model, q_hand) - model.wrist.numpy()
        kp_hand = kp_palm @ model.frame.numpy()                               # palm -> hand-frame coordinates
        kp_cam = np.einsum("tij,tkj->tki", r_hand_cam, kp_hand) + p_cam[:, None]
        cols[f"human.{side}_hand.keypoints"] = kp_cam.reshape(t, 75)
        truth[side] = (q_arm, q_hand)
    meta = EpisodeMeta("egodex", "egodex/test/0", "human", 30.0, "pick", "pick")
    frames = build_frames(np.arange(t) / 30.0, cols)
    feats = {k: FeatureSpec(k, "float32", (75,)) for k in cols}
    return Episode(meta, frames, feats), truth


def test_retarget_episode_recovers_robot_trajectory():
    ep, truth = _episode()
    out = retarget_episode(ep, RetargetConfig(inspire=True))
    act = out.column("action.robot")
    assert act.shape == (ep.length, 36)
    for side in ("left", "right"):
        q_arm, q_hand = truth[side]
        # arm: the wrist pose is recovered (7-DoF redundancy aside, angles should match closely here)
        assert np.abs(act[:, PSI0_ACTION.slice(f"{side}_hand")] - q_hand).mean() < 0.03
    res = out.column("retarget.residual")
    assert res.shape == (ep.length, len(RESIDUAL_NAMES))
    assert np.percentile(res[:, [0, 2]], 95) < 1e-3 and np.percentile(res[:, [4, 5]], 95) < 2e-3
    assert out.column("action.inspire").shape == (ep.length, 12)
    assert out.meta.quality["retarget.left_arm.position_m.p95"] < 1e-3
    assert np.allclose(act[:, PSI0_ACTION.slice("lower_body")][:, 3], 0.75)


def test_unreachable_wrists_are_rejected():
    ep, _ = _episode(t=10, far=True)
    with pytest.raises(EpisodeError) as err:
        retarget_episode(ep)
    assert err.value.reason == RejectReason.RETARGET_ERROR
