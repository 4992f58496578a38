import numpy as np
from scipy.spatial.transform import Rotation

from converters.retarget.hands import dex3_model, robot_keypoints25
from converters.retarget.human_action import (HumanActionConfig, absolute_chunks, absolute_per_frame, delta_chunks,
                                              sample_indices)
from schemas import HUMAN_ACTION_48, HUMAN_ACTION_48_DELTA


def _scene(t=61, seed=0):
    """Hands fixed in the world; the camera moves. Keypoints are given in the current camera frame."""
    rng = np.random.default_rng(seed)
    world = {}
    for i, side in enumerate(("left", "right")):
        kp = robot_keypoints25(dex3_model(side), np.zeros((1, 7)))[0]
        world[side] = kp + np.array([0.3 * (i - 0.5), 0.0, 0.5])
    cams = np.tile(np.eye(4), (t, 1, 1))
    cams[:, :3, :3] = Rotation.from_rotvec(np.linspace(0, 0.5, t)[:, None] * np.array([0.2, 1.0, 0.1])).as_matrix()
    cams[:, :3, 3] = np.linspace(0, 0.2, t)[:, None] * rng.normal(size=3)
    kps = {}
    for side, pts in world.items():
        inv = np.linalg.inv(cams)
        kps[side] = pts[None] @ np.swapaxes(inv[:, :3, :3], 1, 2) + inv[:, None, :3, 3]
    return world, cams, kps


def test_absolute_chunks_are_in_first_camera_frame():
    _, cams, kps = _scene()
    starts, chunks = absolute_chunks(kps, cams, HumanActionConfig(chunk=16))
    assert chunks.shape == (len(starts), 16, HUMAN_ACTION_48.size)
    np.testing.assert_array_equal(starts[:3], [0, 3, 6])
    # static hands in the world => constant within a chunk in the chunk's first camera frame
    assert np.abs(chunks - chunks[:, :1]).max() < 1e-9
    per_frame = absolute_per_frame(kps)
    np.testing.assert_allclose(chunks[:, 0], per_frame[starts], atol=1e-9)
    rot6d = chunks[0, 0, HUMAN_ACTION_48.slice("left_hand.wrist_rot")]
    np.testing.assert_allclose(np.linalg.norm(rot6d[:3]), 1.0) and np.testing.assert_allclose(rot6d[:3] @ rot6d[3:], 0, atol=1e-12)


def test_delta_chunks_zero_for_static_hands_and_match_motion():
    _, cams, kps = _scene()
    starts, d = delta_chunks(kps, cams, HumanActionConfig(chunk=4))
    assert d.shape == (len(starts), 4, HUMAN_ACTION_48_DELTA.size)
    assert np.abs(d).max() < 1e-9
    # move the right hand along camera x by 1 cm per source frame with a static camera
    cams[:] = np.eye(4)
    kps["right"] = kps["right"][0][None] + np.arange(len(cams))[:, None, None] * np.array([0.01, 0, 0])
    kps["left"] = np.repeat(kps["left"][:1], len(cams), axis=0)
    _, d = delta_chunks(kps, cams, HumanActionConfig(chunk=4))
    sl = HUMAN_ACTION_48_DELTA.slice("right_hand.wrist_pos")
    np.testing.assert_allclose(d[0, :, sl], [[0.03, 0, 0]] * 4, atol=1e-12)       # 10 Hz stride = 3 frames
    assert np.abs(d[0, :, HUMAN_ACTION_48_DELTA.slice("left_hand")]).max() < 1e-12


def test_resampling_pads_by_repeating_last():
    starts, idx = sample_indices(10, HumanActionConfig(chunk=4))
    np.testing.assert_array_equal(starts, [0, 3, 6, 9])
    np.testing.assert_array_equal(idx[-1], [9, 9, 9, 9])
    _, idx = sample_indices(10, HumanActionConfig(rate=30, chunk=3))
    np.testing.assert_array_equal(idx[0], [0, 1, 2])
