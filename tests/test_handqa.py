import numpy as np
import pytest

from converters.handqa import (Detection, HandDetector, HandQAConfig, hand_qa_episode, model_path, open_hand_keypoints,
                               project, render_hands, sample_frames, score)
from schemas import Episode, EpisodeError, EpisodeMeta, FeatureSpec, RejectReason, VideoRef, build_frames
from schemas.embodiments import MEDIAPIPE_FROM_HUMAN25

K = np.array([[307.2, 0, 128], [0, 307.2, 128], [0, 0, 1.0]])
MP = list(MEDIAPIPE_FROM_HUMAN25)


def test_projection_pinhole_z_forward():
    uv = project(np.array([[0.0, 0.0, 1.0], [0.1, -0.2, 2.0], [0, 0, -1.0]]), K)
    np.testing.assert_allclose(uv[0], [128, 128])
    np.testing.assert_allclose(uv[1], [128 + 307.2 * 0.05, 128 - 307.2 * 0.1])
    assert np.isnan(uv[2]).all()


def _proj(n=4):
    return {"right": np.repeat(project(open_hand_keypoints("right"), K)[MP][None], n, 0),
            "left": np.repeat(project(open_hand_keypoints("left", (0.3, 0.06, 0.45)), K)[MP][None], n, 0)}


def test_scoring_with_injected_detections():
    proj = _proj()
    good = [[Detection("Left", proj["right"][f] + 2.0), Detection("Right", proj["left"][f] - 1.0)] for f in range(4)]
    r = score(proj, good, (256, 256))
    assert r.pairs == 4 and r.detection_rate == 1.0          # the left hand is out of view (x > width)
    assert abs(r.mean_px_error - np.hypot(2, 2)) < 1e-9 and r.label_agreement == 1.0
    shifted = [[Detection("Left", proj["right"][f] + 60.0)] for f in range(4)]
    assert score(proj, shifted, (256, 256)).mean_error_frac > HandQAConfig().max_mean_error_frac
    none = score(proj, [[] for _ in range(4)], (256, 256))
    assert none.detection_rate == 0.0 and none.mean_px_error == float("inf")


def test_missing_model_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PSI0_HAND_MODEL", str(tmp_path / "absent.task"))
    with pytest.raises(FileNotFoundError, match="tools/build_hand_model.py"):
        model_path()


def _video_episode(tmp_path, n=6, offset=(0.0, 0.0, 0.0)):
    import av
    path = tmp_path / "ep.mp4"
    kps = []
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=30)
        st.width = st.height = 256
        st.pix_fmt = "yuv420p"
        for i in range(n):
            kp = open_hand_keypoints("right", (0.01 * np.sin(i), 0.06, 0.45))
            img = render_hands([kp], K, (256, 256))
            kps.append(kp)
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    right = np.stack(kps) + np.asarray(offset)
    left = np.tile(open_hand_keypoints("left", (0.0, 0.0, -1.0)), (n, 1, 1))        # behind the camera: out of view
    frames = build_frames(np.arange(n) / 30.0, {"human.left_hand.keypoints": left.reshape(n, 75),
                                                 "human.right_hand.keypoints": right.reshape(n, 75)})
    feats = {k: FeatureSpec(k, "float32", (75,)) for k in ("human.left_hand.keypoints", "human.right_hand.keypoints")}
    video = VideoRef("main", "video", str(path), n, 30.0, 256, 256)
    return Episode(EpisodeMeta("egodex", "egodex/t/0", "human", 30.0, "t", "t"), frames, feats, {"main": video})


def test_mediapipe_detects_rendered_hand_and_episode_passes(tmp_path):
    ep = _video_episode(tmp_path)
    out = hand_qa_episode(ep, HandQAConfig(samples=4), intrinsics=K, native_size=(256, 256))
    q = out.meta.quality
    assert q["hand_qa.detection_rate"] >= 0.75, q
    assert q["hand_qa.mean_error_frac"] < 0.05, q
    print({k: round(v, 3) for k, v in q.items()})


def test_poses_that_disagree_with_video_are_rejected(tmp_path):
    ep = _video_episode(tmp_path, offset=(0.08, 0.0, 0.0))       # 8 cm off => ~55 px at 256 px
    with pytest.raises(EpisodeError) as err:
        hand_qa_episode(ep, HandQAConfig(samples=4), intrinsics=K, native_size=(256, 256))
    assert err.value.reason == RejectReason.HAND_QA_FAILED


def test_sample_frames_deterministic():
    np.testing.assert_array_equal(sample_frames(100, 4), [12, 37, 62, 87])
    assert len(sample_frames(3, 8)) == 3 and len(sample_frames(0, 8)) == 0
