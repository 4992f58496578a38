import numpy as np
import pytest

from converters.retarget import RESIDUAL_NAMES, RetargetConfig, retarget_episode
from retarget_fixture import human_episode
from schemas import PSI0_ACTION, EpisodeError, RejectReason, embodiments


def _episode(t=40, far=False, seed=0, embodiment="g1_dex3"):
    """Human keypoints synthesised from a robot trajectory so the ground truth is known."""
    return human_episode(embodiment, t=t, far=far, seed=seed)


@pytest.mark.parametrize("embodiment", ["g1_dex3", "g1_inspire"])
def test_retarget_episode_recovers_robot_trajectory(embodiment):
    ep, truth = _episode(embodiment=embodiment)
    emb = embodiments.get(embodiment)
    out = retarget_episode(ep, RetargetConfig(embodiment=embodiment))
    act = out.column("action.robot")
    assert act.shape == (ep.length, 36)
    for side in ("left", "right"):
        q_arm, q_hand = truth[side]
        # arm: the wrist pose is recovered (7-DoF redundancy aside, angles should match closely here)
        block = act[:, PSI0_ACTION.slice(f"{side}_hand")]
        assert np.abs(block - emb.hand.to_slots(q_hand)).mean() < 0.03
        assert np.all(block[:, [i for i, j in enumerate(emb.hand.slots) if j is None]] == 0.0)   # pads stay 0
    res = out.column("retarget.residual")
    assert res.shape == (ep.length, len(RESIDUAL_NAMES))
    assert np.percentile(res[:, [0, 2]], 95) < 1e-3 and np.percentile(res[:, [4, 5]], 95) < 2e-3
    assert out.meta.quality["retarget.left_arm.position_m.p95"] < 1e-3
    assert np.allclose(act[:, PSI0_ACTION.slice("lower_body")][:, 3], 0.75)
    assert emb.hand.title in out.meta.derived["action.robot"]


def test_unreachable_wrists_are_rejected():
    ep, _ = _episode(t=10, far=True)
    with pytest.raises(EpisodeError) as err:
        retarget_episode(ep)
    assert err.value.reason == RejectReason.RETARGET_ERROR
