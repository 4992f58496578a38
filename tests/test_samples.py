"""`psi0 sample`: real formats, determinism by seed, plausible motion, video that shows the hands."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import av
import h5py
import numpy as np
import pytest

from samples import egodex as ego_sample
from samples import humanoid_everyday as he_sample
from samples.motion import hand_pose, min_jerk_path
from schemas.embodiments import DEX3_LEFT, DEX3_RIGHT, EGODEX_JOINTS, G1_ARMS, H1_ARMS, SIDES
from schemas.validation import check_rigid

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--resolution", "96x54", "--he-resolution", "64x48", "--seconds", "1"]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cli_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("s") / "a"
    subprocess.run([sys.executable, "-m", "psi0", "sample", "--out", str(out), "--seed", "7", *SMALL],
                   cwd=ROOT, check=True, capture_output=True)
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(cli_sample, tmp_path):
    again = tmp_path / "b"
    other = tmp_path / "c"
    subprocess.run([sys.executable, "-m", "psi0", "sample", "--out", str(again), "--seed", "7", *SMALL],
                   cwd=ROOT, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "psi0", "sample", "--out", str(other), "--seed", "8", *SMALL],
                   cwd=ROOT, check=True, capture_output=True)
    first = _digest(cli_sample)
    assert any(k.endswith(".mp4") for k in first) and any(k.endswith(".zip") for k in first)
    assert first == _digest(again)                           # MP4, HDF5, zips, JSON, images: identical
    changed = {k for k, v in _digest(other).items() if first.get(k) != v}
    assert any(k.endswith(".mp4") for k in changed) and any(k.endswith(".hdf5") for k in changed)


def test_sample_layout_and_formats(cli_sample):
    ego = cli_sample / "egodex"
    hdf5s = sorted(ego.glob("*/*/*.hdf5"))
    assert len(hdf5s) >= 6 and len({p.parent.name for p in hdf5s}) == 3
    for path in hdf5s:
        with h5py.File(path) as f:
            assert f["camera/intrinsic"].shape == (3, 3)
            assert set(f["transforms"]) == set(EGODEX_JOINTS) | {"camera"}
            n = f["transforms/camera"].shape[0]
            assert all(f[f"transforms/{j}"].dtype == np.float32 for j in EGODEX_JOINTS)
            assert "llm_description" in f.attrs
        with av.open(str(path.with_suffix(".mp4"))) as c:
            s = c.streams.video[0]
            assert s.codec_context.name == "h264" and s.frames == n and float(s.average_rate) == 30.0
            assert (s.codec_context.width, s.codec_context.height) == (96, 54)
    he = cli_sample / "humanoid_everyday"
    zips, dirs = sorted(he.glob("*.zip")), sorted(he.rglob("episode_*"))
    assert zips and [d for d in dirs if d.is_dir()]
    robots, tasks, episodes = set(), set(), 0
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            for name in zf.namelist():
                if name.endswith("data.json") and not name.startswith("__MACOSX"):
                    data = json.loads(zf.read(name))
                    robots.add(data[0].get("robot_type", "H1"))
                    tasks.add(z.stem)
                    episodes += 1
    for d in dirs:
        if (d / "data.json").is_file():
            data = json.loads((d / "data.json").read_text())
            robots.add(data[0].get("robot_type", "H1"))
            tasks.add(d.parent.name)
            episodes += 1
            assert {"time", "states", "actions", "image", "depth", "lidar"} <= set(data[0])
            assert {"arm_state", "leg_state", "hand_state", "imu", "odometry"} <= set(data[0]["states"])
            actions = set(data[0]["actions"])
            assert {"sol_q", "left_angles", "right_angles", "tau_ff", "left_pose", "head_rmat"} <= actions
    assert robots == {"G1", "H1"} and len(tasks) >= 2 and episodes >= 4


def test_egodex_motion_is_rigid_smooth_and_hands_open_and_close():
    rng = np.random.default_rng(0)
    ep = ego_sample.make_episode(rng, "basic_pick_place", 0, 90)
    for name, T in ep.transforms.items():
        check_rigid(name, T)
    for side in SIDES:
        wrist = ep.transforms[f"{side}Hand"][:, :3, 3].astype(np.float64)
        v = np.diff(wrist, axis=0) * 30
        assert np.linalg.norm(v, axis=1).max() < 1.5                       # a person's reach, not a jump
        acc = np.diff(v, axis=0) * 30
        assert np.linalg.norm(acc, axis=1).max() < 15
        tip = ep.transforms[f"{side}MiddleFingerTip"][:, :3, 3]
        reach = np.linalg.norm(tip - wrist, axis=1)
        assert reach.max() - reach.min() > 0.03 and 0.08 < reach.min() and reach.max() < 0.22


def test_hand_model_closes_fingers_towards_the_palm():
    wrist = np.broadcast_to(np.eye(4), (2, 4, 4)).copy()
    for side in SIDES:
        joints = hand_pose(side, wrist, np.array([0.0, 1.0]))
        tip = joints[f"{side}IndexFingerTip"][:, :3, 3]
        assert tip[0, 2] > 0.17 and tip[1, 2] < tip[0, 2] - 0.05           # straight vs curled
        assert tip[1, 1] < -0.02                                            # curls to the palm side (-y)
        thumb_x = joints[f"{side}ThumbKnuckle"][0, 0, 3]
        assert np.sign(thumb_x) == (1 if side == "right" else -1)


def test_min_jerk_hits_waypoints_with_zero_velocity():
    t = np.linspace(0, 2, 201)
    path = min_jerk_path(t, np.array([0.0, 1.0, 2.0]), np.array([[0.0], [1.0], [0.0]]))[:, 0]
    assert path[0] == 0 and abs(path[100] - 1) < 1e-12 and abs(path[-1]) < 1e-12
    assert abs(path[101] - path[99]) < 1e-3


def test_he_joints_within_limits():
    for robot, arms in (("G1", G1_ARMS), ("H1", H1_ARMS)):
        ep = he_sample.make_episode(np.random.default_rng(1), "x", 0, robot, 90, robot == "G1", (32, 24))
        lo, hi = arms.bounds()
        for key in ("arm_state", "sol_q"):
            assert (ep.truth[key] >= lo).all() and (ep.truth[key] <= hi).all()
        hand = ep.truth["hand_state"]
        if robot == "G1":
            lo = np.concatenate([DEX3_LEFT.bounds()[0], DEX3_RIGHT.bounds()[0]])
            hi = np.concatenate([DEX3_LEFT.bounds()[1], DEX3_RIGHT.bounds()[1]])
            assert (hand >= lo - 1e-9).all() and (hand <= hi + 1e-9).all()
        else:
            assert (hand >= 0).all() and (hand <= 1).all()
        assert np.ptp(hand, axis=0).max() > 0.3                            # hands open and close
        # Odometry position is the integral of the recorded velocity.
        pos, vel = ep.truth["position"], ep.truth["velocity"]
        np.testing.assert_allclose(np.diff(pos[:, :2], axis=0) * 30, 0.5 * (vel[1:, :2] + vel[:-1, :2]), atol=1e-9)


def test_video_shows_hands_at_the_projected_keypoints(tmp_path):
    rng = np.random.default_rng(4)
    ep = ego_sample.make_episode(rng, "basic_pick_place", 0, 30, (320, 180))
    path = tmp_path / "0.mp4"
    ego_sample.write_mp4(path, ep)
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 30 and np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5  # it moves
    skin = np.array(ego_sample.SKIN)
    hits = 0
    for i in (0, 15, 29):
        for side in SIDES:
            # The middle knuckle sits inside the palm polygon: its pixel must be skin-coloured.
            p = ep.transforms[f"{side}MiddleFingerKnuckle"][i, :3, 3]
            uv, z = ego_sample.project(p[None], ep.transforms["camera"][i], ep.intrinsic.astype(np.float64))
            u, v = np.round(uv[0]).astype(int)
            assert z[0] > 0 and 0 <= u < 320 and 0 <= v < 180
            hits += np.abs(frames[i][v, u].astype(int) - skin).max() < 40
    assert hits >= 5
