import numpy as np

from converters.retarget.arm_ik import Calibration, IKConfig, arm_chain, arm_fk, solve_ik


def _trajectory(side, n=200, seed=0):
    rng = np.random.default_rng(seed)
    ch = arm_chain(side)
    lo, hi = ch.lower.numpy(), ch.upper.numpy()
    t = np.linspace(0, 8, n)[:, None]
    return (lo + hi) / 2 + (hi - lo) / 2 * 0.5 * np.sin(t * rng.uniform(0.2, 1, 7) + rng.uniform(0, 6, 7))


def test_fk_ik_roundtrip_recovers_pose_both_arms():
    for side in ("left", "right"):
        q = _trajectory(side)
        targets = arm_fk(side, q)
        res = solve_ik(arm_chain(side), targets)
        assert np.percentile(res.position_error, 95) < 1e-3 and res.position_error.max() < 5e-3
        assert np.percentile(res.rotation_error, 95) < 1e-2
        got = arm_fk(side, res.q)
        assert np.abs(got[:, :3, 3] - targets[:, :3, 3]).max() < 5e-3
        ch = arm_chain(side)
        assert (res.q >= ch.lower.numpy() - 1e-9).all() and (res.q <= ch.upper.numpy() + 1e-9).all()


def test_unreachable_target_reports_residual_and_respects_limits():
    far = np.tile(np.eye(4), (3, 1, 1))
    far[:, :3, 3] = [2.0, 0.5, 0.3]
    res = solve_ik(arm_chain("left"), far, IKConfig(iterations=20, sweeps=0))
    assert (res.position_error > 1.0).all()
    ch = arm_chain("left")
    assert (res.q >= ch.lower.numpy() - 1e-9).all() and (res.q <= ch.upper.numpy() + 1e-9).all()


def test_calibration_maps_camera_forward_to_torso_forward():
    cal = Calibration(pitch_down=0.0, scale=1.0)
    pose = np.eye(4)[None]
    pose[0, :3, 3] = [0.0, 0.0, 0.5]            # 0.5 m in front of the camera (OpenCV z forward)
    out = cal.camera_to_torso(pose)
    np.testing.assert_allclose(out[0, :3, 3], np.array(cal.head_position) + [0.5, 0, 0], atol=1e-12)
    np.testing.assert_allclose(out[0, :3, :3] @ out[0, :3, :3].T, np.eye(3), atol=1e-12)


def test_teleop_numpy_dls_tracks_a_trajectory_warm_started_tick_by_tick():
    """The per-tick numpy IK of the teleop mapper (`teleop.fastkin.dls_ik`, warm-started from the previous
    tick as `teleop.upper_body` runs it) holds the same accuracy as the batched solver above; the residual
    is checked with the torch FK, independently of the numpy chain the solver evaluates."""
    from teleop.fastkin import NumpyChain, dls_ik
    from teleop.upper_body import TELEOP_IK

    for side in ("left", "right"):
        q = _trajectory(side)
        targets = arm_fk(side, q)
        nc = NumpyChain(arm_chain(side))
        prev, pos_err, rot_err = q[0], [], []
        for target in targets:
            prev, pe, _ = dls_ik(nc, target, prev, iterations=TELEOP_IK.iterations, damping=TELEOP_IK.damping,
                                 rot_weight=TELEOP_IK.rot_weight, max_step=TELEOP_IK.max_step,
                                 tolerance=TELEOP_IK.tolerance)
            got = arm_fk(side, prev[None])[0]
            pos_err.append(np.linalg.norm(got[:3, 3] - target[:3, 3]))
            rot_err.append(np.arccos(np.clip((np.trace(got[:3, :3].T @ target[:3, :3]) - 1) / 2, -1, 1)))
            assert abs(pe - pos_err[-1]) < 1e-9                   # the solver reports its true residual
        assert np.percentile(pos_err, 95) < 1e-3 and max(pos_err) < 5e-3
        assert np.percentile(rot_err, 95) < 1e-2
