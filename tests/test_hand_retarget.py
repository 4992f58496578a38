import numpy as np
import pytest

from converters.retarget.hands import (HandRetargetConfig, dex3_model, human25_from_mediapipe, inspire_model,
                                       retarget_hand, robot_keypoints25)
from schemas.embodiments import DEX3_LEFT, DEX3_RIGHT, INSPIRE_HAND, MEDIAPIPE_FROM_HUMAN25


def _q(model, n=80, seed=0, frac=0.7):
    rng = np.random.default_rng(seed)
    lo, hi = model.chain.lower.numpy(), model.chain.upper.numpy()
    t = np.linspace(0, 6, n)[:, None]
    return (lo + hi) / 2 + (hi - lo) / 2 * frac * np.sin(t * rng.uniform(0.3, 1, len(lo)) + rng.uniform(0, 6, len(lo)))


def _rigid(kp, seed):
    rng = np.random.default_rng(seed)
    r = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    r *= np.linalg.det(r)
    return kp @ r.T + rng.normal(size=3)


@pytest.mark.parametrize("make,side", [(dex3_model, "left"), (dex3_model, "right"),
                                        (inspire_model, "left"), (inspire_model, "right")])
def test_robot_fk_keypoints_retarget_back_to_angles(make, side):
    model = make(side)
    q = _q(model)
    kp = _rigid(robot_keypoints25(model, q), seed=1)
    res = retarget_hand(model, kp, HandRetargetConfig(scale=1.0))
    assert np.abs(res.q - q).mean() < 0.02
    assert np.percentile(res.tip_error, 95) < 2e-3


def test_limits_respected_and_schema_limits_match_models():
    for model, space in ((dex3_model("left"), DEX3_LEFT), (dex3_model("right"), DEX3_RIGHT),
                         (inspire_model("right"), INSPIRE_HAND)):
        lo, hi = space.bounds()
        np.testing.assert_allclose(model.chain.lower.numpy(), lo, atol=1e-6)
        np.testing.assert_allclose(model.chain.upper.numpy(), hi, atol=1e-6)
        # a human hand bent beyond the robot's range: output stays inside the limits
        q = _q(model, n=20, frac=1.0)
        kp = robot_keypoints25(model, q) * 1.3 + np.random.default_rng(0).normal(scale=0.01, size=(20, 25, 3))
        res = retarget_hand(model, kp)
        assert (res.q >= model.chain.lower.numpy() - 1e-9).all() and (res.q <= model.chain.upper.numpy() + 1e-9).all()


def test_mediapipe_layout_conversion():
    kp = robot_keypoints25(dex3_model("left"), np.zeros((2, 7)))
    back = human25_from_mediapipe(kp[:, list(MEDIAPIPE_FROM_HUMAN25)])
    np.testing.assert_allclose(back[:, list(MEDIAPIPE_FROM_HUMAN25)], kp[:, list(MEDIAPIPE_FROM_HUMAN25)])
