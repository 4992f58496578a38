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
