"""EgoDex reader: read the written sample back and compare with what was generated; bad inputs."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from converters import egodex
from converters.retarget.frames import palm_frame
from samples import egodex as sample
from samples import faults
from schemas import HUMAN_ACTION_48, EpisodeError, RejectReason, validate_episode
from schemas.embodiments import SIDES, human_hand_joints


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("egodex")
    eps = sample.write_sample(root, seed=3, resolution=(160, 90), seconds=1.0)
    return root, {f"egodex/{sample.TASKS[e.task]['split']}/{e.task}/{e.index}": e for e in eps}


def test_discover_lists_every_episode_sorted(written):
    root, truth = written
    refs = egodex.discover(str(root))
    assert [r.source_id for r in refs] == sorted(truth)
    assert all(r.get("video").endswith(".mp4") and r.uri.endswith(".hdf5") for r in refs)
    # A split folder given directly also works, with its name as the split.
    split_refs = egodex.discover(str(root / "part2"))
    assert [r.source_id for r in split_refs] == [k for k in sorted(truth) if "/part2/" in k]


def _cam_frame(ep, name):
    """Independent reference: np.linalg.inv of the camera pose, applied to a joint's world pose."""
    cam = ep.transforms["camera"].astype(np.float64)
    return np.linalg.inv(cam) @ ep.transforms[name].astype(np.float64)


def test_read_back_equals_generated_poses(written):
    root, truth = written
    for ref in egodex.discover(str(root)):
        ep = truth[ref.source_id]
        got = egodex.read(ref)
        validate_episode(got)
        assert got.length == ep.length and got.videos["observation.images.egocentric"].frame_count == ep.length
        assert got.meta.task == ep.instruction and got.meta.task_name == ep.task
        np.testing.assert_allclose(got.column("timestamp"), np.arange(ep.length) / 30, atol=1e-6)
        action = got.column("action")
        np.testing.assert_array_equal(action, got.column("observation.state"))
        for side in SIDES:
            names = human_hand_joints(side)
            kp = got.column(f"human.{side}_hand.keypoints").reshape(-1, 25, 3)
            for j, name in enumerate(names):
                np.testing.assert_allclose(kp[:, j], _cam_frame(ep, name)[:, :3, 3], atol=2e-5)
            hand = action[:, HUMAN_ACTION_48.slice(f"{side}_hand")]
            wrist = _cam_frame(ep, f"{side}Hand")
            np.testing.assert_allclose(hand[:, 0:3], wrist[:, :3, 3], atol=2e-5)
            # rot6d (column 0, then column 1) of the palmar frame of the keypoints: the one wrist convention of
            # state, action and tokens (not ARKit's own wrist axes, docs/shards.md)
            palm = palm_frame(kp.astype(np.float64), side)
            np.testing.assert_allclose(hand[:, 3:6], palm[:, :, 0], atol=2e-5)
            np.testing.assert_allclose(hand[:, 6:9], palm[:, :, 1], atol=2e-5)
            tip = _cam_frame(ep, f"{side}LittleFingerTip")[:, :3, 3]
            np.testing.assert_allclose(hand[:, 21:24], tip, atol=2e-5)
            conf = got.column(f"human.{side}_hand.confidence")
            if ep.confidences is None:
                assert (conf == 1.0).all() and f"human.{side}_hand.confidence" in got.meta.derived
            else:
                np.testing.assert_array_equal(conf, np.stack([ep.confidences[n] for n in names], 1))
        np.testing.assert_allclose(got.column("human.camera.pose").reshape(-1, 4, 4), ep.transforms["camera"])
        np.testing.assert_allclose(np.array(got.meta.extra["camera_intrinsic"]), ep.intrinsic, rtol=1e-6)
        assert got.meta.extra["attrs"]["llm_type"] == ep.attrs["llm_type"]     # bytes attrs decoded too


def test_reversible_tasks_pick_the_second_description(written):
    root, truth = written
    tasks = {r.source_id: egodex.read(r).meta.task for r in egodex.discover(str(root))}
    assert tasks["egodex/part1/add_remove_lid/0"] == "Put the lid on the jar."
    assert tasks["egodex/part1/add_remove_lid/1"] == "Take the lid off the jar."


def test_instruction_fallbacks():
    assert egodex.instruction({"llm_description": "Do it."}, "x") == ("Do it.", "")
    text, how = egodex.instruction({}, "basic_pick_place")
    assert text == "Basic pick place" and how


def test_every_fault_kind_gets_its_reason(tmp_path):
    expected = faults.write_all(tmp_path, "egodex", seed=1)
    refs = {r.source_id: r for r in egodex.discover(str(tmp_path))}
    assert set(refs) == set(expected)             # nothing silently dropped, e.g. the mp4-less episode
    for source_id, reason in expected.items():
        with pytest.raises(EpisodeError) as err:
            egodex.read(refs[source_id])
        assert err.value.reason is reason, (source_id, err.value.message)
        assert source_id.split("/")[2] in err.value.message or refs[source_id].uri in err.value.message


def test_video_without_hdf5_is_listed_and_rejected(tmp_path, written):
    root, _ = written
    src = root / "part1" / "basic_pick_place" / "0.mp4"
    (tmp_path / "p" / "t").mkdir(parents=True)
    shutil.copy(src, tmp_path / "p" / "t" / "5.mp4")
    (ref,) = egodex.discover(str(tmp_path))
    with pytest.raises(EpisodeError) as err:
        egodex.read(ref)
    assert err.value.reason is RejectReason.UNREADABLE


def test_fps_mismatch_is_rejected(tmp_path):
    rng = np.random.default_rng(0)
    ep = sample.make_episode(rng, "basic_pick_place", 0, 20, (64, 48))
    folder = tmp_path / "part1" / "basic_pick_place"
    sample.write_hdf5(folder / "0.hdf5", ep)
    import av

    with av.open(str(folder / "0.mp4"), "w") as out:      # same frame count, 25 fps
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(20):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode())
    with pytest.raises(EpisodeError) as err:
        egodex.read(egodex.discover(str(tmp_path))[0])
    assert err.value.reason is RejectReason.FPS_MISMATCH
