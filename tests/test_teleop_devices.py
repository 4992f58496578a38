"""Teleop devices: the simulated operator / robot / camera, replay, and the real drivers' pure conversions."""
from __future__ import annotations

import numpy as np
import pytest

from schemas.actions import NOMINAL_TORSO_HEIGHT, PSI0_ACTION
from schemas.embodiments import G1_BODY
from teleop.devices.replay import ReplayInput, load_inputs, save_inputs
from teleop.devices.sim import SimCamera, SimOperator, SimRobot
from teleop.streams import (BODY_SITES, Camera, CameraFrame, InputDevice, OperatorInput, RobotBridge, RobotCommand,
                            RobotState)

RATE = 50.0


def _run(op: SimOperator, n: int, t0: float = 1000.0) -> list[OperatorInput]:
    return [op.poll(t0 + i / RATE) for i in range(n)]


def test_sim_devices_satisfy_protocols():
    op, robot = SimOperator(seed=0), SimRobot()
    assert isinstance(op, InputDevice) and isinstance(robot, RobotBridge) and isinstance(SimCamera(robot), Camera)
    inp = op.poll(5.0)
    assert set(inp.poses) == set(BODY_SITES) and all(p.shape == (4, 4) for p in inp.poses.values())
    assert inp.hand_keypoints["left"].shape == (21, 3) and inp.axes.shape == (4,)
    assert op.describe()["script"] == "lunchbag"
    assert SimOperator(task="fold the towel").describe()["script"] == "pick_place"


def test_sim_operator_deterministic_in_seed_and_time():
    a = _run(SimOperator(seed=3), 120)
    b = _run(SimOperator(seed=3), 120)
    # a different call pattern (every other tick) gives the same samples at the same times
    c = SimOperator(seed=3)
    c_samples = {i: c.poll(1000.0 + i / RATE) for i in range(0, 120, 2)}
    other = _run(SimOperator(seed=4), 5)
    for x, y in zip(a, b):
        assert x.pose_valid == y.pose_valid and x.hand_valid == y.hand_valid
        for s in BODY_SITES:
            np.testing.assert_array_equal(x.poses[s], y.poses[s])
        np.testing.assert_array_equal(x.hand_keypoints["right"], y.hand_keypoints["right"])
    for i, y in c_samples.items():
        np.testing.assert_array_equal(a[i].poses["left_wrist"], y.poses["left_wrist"])
    assert not np.allclose(a[0].poses["head"], other[0].poses["head"])


def test_sim_operator_smooth_noisy_with_dropouts_and_task_phases():
    op = SimOperator(seed=1, dropout_rate=0.2)
    inputs = _run(op, int(23 * RATE))
    phases = [op.phase_at(x.t) for x in inputs]
    for name in ("calibrate", "walk", "turn", "squat", "reach", "grasp", "lift", "stand", "release"):
        assert name in phases, name
    # smooth: noise-free truth has bounded wrist speed and acceleration
    truth = np.array([op.truth(i / RATE)[0]["right_wrist"][:3, 3] for i in range(len(inputs))])
    vel = np.diff(truth, axis=0) * RATE
    acc = np.diff(vel, axis=0) * RATE
    assert np.linalg.norm(vel, axis=1).max() < 2.0 and np.linalg.norm(acc, axis=1).max() < 15.0
    # sensed = truth + mm-level noise where tracked (positions; orientation includes the tracker mount)
    sensed = np.array([x.poses["right_wrist"][:3, 3] for x in inputs])
    valid = np.array([x.pose_valid["right_wrist"] for x in inputs])
    err = np.linalg.norm(sensed - truth, axis=1)[valid]
    assert 5e-4 < np.median(err) < 1e-2
    # dropouts: a few ticks long, stale pose while lost
    lost = {s: np.array([not x.pose_valid[s] for x in inputs]) for s in BODY_SITES}
    assert sum(v.sum() for v in lost.values()) > 0
    for s, v in lost.items():
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, v.astype(int), 0])))[::2]
        assert (runs <= 13).all(), (s, runs)
        idx = np.flatnonzero(v)
        for i in idx:
            if i > 0 and v[i - 1]:
                np.testing.assert_array_equal(inputs[i].poses[s], inputs[i - 1].poses[s])
    # gamepad pushes forward while walking, squat lowers the pelvis, grasp closes the hand
    walk = [x.axes[1] for x, p in zip(inputs, phases) if p == "walk"]
    assert max(walk) > 0.5
    pelvis_z = np.array([x.poses["pelvis"][2, 3] for x in inputs])
    assert pelvis_z[:int(2 * RATE)].mean() - pelvis_z.min() > 0.18
    spread = [np.linalg.norm(x.hand_keypoints["right"][8] - x.hand_keypoints["right"][0]) for x in inputs]
    assert max(spread) - min(spread) > 0.04


def test_sim_robot_tracks_commands_and_reports_full_state():
    robot = SimRobot()
    s0 = robot.state(0.0)
    assert s0.body_q.shape == (29,) and s0.hand_q.shape == (14,) and s0.base_height == pytest.approx(NOMINAL_TORSO_HEIGHT)
    a = np.zeros(PSI0_ACTION.size, np.float32)
    a[PSI0_ACTION.slice("left_arm")] = [-0.5, 0.3, 0.1, 0.8, 0.2, -0.1, 0.05]
    a[PSI0_ACTION.slice("left_hand")] = PSI0_ACTION.bounds()[1][:7] * 0.5
    lb = PSI0_ACTION.slice("lower_body").start
    a[lb:lb + 8] = [0.1, 0.3, 0.2, 0.55, 0.4, 0.0, 0.0, 0.0]
    robot.send(RobotCommand(0.0, a))
    early = robot.state(0.02)
    late = robot.state(2.0)
    arm = G1_BODY.slice("left_arm")
    # first-order lag: partway after one tick, converged after 2 s
    assert 0.05 < early.body_q[arm][0] / -0.5 < 0.6
    np.testing.assert_allclose(late.body_q[arm], a[PSI0_ACTION.slice("left_arm")], atol=1e-3)
    np.testing.assert_allclose(late.hand_q[:7], a[:7], atol=1e-3)
    # squat: knees bend more than standing; waist takes torso roll/pitch/yaw
    assert late.base_height == pytest.approx(0.55, abs=1e-3)
    assert late.body_q[3] > s0.body_q[3] + 0.4 and late.body_q[9] > s0.body_q[9] + 0.4
    np.testing.assert_allclose(late.body_q[G1_BODY.slice("waist")], [0.2, 0.1, 0.3], atol=1e-3)
    lo, hi = G1_BODY.bounds()
    assert (late.body_q >= lo - 1e-6).all() and (late.body_q <= hi + 1e-6).all()
    # walking: the base moves forward at ~vx, legs swing, velocity reported
    assert late.extra["base_x"] > 0.4 and late.extra["vx"] == pytest.approx(0.4, abs=0.02)
    swing = [robot.state(2.0 + i * 0.02).body_q[0] for i in range(50)]
    assert np.ptp(swing) > 0.1
    assert np.isfinite(late.body_dq).all()


def test_sim_robot_heading_follows_target_yaw():
    robot = SimRobot()
    a = np.zeros(PSI0_ACTION.size, np.float32)
    lb = PSI0_ACTION.slice("lower_body").start
    a[lb + 3] = NOMINAL_TORSO_HEIGHT
    a[lb + 7] = 0.8
    robot.send(RobotCommand(0.0, a))
    robot.state(0.0)
    assert robot.state(4.0).imu_rpy[2] == pytest.approx(0.8, abs=0.02)


def test_sim_camera_renders_at_its_own_rate():
    robot = SimRobot()
    cam = SimCamera(robot, rate_hz=30.0, width=160, height=120)
    frames = [f for i in range(100) if (f := cam.grab(i / 100.0)) is not None]   # 1 s polled at 100 Hz
    assert 29 <= len(frames) <= 31
    assert all(isinstance(f, CameraFrame) and f.image.shape == (120, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    # the robot's hands are visible: moving the arms changes the picture
    a = np.zeros(PSI0_ACTION.size, np.float32)
    a[PSI0_ACTION.slice("lower_body").start + 3] = NOMINAL_TORSO_HEIGHT
    a[PSI0_ACTION.slice("right_arm")] = [-1.0, -0.3, 0.0, 0.3, 0, 0, 0]
    robot.send(RobotCommand(1.0, a))
    moved = [f for i in range(100, 200) if (f := cam.grab(i / 100.0)) is not None][-1]
    diff = np.abs(moved.image.astype(int) - frames[-1].image.astype(int)).max(axis=2)
    assert (diff > 40).sum() > 20


def test_replay_plays_back_in_time_and_npz_round_trip(tmp_path):
    src = _run(SimOperator(seed=2), 50)
    path = save_inputs(tmp_path / "ops.npz", src)
    back = load_inputs(path)
    assert len(back) == 50
    for x, y in zip(src, back):
        assert x.t == y.t and x.pose_valid == y.pose_valid and x.buttons == y.buttons
        np.testing.assert_array_equal(x.poses["head"], y.poses["head"])
        np.testing.assert_array_equal(x.hand_keypoints["left"], y.hand_keypoints["left"])
    dev = ReplayInput(path)
    assert isinstance(dev, InputDevice)
    dev.open()
    got = dev.poll(7.0)
    np.testing.assert_array_equal(got.poses["pelvis"], src[0].poses["pelvis"])
    assert got.t == 7.0
    mid = dev.poll(7.0 + 10.5 / RATE)            # newest sample at or before the replay time
    np.testing.assert_array_equal(mid.poses["pelvis"], src[10].poses["pelvis"])
    dev.poll(7.0 + 2.0)
    assert dev.exhausted
    fast = ReplayInput.from_inputs(src, speed=2.0, keep_time=True)
    fast.open()
    fast.poll(0.0)
    assert fast.poll(5 / RATE).t == src[10].t


def test_replay_missing_file_is_a_clear_error(tmp_path):
    from teleop.streams import DeviceUnavailable
    with pytest.raises(DeviceUnavailable, match="does not exist"):
        ReplayInput(tmp_path / "nope.npz").open()
    (tmp_path / "x.bin").write_bytes(b"\0")
    with pytest.raises(DeviceUnavailable, match="no reader"):
        ReplayInput(tmp_path / "x.bin").open()


def test_sim_state_is_a_robot_state():
    assert isinstance(SimRobot().state(0.0), RobotState)
