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
    # the camera shows the state the control loop last read (it never advances the simulation itself)
    moved = [f for i in range(100, 200) if robot.state(i / 100.0) and (f := cam.grab(i / 100.0)) is not None][-1]
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


# ------------------------------------------------------------------------------------------ real drivers
def _random_pose(seed: int) -> np.ndarray:
    from teleop.geometry import rpy
    rng = np.random.default_rng(seed)
    out = np.eye(4)
    out[:3, :3] = rpy(*rng.uniform(-2, 2, 3))
    out[:3, 3] = rng.uniform(-1, 2, 3)
    return out


def test_openvr_hmd34_to_world_pose():
    """Runs without SteamVR: `tests/xr_structs.py` declares openvr.h's HmdMatrix34_t when pyopenvr is absent."""
    from xr_structs import openvr_types
    from teleop.devices.frames import Y_UP_TO_Z_UP
    from teleop.devices.openvr_trackers import hmd34_to_matrix, hmd34_to_pose
    vr = openvr_types()
    vr_pose = _random_pose(0)
    m = vr.HmdMatrix34_t()
    for i in range(3):
        for j in range(4):
            m.m[i][j] = vr_pose[i, j]
    np.testing.assert_allclose(hmd34_to_matrix(m), vr_pose, atol=1e-6)       # float32 storage
    world = hmd34_to_pose(m)
    np.testing.assert_allclose(world[:3, :3] @ world[:3, :3].T, np.eye(3), atol=1e-6)
    assert np.linalg.det(world[:3, :3]) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(world[:3, :3], Y_UP_TO_Z_UP @ vr_pose[:3, :3], atol=1e-6)
    # OpenVR: y up, -z forward. A device 1 m ahead at 1.5 m height is at world (1, 0, 1.5); +x (right) is -y here
    ahead = vr.HmdMatrix34_t()
    for i, row in enumerate([[1, 0, 0, 0.3], [0, 1, 0, 1.5], [0, 0, 1, -1.0]]):
        for j, v in enumerate(row):
            ahead.m[i][j] = v
    np.testing.assert_allclose(hmd34_to_pose(ahead)[:3, 3], [1.0, -0.3, 1.5], atol=1e-6)


def test_openvr_sites_bind_by_serial_then_role():
    from teleop.devices.openvr_trackers import TrackedDevice, assign_sites
    devs = [TrackedDevice(0, "hmd", "HMD-1"), TrackedDevice(3, "tracker", "LHR-A", "vive_tracker_waist"),
            TrackedDevice(4, "tracker", "LHR-B", "vive_tracker_left_foot"), TrackedDevice(5, "controller", "C-L", "", "left"),
            TrackedDevice(6, "controller", "C-R", "", "right"), TrackedDevice(7, "tracker", "LHR-C", "vive_tracker_handed")]
    got = assign_sites(devs)
    assert got == {"head": 0, "pelvis": 3, "left_foot": 4, "left_wrist": 5, "right_wrist": 6}
    got = assign_sites(devs, {"right_wrist": "LHR-C"})              # a tracker strapped to the wrist wins
    assert got["right_wrist"] == 7 and got["pelvis"] == 3
    from teleop.streams import DeviceUnavailable
    with pytest.raises(DeviceUnavailable, match="LHR-Z"):
        assign_sites(devs, {"pelvis": "LHR-Z"})


def test_openxr_hand_joints_to_mediapipe_with_openxr_structs():
    """Runs without an OpenXR loader: `tests/xr_structs.py` declares openxr.h's structs when pyopenxr is absent."""
    from xr_structs import openxr_types
    xr = openxr_types()
    from teleop.devices.frames import Y_UP_TO_Z_UP
    from teleop.devices.hand_model import hand21
    from teleop.devices.openxr_input import OPENXR_TO_MEDIAPIPE, hand_joints_to_mediapipe, posef_to_pose
    world = hand21(0.4, "left") + np.array([0.4, 0.1, 1.1])                # MediaPipe 21 in our world frame
    y_up = world @ Y_UP_TO_Z_UP                                            # inverse of the runtime->world map
    joints = (xr.HandJointLocationEXT * 26)()
    valid_bits = xr.valid_bits
    for k, j in enumerate(OPENXR_TO_MEDIAPIPE):
        joints[j].pose.position = xr.Vector3f(*y_up[k])
        joints[j].pose.orientation = xr.Quaternionf(0.0, 0.0, 0.0, 1.0)
        joints[j].location_flags = valid_bits
    joints[0].pose.position = xr.Vector3f(9.0, 9.0, 9.0)                  # palm: not a MediaPipe landmark
    kp, valid, wrist = hand_joints_to_mediapipe(list(joints))
    assert valid and kp.shape == (21, 3)
    np.testing.assert_allclose(kp, world, atol=1e-6)
    np.testing.assert_allclose(wrist[:3, 3], world[0], atol=1e-6)
    np.testing.assert_allclose(wrist[:3, :3], Y_UP_TO_Z_UP, atol=1e-6)
    joints[10].location_flags = 0                                          # index tip lost
    assert not hand_joints_to_mediapipe(list(joints))[1]
    assert not hand_joints_to_mediapipe(list(joints), is_active=False)[1]
    # a quaternion: 90 deg about the runtime's up axis (y) = 90 deg about our z
    p = xr.Posef(orientation=xr.Quaternionf(0.0, np.sin(np.pi / 4), 0.0, np.cos(np.pi / 4)), position=xr.Vector3f(0, 1, -2))
    pose = posef_to_pose(p)
    np.testing.assert_allclose(pose[:3, 3], [2.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(pose[:3, :3] @ Y_UP_TO_Z_UP.T, rot_z_90(), atol=1e-6)


def rot_z_90() -> np.ndarray:
    return np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def test_gamepad_events_fifo_and_estop(tmp_path):
    import os
    from teleop.devices.gamepad import JS_EVENT, JS_EVENT_AXIS, JS_EVENT_BUTTON, JS_EVENT_INIT, JoystickState, LinuxGamepad
    st = JoystickState()
    st.apply(JS_EVENT.pack(0, -32767, JS_EVENT_AXIS | JS_EVENT_INIT, 1) + JS_EVENT.pack(5, 16384, JS_EVENT_AXIS, 3))
    np.testing.assert_allclose(st.axes, [0.0, 1.0, 16384 / 32767, 0.0])     # stick up = +left_y
    st.apply(JS_EVENT.pack(9, 1, JS_EVENT_BUTTON, 0))
    assert st.buttons == {"a", "estop"}
    st.apply(JS_EVENT.pack(10, 0, JS_EVENT_BUTTON, 0) + JS_EVENT.pack(11, 1, JS_EVENT_BUTTON, 7))
    assert st.buttons == {"start"}
    with pytest.raises(ValueError):
        st.apply(b"\0" * 5)
    # the real read path: non-blocking reads from a character-stream (a FIFO stands in for /dev/input/js0)
    fifo = tmp_path / "js0"
    os.mkfifo(fifo)
    pad = LinuxGamepad(str(fifo))
    pad.open()
    assert pad.poll(0.0).axes.tolist() == [0.0, 0.0, 0.0, 0.0]           # nothing written yet, never blocks
    w = os.open(fifo, os.O_WRONLY)
    os.write(w, JS_EVENT.pack(1, 32767, JS_EVENT_AXIS, 0) + JS_EVENT.pack(2, 1, JS_EVENT_BUTTON, 0))
    inp = pad.poll(1.0)
    assert inp.axes[0] == pytest.approx(1.0) and "estop" in inp.buttons and not any(inp.pose_valid.values())
    os.close(w)
    pad.close()


def test_opencv_camera_reads_a_video_rgb_at_its_rate(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from teleop.devices.cameras import OpenCVCamera
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(20):
        bgr = np.zeros((48, 64, 3), np.uint8)
        bgr[:, :, 2] = 200                                           # red in BGR
        bgr[:, :, 1] = 10 * i
        writer.write(bgr)
    writer.release()
    cam = OpenCVCamera(path, rate_hz=10.0, size=(32, 24))
    cam.open()
    frames = [f for k in range(100) if (f := cam.grab(k / 100.0)) is not None]    # 1 s at 100 Hz polling
    assert 9 <= len(frames) <= 11
    img = frames[0].image
    assert img.shape == (24, 32, 3) and img.dtype == np.uint8
    assert img[..., 0].mean() > 150 and img[..., 2].mean() < 50      # RGB order
    assert frames[3].image[..., 1].mean() > frames[0].image[..., 1].mean() + 15
    for _ in range(20):                                              # past the end: None, counted, no raise
        cam.grab(5.0 + _)
    assert cam.dropped > 0
    cam.close()


def test_unitree_conversions():
    from teleop.devices.unitree_bridge import ARM_MOTORS, arm_motor_targets, robot_state_from_lowstate
    a = np.arange(PSI0_ACTION.size, dtype=np.float32) / 100
    targets = arm_motor_targets(a)
    assert [m for m, *_ in targets] == list(ARM_MOTORS) == list(range(15, 29))
    assert [q for _, q, *_ in targets] == pytest.approx(a[14:28].tolist())
    q = np.arange(35) / 10.0                                         # LowState carries 35 motor slots
    st = robot_state_from_lowstate(1.5, q, -q, [0.1, 0.2, 0.3, 9.9])
    np.testing.assert_array_equal(st.body_q, q[:29])
    assert st.body_q[G1_BODY.index("left_knee")] == pytest.approx(0.3)
    np.testing.assert_array_equal(st.imu_rpy, [0.1, 0.2, 0.3])


@pytest.mark.parametrize("name,needle", [("openvr", "SteamVR"), ("openxr", "OpenXR"), ("gamepad", "js"),
                                         ("unitree-g1", "unitree")])
def test_drivers_fail_with_a_clear_message_when_their_runtime_is_absent(name, needle):
    from teleop.devices.registry import available_devices, open_camera, open_input, open_robot
    from teleop.streams import DeviceUnavailable
    entry = {d["name"]: d for d in available_devices()}[name]
    if entry["available"]:
        pytest.skip(f"{name} is actually available here")
    assert needle.lower() in entry["reason"].lower() or needle.lower() in name
    opener = open_robot if entry["kind"] == "robot" else open_input
    with pytest.raises(DeviceUnavailable) as err:
        opener(name, **({"gamepad": None} if name in ("openvr", "openxr") else {}))
    assert name.split("-")[0] in str(err.value).lower()
    with pytest.raises(DeviceUnavailable, match="cannot open"):
        open_camera("opencv", source="/nonexistent/camera.avi")


def test_registry_lists_and_opens_sim_devices():
    from teleop.devices.registry import available_devices, open_camera, open_input, open_robot
    devs = available_devices()
    names = [d["name"] for d in devs]
    assert {"sim", "replay", "openvr", "openxr", "gamepad", "sim-robot", "unitree-g1", "sim-camera", "opencv"} <= set(names)
    assert all(set(d) >= {"name", "kind", "available", "reason"} for d in devs)
    assert {d["name"]: d["available"] for d in devs}["sim"]
    op = open_input("sim", task="lunchbag", seed=3)
    assert op.describe()["seed"] == 3 and op.poll(0.0).axes.shape == (4,)
    robot = open_robot("sim-robot")
    cam = open_camera("sim-camera", robot=robot)
    assert cam.grab(0.0).image.shape == (120, 160, 3)
    with pytest.raises(ValueError, match="unknown input device"):
        open_input("kinect")
