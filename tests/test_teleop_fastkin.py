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
    """A warm-started solve of the numpy path skips FK(q0) when the chain buffer still holds it
    (`NumpyChain.fk_key`): the answers equal those of a chain whose buffer is re-evaluated every time, and any
    `transforms` voids the key."""
    rng = np.random.default_rng(1)
    cached, fresh = NumpyChain(arm_chain("left")), NumpyChain(arm_chain("left"))
    q = np.zeros(cached.dof)
    for _ in range(20):
        target = arm_fk("left", rng.uniform(cached.lower * 0.5, cached.upper * 0.5)[None])[0]
        got = dls_ik(cached, target, q, iterations=4, tolerance=2e-5, rest=np.zeros(cached.dof), rest_gain=0.25,
                     compiled=False)
        assert cached.fk_key == got[0].tobytes()
        fresh.fk_key = None
        want = dls_ik(fresh, target, q, iterations=4, tolerance=2e-5, rest=np.zeros(cached.dof), rest_gain=0.25,
                      compiled=False)
        assert np.array_equal(got[0], want[0]) and got[1:] == want[1:]
        q = got[0]
    cached.transforms(q + 0.1)
    assert cached.fk_key is None

    model = dex3_model("right")
    cached_hand, fresh_hand = FastHand(model, compiled=False), FastHand(model, compiled=False)
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


@pytest.mark.parametrize("model", [dex3_model("left"), inspire_model("right")], ids=lambda m: m.name)
def test_compiled_hand_solver_equals_the_numpy_one(model):
    """teleop.fastkin_jit.hand_lm runs FastHand.solve's steps: the same joints and tip error on a warm-started
    sequence (only the summation order differs: measured max |dq| 4e-16 rad)."""
    compiled, plain = FastHand(model, compiled=True), FastHand(model, compiled=False)
    rng = np.random.default_rng(4)
    lo, hi = model.chain.lower.numpy(), model.chain.upper.numpy()
    q = None
    truth = lo + (hi - lo) * rng.uniform(0.2, 0.8, len(lo))
    for step in range(40):
        truth = np.clip(truth + rng.normal(0, 0.05, len(lo)), lo, hi)
        kp = robot_keypoints25(model, truth[None])[0] @ rpy(0.3, -0.2, 1.0).T + 0.5 + rng.normal(0, 2e-3, (25, 3))
        got = compiled.solve(kp, 1.1, q0=q, iterations=4 if q is not None else 40, prior=5e-3)
        want = plain.solve(kp, 1.1, q0=q, iterations=4 if q is not None else 40, prior=5e-3)
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-9)
        assert got[1] == pytest.approx(want[1], rel=0, abs=1e-12)
        q = want[0]


@pytest.mark.parametrize("rest_gain", [0.0, 0.25])
def test_compiled_arm_solver_equals_the_numpy_one(rest_gain):
    """teleop.fastkin_jit.arm_dls runs dls_ik's steps (the rest pull in the null space, the step and joint
    clamps, both stopping rules): the same joints and wrist errors along a moving target."""
    rng = np.random.default_rng(5)
    a, b = NumpyChain(arm_chain("right")), NumpyChain(arm_chain("right"))
    q = np.zeros(a.dof)
    rest = rng.uniform(a.lower * 0.3, a.upper * 0.3)
    joints = rng.uniform(a.lower * 0.5, a.upper * 0.5)
    for _ in range(40):
        joints = np.clip(joints + rng.normal(0, 0.05, a.dof), a.lower, a.upper)
        target = arm_fk("right", joints[None])[0]
        got = dls_ik(a, target, q, iterations=4, tolerance=2e-5, rest=rest, rest_gain=rest_gain, compiled=True)
        want = dls_ik(b, target, q, iterations=4, tolerance=2e-5, rest=rest, rest_gain=rest_gain, compiled=False)
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-9)
        assert got[1:] == pytest.approx(want[1:], rel=0, abs=1e-9)
        q = want[0]


@pytest.mark.parametrize("robot", ["g1-dex3", "h1-inspire"])
def test_the_compiled_mapper_sends_what_the_numpy_mapper_sends(robot):
    """The whole mapper on a simulated session with the compiled kernels (the default) and with the numpy
    solvers: the same float32 commands (identical when measured over 1 000 ticks; 1e-6 allows a last-bit
    float32 rounding), the same NaN pattern and flags."""
    from dataclasses import replace

    from teleop.calibration import calibrate
    from teleop.devices.sim import SimOperator
    from teleop.mapping import MapperConfig, WholeBodyMapper

    op = SimOperator(seed=2)
    inputs = [op.poll(i / 50) for i in range(400)]
    cal = calibrate(inputs[10:int(op.calibration_duration() * 50)])
    base = MapperConfig()
    numpy_cfg = replace(base, upper=replace(base.upper, backend="numpy"), hands=replace(base.hands, backend="numpy"))
    assert base.upper.backend == base.hands.backend == "compiled"
    runs = [[m.step(i) for i in inputs] for m in (WholeBodyMapper(robot, cal, base), WholeBodyMapper(robot, cal, numpy_cfg))]
    got, want = (np.array([c.action for c in run]) for run in runs)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isfinite(got).any()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, equal_nan=True)
    assert [c.flags for c in runs[0]] == [c.flags for c in runs[1]]


def test_the_mapper_compiles_its_kernels_before_the_first_tick():
    """A fresh process: constructing the mapper compiles (or loads from numba's cache) both kernels, so the
    control loop's first tick never waits for the compiler."""
    import subprocess
    import sys
    code = ("from teleop.mapping import WholeBodyMapper; from teleop import fastkin_jit as j; WholeBodyMapper('g1-dex3'); "
            "print(len(j.hand_lm.signatures), len(j.arm_dls.signatures))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "1"], out.stdout
