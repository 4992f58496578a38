"""The per-tick fast paths of the teleop mapper (teleop.fastkin, teleop.mapping): each shortcut computes what
the plain form computes. (The whole mapper against the first numpy solvers: test_teleop_mapping.)"""
from __future__ import annotations

import numpy as np
import pytest

from converters.retarget.arm_ik import arm_chain, arm_fk
from converters.retarget.hands import dex3_model, human25_from_mediapipe, inspire_model, robot_keypoints25
from teleop.fastkin import FastHand, NumpyChain, dls_ik
from teleop.geometry import rpy
from teleop.mapping import _all_finite


@pytest.mark.parametrize("model", [dex3_model("left"), inspire_model("left")], ids=lambda m: m.name)
def test_hand_jacobian_read_off_the_fk_buffer_matches_finite_differences(model):
    """FastHand's residual and Jacobian are constant 2-D maps of the FK buffer: central differences of the
    residual agree with the Jacobian."""
    hand = FastHand(model)
    rng = np.random.default_rng(0)
    lo, hi = hand.nc.lower, hand.nc.upper
    hand._res_map[:, hand._one_col] = -rng.normal(size=len(hand._res_map))     # some shift

    def residual(q):
        hand.nc.transforms(q)
        return hand._res_map.dot(hand._tf_flat)

    for _ in range(5):
        q = lo + (hi - lo) * rng.uniform(0.1, 0.9, len(lo))
        hand.nc.transforms(q)
        jac = np.empty((len(hand._res_map), hand.nc.dof))
        hand._jacobian(jac)
        eps = 1e-6
        num = np.stack([(residual(q + eps * e) - residual(q - eps * e)) / (2 * eps) for e in np.eye(len(q))], 1)
        np.testing.assert_allclose(jac, num, atol=1e-8)


def test_warm_start_reuses_the_fk_buffer_bit_identically():
    """A warm-started solve skips FK(q0) when the chain buffer still holds it (`NumpyChain.fk_key`): the
    answers equal those of a chain whose buffer is re-evaluated every time, and any `transforms` voids the key."""
    rng = np.random.default_rng(1)
    cached, fresh = NumpyChain(arm_chain("left")), NumpyChain(arm_chain("left"))
    q = np.zeros(cached.dof)
    for _ in range(20):
        target = arm_fk("left", rng.uniform(cached.lower * 0.5, cached.upper * 0.5)[None])[0]
        got = dls_ik(cached, target, q, iterations=4, tolerance=2e-5, rest=np.zeros(cached.dof), rest_gain=0.25)
        assert cached.fk_key == got[0].tobytes()
        fresh.fk_key = None
        want = dls_ik(fresh, target, q, iterations=4, tolerance=2e-5, rest=np.zeros(cached.dof), rest_gain=0.25)
        assert np.array_equal(got[0], want[0]) and got[1:] == want[1:]
        q = got[0]
    cached.transforms(q + 0.1)
    assert cached.fk_key is None

    model = dex3_model("right")
    cached_hand, fresh_hand = FastHand(model), FastHand(model)
    lo, hi = model.chain.lower.numpy(), model.chain.upper.numpy()
    qh = None
    for _ in range(20):
        truth = lo + (hi - lo) * rng.uniform(0.2, 0.8, len(lo))
        kp = robot_keypoints25(model, truth[None])[0] @ rpy(0.3, -0.2, 1.0).T + 0.5
        got = cached_hand.solve(kp, 1.0, q0=qh, iterations=4 if qh is not None else 40, prior=5e-3)
        fresh_hand.nc.fk_key = None
        want = fresh_hand.solve(kp, 1.0, q0=qh, iterations=4 if qh is not None else 40, prior=5e-3)
        assert np.array_equal(got[0], want[0]) and got[1] == want[1]
        qh = got[0]


def test_single_hand_mediapipe_conversion_equals_the_batched_one():
    rng = np.random.default_rng(2)
    kp = rng.normal(size=(3, 21, 3))
    kp[1, 4, 2] = np.nan
    batched = human25_from_mediapipe(kp)
    for i in range(3):
        np.testing.assert_array_equal(human25_from_mediapipe(kp[i]), batched[i])


def test_pose_finiteness_on_floats_equals_numpy():
    p = np.eye(4)
    assert _all_finite(p)
    for bad in (np.nan, np.inf, -np.inf):
        q = p.copy()
        q[2, 3] = bad
        assert not _all_finite(q) and not np.isfinite(q).all()
    assert _all_finite(np.full((4, 4), 1e308))
