"""System-0 with AMO's I/O contract: a random TorchScript of AMO's shapes drives the simulator's lower body
(free floating base) at 50 Hz within its deadline."""
from __future__ import annotations

import numpy as np
import pytest

from deploy.amo import AMO_JOINTS, N_OUT, AmoContract, AmoRunner, write_random_amo
from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT
from schemas.embodiments import G1_BODY, G1_LEGS_WAIST


@pytest.fixture(scope="module")
def amo(tmp_path_factory):
    paths = write_random_amo(tmp_path_factory.mktemp("amo"))
    return AmoRunner.load(paths["policy"], paths["adapter"], paths["adapter_norm"])


def _command(**kw: float) -> np.ndarray:
    c = np.zeros(LOWER_BODY_COMMAND.size)
    c[LOWER_BODY_COMMAND.index("torso_height")] = NOMINAL_TORSO_HEIGHT
    for k, v in kw.items():
        c[LOWER_BODY_COMMAND.index(k)] = v
    return c


def test_observation_layout_is_amos(amo):
    c = AmoContract()
    assert (c.n_prop, c.obs_dim, c.extra_dim) == (93, 1043, 2325)         # play_amo.py's sizes
    assert len(AMO_JOINTS) == 23 and AMO_JOINTS[:N_OUT] == G1_LEGS_WAIST.dims
    amo.reset(None)
    q = np.zeros(G1_BODY.size)
    q[G1_BODY.index("left_elbow")] = 0.7
    obs, extra = amo.observation(_command(vx=0.3, torso_pitch=0.2, torso_height=0.6, target_yaw=0.5), q,
                                 np.ones(G1_BODY.size), np.array([0.01, 0.02, 0.1]), np.array([1.0, 2.0, 3.0]))
    assert obs.shape == (c.obs_dim,) and extra.shape == (c.extra_dim,)
    np.testing.assert_allclose(obs[:3], [0.25, 0.5, 0.75])                  # gyro * 0.25
    dyaw = 0.1 - 0.5                                                       # walking: heading error observed
    np.testing.assert_allclose(obs[5:7], [np.sin(dyaw), np.cos(dyaw)])
    dq = obs[7 + 23: 7 + 46] / c.dof_vel_scale
    assert dq[AMO_JOINTS.index("left_ankle_pitch")] == 0 and dq[AMO_JOINTS.index("left_knee")] == pytest.approx(1)
    demo = obs[c.n_prop: c.n_prop + c.n_demo]
    assert demo[3] == pytest.approx(0.7)                                   # left elbow in the arm block
    np.testing.assert_allclose(demo[8:10], [0.3, 0.0])                      # vx, vy
    assert demo[12] == pytest.approx(0.2) and demo[-3:] == pytest.approx([0.6] * 3)
    # the history: the next observation's oldest-first history ends with this tick's proprioception
    obs2, _ = amo.observation(_command(), q, np.zeros(G1_BODY.size), np.zeros(3), np.zeros(3))
    np.testing.assert_allclose(obs2[-c.n_prop:], obs[:c.n_prop])
    standing = amo.observation(_command(target_yaw=1.0), q, q, np.zeros(3), np.zeros(3))[0]
    np.testing.assert_allclose(standing[5:7], [0.0, 1.0])                  # in place: heading error zeroed


def test_targets_follow_the_contract(amo):
    amo.reset(None)
    t = amo.targets(_command(), np.zeros(G1_BODY.size), np.zeros(G1_BODY.size), np.zeros(3), np.zeros(3))
    c = AmoContract()
    assert t.shape == (N_OUT,)
    assert (np.abs(t - c.default_q[:N_OUT]) <= c.action_clip * c.action_scale + 1e-9).all()


def test_runner_keeps_the_50hz_deadline_driving_the_simulator(amo):
    """The runner is the simulator's system-0 (free base) for 3 s of simulated time; its own compute per
    tick (thread CPU time) stays far inside the 20 ms period, and so does its median wall time."""
    import torch
    from sim.env import EnvConfig, SimEnv
    torch.set_num_threads(1)
    env = SimEnv(EnvConfig(camera=False), tracker=amo)
    assert env.cfg.robot.base == "free"
    env.reset("bimanual_lift", 0)
    amo.compute_ms.clear()
    amo.cpu_ms.clear()
    action = env.last_action.copy()
    for _ in range(150):
        env.step(action)
    env.close()
    period_ms = 1000.0 / AmoContract().control_hz
    assert len(amo.cpu_ms) >= 150
    assert np.percentile(amo.cpu_ms, 99) < period_ms / 2
    assert np.median(amo.compute_ms) < period_ms / 2
