"""The supervisor alone (deploy/safety.py): hold is exact, DAMP never moves a target faster than its rate
bound even when the held target is far from the joint (a blocked arm), gains ramp to 0, e-stop latches."""
from __future__ import annotations

import numpy as np

from deploy.safety import VELOCITY_DIMS, LinkState, SafetyConfig, Supervisor
from schemas.actions import PSI0_ACTION

UPPER = PSI0_ACTION.slice("upper_body")


def test_damp_moves_targets_at_a_bounded_rate_even_far_from_the_joints():
    cfg = SafetyConfig(hold_s=0.2, damp_ramp_s=0.5, max_target_rate=1.0)
    sup = Supervisor(cfg, control_hz=30.0)
    action = np.zeros(PSI0_ACTION.size)
    action[UPPER] = 2.5                                   # targets 2.5 rad away from where the joints are
    action[VELOCITY_DIMS] = 0.4
    sup.ok(action)
    measured = np.zeros(UPPER.stop)
    out = [sup.lost(measured) for _ in range(150)]
    a = np.stack([c.action for c in out])
    states = [c.state for c in out]
    hold = [i for i, s in enumerate(states) if s == LinkState.HOLD]
    np.testing.assert_array_equal(a[hold][:, UPPER], np.repeat(action[None, UPPER], len(hold), 0))
    steps = np.abs(np.diff(np.vstack([action[None], a])[:, UPPER], axis=0)).max(axis=1)
    assert steps.max() <= cfg.max_target_rate / 30.0 + 1e-12
    assert np.abs(a[-1, UPPER]).max() < 1e-9                # reaches the measured joints, at the bounded rate
    kp = np.array([c.kp_scale for c in out])
    assert kp[0] == 1 and kp[-1] == 0 and (np.diff(kp) <= 1e-12).all()
    assert (np.abs(np.diff(a[:, VELOCITY_DIMS], axis=0)) <= cfg.decel / 30.0 + 1e-12).all()
    assert (a[-1, VELOCITY_DIMS] == 0).all()


def test_estop_latches_with_zero_gains_and_targets_at_the_joints():
    sup = Supervisor(SafetyConfig(), control_hz=30.0)
    sup.ok(np.full(PSI0_ACTION.size, 0.3))
    measured = np.full(UPPER.stop, -0.1)
    c = sup.estop(measured)
    assert c.kp_scale == 0 and c.state == LinkState.ESTOP
    np.testing.assert_array_equal(c.action[UPPER], measured)
    assert (c.action[VELOCITY_DIMS] == 0).all()
    assert sup.lost(measured).state == LinkState.ESTOP      # latched: a lost link does not leave e-stop
