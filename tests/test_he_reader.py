"""Humanoid Everyday reader: zips read in place, read-back vs generated, derived lower body, faults."""
from __future__ import annotations

import copy
import io
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from converters import humanoid_everyday as he
from samples import faults
from samples import humanoid_everyday as sample
from schemas import LOWER_BODY_COMMAND, PSI0_ACTION, PSI0_STATE, EpisodeError, RejectReason, validate_episode
from schemas.embodiments import G1_LEGS_WAIST, H1_LEGS_WAIST, INSPIRE_HAND
from schemas.embodiments.parts.g1 import G1_LEGS


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("he")
    eps = sample.write_sample(root, seed=5, resolution=(96, 72), seconds=1.5)
    return root, {f"humanoid_everyday/{e.task}/episode_{e.index}": e for e in eps}


def _tree(root):
    return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)


def test_discover_zip_with_and_without_root_folder_and_category(written):
    root, truth = written
    refs = he.discover(str(root))
    assert [r.source_id for r in refs] == sorted(truth)
    by_id = {r.source_id: r for r in refs}
    assert by_id["humanoid_everyday/pick_up_the_cup/episode_0"].member == "pick_up_the_cup/episode_0/"
    assert by_id["humanoid_everyday/walk_and_turn/episode_0"].member == "episode_0/"       # no root folder
    assert by_id["humanoid_everyday/wipe_the_table/episode_1"].get("category") == "basic_manipulation"
    with zipfile.ZipFile(root / "pick_up_the_cup.zip") as zf:                             # junk is present ...
        assert any(n.startswith("__MACOSX/") for n in zf.namelist())
    assert not any("__MACOSX" in r.member for r in refs)                                   # ... and skipped


def test_zips_are_read_in_place(written, monkeypatch):
    root, _ = written
    before = _tree(root)

    def forbidden(*a, **k):
        raise AssertionError("zip members must not be extracted")

    monkeypatch.setattr(zipfile.ZipFile, "extract", forbidden)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", forbidden)
    for ref in he.discover(str(root)):
        ep = he.read(ref, with_depth=True)
        he.load_depth(ep, 0)
        he.load_lidar(ep, 0)
    assert _tree(root) == before


def test_read_back_equals_generated(written):
    root, truth = written
    for ref in he.discover(str(root)):
        ep = truth[ref.source_id]
        got = he.read(ref)
        validate_episode(got)
        n = len(ep.frames)
        assert got.length == n and got.meta.fps == 30.0
        assert got.meta.embodiment == ("g1_dex3" if ep.robot == "G1" else "h1_inspire")
        np.testing.assert_allclose(got.column("timestamp"), ep.truth["time"] - ep.truth["time"][0], atol=2e-6)
        state, action = got.column("observation.state"), got.column("action")
        assert state.shape == (n, PSI0_STATE.size) and action.shape == (n, PSI0_ACTION.size)
        np.testing.assert_allclose(state[:, PSI0_STATE.slice("arms")], ep.truth["arm_state"], atol=1e-5)
        np.testing.assert_allclose(action[:, PSI0_ACTION.slice("arms")], ep.truth["sol_q"], atol=1e-5)
        np.testing.assert_allclose(got.column("observation.arm_state"), ep.truth["arm_state"], atol=1e-5)
        hands = action[:, PSI0_ACTION.slice("hands")]
        np.testing.assert_array_equal(hands, state[:, PSI0_STATE.slice("hands")])
        if ep.robot == "G1":
            np.testing.assert_allclose(hands, ep.truth["hand_state"], atol=1e-5)
        else:
            lo, hi = INSPIRE_HAND.bounds()
            raw = ep.truth["hand_state"]                                                   # right 6, left 6
            left, right = lo + (1 - raw[:, 6:12]) * (hi - lo), lo + (1 - raw[:, 0:6]) * (hi - lo)
            np.testing.assert_allclose(hands[:, 0:6], left[:, ::-1], atol=1e-5)           # thumb -> little
            np.testing.assert_allclose(hands[:, 7:13], right[:, ::-1], atol=1e-5)
            assert (hands[:, [6, 13]] == 0).all()                                          # padded to 7
            assert got.meta.extra["names"]["observation.leg_state"][12] == "waist_yaw"
            assert got.meta.extra["names"]["observation.hand_state_raw"][0] == "right.pinky"
        np.testing.assert_allclose(got.column("observation.hand_state_raw")[:, :ep.truth["hand_state"].shape[1]],
                                   ep.truth["hand_state"], atol=1e-5)
        np.testing.assert_allclose(got.column("observation.odometry.velocity"), ep.truth["velocity"], atol=1e-5)
        assert got.column("observation.leg_state").shape == (n, 15)
        video = got.videos["observation.images.egocentric"]
        assert video.kind == "images" and video.frame_count == n and (video.width, video.height) == (96, 72)
        assert video.member_of_zip == ref.uri.endswith(".zip")
        assert video.codec == ("png" if ep.image_names[0].endswith(".png") else "jpeg")


def test_lower_body_has_amos_meaning(written):
    """Each of the 8 AMO command dims from the state that carries its meaning (converters.lower_body); the
    proof against simulators that record the executed command is tests/test_lower_body_labels.py."""
    root, truth = written
    ref = next(r for r in he.discover(str(root)) if "walk_and_turn" in r.source_id)
    ep, got = truth[ref.source_id], he.read(ref)
    lb = got.column("action.lower_body")
    low, high = LOWER_BODY_COMMAND.bounds()
    dims = {d: k for k, d in enumerate(LOWER_BODY_COMMAND.dims)}
    assert (np.delete(lb, dims["target_yaw"], 1) >= np.delete(low, dims["target_yaw"]) - 1e-6).all()
    yaw = ep.truth["yaw"]                                          # starts at 3.0 rad: wraps past +pi
    assert (np.abs(np.diff(got.column("observation.imu.rpy")[:, 2])) > np.pi).any()
    np.testing.assert_allclose(lb[:, dims["vx"]], ep.truth["v_fwd"], atol=1e-4)        # heading-frame forward speed
    np.testing.assert_allclose(lb[:, dims["vy"]], 0.0, atol=1e-4)
    np.testing.assert_allclose(lb[2:-2, dims["yaw_rate"]], ep.truth["yaw_rate"][2:-2], atol=0.02)   # no jump at the wrap
    np.testing.assert_allclose(lb[:, dims["target_yaw"]], yaw - yaw[0], atol=0.01)      # unwrapped heading since t=0
    legs = got.column("observation.leg_state")
    imu = got.column("observation.imu.rpy")
    waist = {n: legs[:, k] for k, n in enumerate(G1_LEGS_WAIST.dims) if n.startswith("waist")}
    np.testing.assert_allclose(lb[:, dims["torso_yaw"]], waist["waist_yaw"], atol=1e-6)          # AMO: waist commands
    np.testing.assert_allclose(lb[:, dims["torso_roll"]], waist["waist_roll"] + imu[:, 0], atol=1e-5)
    np.testing.assert_allclose(lb[:, dims["torso_pitch"]], waist["waist_pitch"] + imu[:, 1], atol=1e-5)
    # height: the sagittal leg chain (G1 lengths) relative to the stance AMO calls 0.75 m
    q = {n: legs[:, k].astype(np.float64) for k, n in enumerate(G1_LEGS_WAIST.dims)}
    g = G1_LEGS
    pelvis = np.maximum(*[g.hip_drop * np.cos(imu[:, 1]) * np.cos(imu[:, 0]) + np.cos(imu[:, 0] + q[f"{s}_hip_roll"]) * (
        g.thigh * np.cos(imu[:, 1] + q[f"{s}_hip_pitch"])
        + g.shank * np.cos(imu[:, 1] + q[f"{s}_hip_pitch"] + q[f"{s}_knee"])) + g.sole for s in ("left", "right")])
    np.testing.assert_allclose(lb[:, dims["torso_height"]], 0.75 + pelvis - g.stance_pelvis_height, atol=1e-5)
    assert 0.7 < lb[:, dims["torso_height"]].min() and lb[:, dims["torso_height"]].max() < 0.8
    assert lb[:, dims["vx"]].max() > 0.25 and lb[:, dims["yaw_rate"]].max() > 0.3
    np.testing.assert_array_equal(got.column("action.mask"), 1.0)                # a G1 with odometry: every dim a label
    for dim in LOWER_BODY_COMMAND.dims:
        assert f"action.lower_body.{dim}" in got.meta.derived
    state = got.column("observation.state")
    np.testing.assert_allclose(state[1:, 28:32], lb[:-1, 0:4])                          # previous torso rpy/height
    np.testing.assert_allclose(state[0, 28:32], [0, 0, 0, 0.75])
    np.testing.assert_array_equal(got.column("action")[:, 28:36], lb)


def test_h1_masks_the_dims_it_has_no_state_for(written):
    """H1: one waist joint (yaw) and no AMO stance: torso roll, pitch and height are masked, never proxied."""
    root, _ = written
    ref = next(r for r in he.discover(str(root)) if "wipe_the_table" in r.source_id)
    got = he.read(ref)
    assert got.meta.embodiment == "h1_inspire"
    mask = got.column("action.mask")
    lower = PSI0_ACTION.slice("lower_body")
    np.testing.assert_array_equal(mask[:, :lower.start], 1.0)
    want = {d: 0.0 if d in ("torso_roll", "torso_pitch", "torso_height") else 1.0 for d in LOWER_BODY_COMMAND.dims}
    np.testing.assert_array_equal(mask[:, lower], np.tile([want[d] for d in LOWER_BODY_COMMAND.dims], (len(mask), 1)))
    for dim in ("torso_roll", "torso_pitch", "torso_height"):
        assert got.meta.derived[f"action.lower_body.{dim}"].startswith("masked")
    waist_yaw = got.column("observation.leg_state")[:, list(H1_LEGS_WAIST.dims).index("waist_yaw")]
    np.testing.assert_allclose(got.column("action.lower_body")[:, 2], waist_yaw, atol=1e-6)
    assert got.meta.quality["lower_body.torso_pitch.labelled"] == 0.0


def test_missing_odometry_masks_the_velocities(written, tmp_path):
    root, truth = written
    ep = copy.deepcopy(truth["humanoid_everyday/pick_up_the_cup/episode_0"])
    for frame in ep.frames:
        del frame["states"]["odometry"]
    sample.store_task(tmp_path, "no_odom", [ep], "dir")
    got = he.read(he.discover(str(tmp_path))[0])
    mask = got.column("action.mask")[:, PSI0_ACTION.slice("lower_body")]
    dims = LOWER_BODY_COMMAND.dims
    assert (mask[:, dims.index("vx")] == 0).all() and (mask[:, dims.index("vy")] == 0).all()
    assert got.meta.derived["action.lower_body.vx"] == "masked: no odometry"
    assert (mask[:, dims.index("torso_height")] == 1).all()                     # the legs still give the height
    assert "imu.rpy" in got.meta.derived["action.lower_body.target_yaw"]


def test_depth_and_lidar_behind_a_flag(written):
    root, truth = written
    refs = {r.source_id: r for r in he.discover(str(root))}
    plain = he.read(refs["humanoid_everyday/walk_and_turn/episode_0"])
    assert "depth" not in plain.meta.extra and "lidar" not in plain.meta.extra
    got = he.read(refs["humanoid_everyday/walk_and_turn/episode_0"], with_depth=True)
    depth = he.load_depth(got, 2)
    assert depth.dtype == np.uint16 and depth.shape == (72, 96) and depth.max() <= 2500
    points = he.load_lidar(got, 2)                       # data.json names the pcd with unpadded decimals
    assert points.shape[1] == 3 and len(points) == 60 and not (points == 0).all(axis=1).any()
    assert len(got.meta.extra["depth"]["frames"]) == got.length


def test_task_text(written):
    root, _ = written
    tasks = {r.source_id: he.read(r).meta.task for r in he.discover(str(root))}
    assert tasks["humanoid_everyday/pick_up_the_cup/episode_0"] == "Pick up the cup from the table."  # dict
    assert tasks["humanoid_everyday/wipe_the_table/episode_0"] == "Wipe the table"                    # folder


def test_frames_are_zip_members_that_decode(written):
    root, _ = written
    ref = he.discover(str(root))[0]
    video = he.read(ref).videos["observation.images.egocentric"]
    with zipfile.ZipFile(video.uri) as zf:
        img = Image.open(io.BytesIO(zf.read(video.frames[-1])))
        assert img.size == (96, 72)


def test_every_fault_kind_gets_its_reason(tmp_path):
    expected = faults.write_all(tmp_path, "humanoid_everyday", seed=2)
    refs = he.discover(str(tmp_path))
    ids = [r.source_id for r in refs]
    assert set(ids) == set(expected)
    dup = [r for r in refs if r.source_id == "humanoid_everyday/fault_duplicate_id/episode_0"]
    assert len(dup) == 2 and {r.get("kind") for r in dup} == {"zip", "dir"}     # the planner rejects one
    for ref in refs:
        reason = expected[ref.source_id]
        if reason is RejectReason.DUPLICATE_ID:
            he.read(ref)                                                        # each copy is itself fine
            continue
        with pytest.raises(EpisodeError) as err:
            he.read(ref)
        assert err.value.reason is reason, (ref.source_id, err.value.message)


def test_zip_in_a_category_folder_with_spaces_in_its_name(written, tmp_path):
    root, truth = written
    ep = truth["humanoid_everyday/wipe_the_table/episode_0"]
    sample.store_task(tmp_path, "Push a button", [ep], "zip", category="articulated objects")
    (ref,) = he.discover(str(tmp_path))
    assert ref.source_id == "humanoid_everyday/push_a_button/episode_0"
    assert ref.get("category") == "articulated objects" and ref.member == "Push a button/episode_0/"
    got = he.read(ref)
    assert got.meta.task == "Push a button" and got.meta.task_name == "push_a_button"
    assert got.meta.embodiment == "h1_inspire"                      # no robot_type => H1


def test_rewritten_archive_is_not_served_from_the_handle_cache(written, tmp_path):
    root, truth = written
    ep = truth["humanoid_everyday/pick_up_the_cup/episode_1"]
    sample.store_task(tmp_path, "task", [ep], "zip_noroot")
    (ref,) = he.discover(str(tmp_path))
    assert he.read(ref).length == len(ep.frames)
    ep_short = sample.make_episode(np.random.default_rng(0), "task", 1, "G1", 12, False, (32, 24))
    sample.store_task(tmp_path, "task", [ep_short], "zip_noroot")
    assert he.read(he.discover(str(tmp_path))[0]).length == 12


def test_image_paths_recorded_relative_to_elsewhere_are_resolved(written, tmp_path):
    root, truth = written
    ep = copy.deepcopy(truth["humanoid_everyday/pick_up_the_cup/episode_0"])
    for frame in ep.frames:                       # absolute path from the recording machine
        frame["image"] = "/home/op/data/pick_up_the_cup/episode_0/" + frame["image"]
    sample.store_task(tmp_path, "abs_paths", [ep], "zip")
    video = he.read(he.discover(str(tmp_path))[0]).videos["observation.images.egocentric"]
    assert video.frames[0] == "abs_paths/episode_0/color/frame_000000.jpg"


def test_29d_sol_q_and_robot_type_inside_states(written, tmp_path):
    root, truth = written
    ep = copy.deepcopy(truth["humanoid_everyday/pick_up_the_cup/episode_1"])
    for frame in ep.frames:
        frame["states"]["robot_type"] = frame.pop("robot_type")
        frame["actions"]["sol_q"] = [0.0] * 15 + frame["actions"]["sol_q"]      # legs + waist first
        del frame["actions"]["left_angles"]
    sample.store_task(tmp_path, "t", [ep], "dir")
    got = he.read(he.discover(str(tmp_path))[0])
    assert got.meta.embodiment == "g1_dex3" and got.meta.derived["action.arms"] == "actions.sol_q[15:29]"
    np.testing.assert_allclose(got.column("action")[:, 14:28], ep.truth["sol_q"], atol=1e-5)
