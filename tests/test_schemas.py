import numpy as np
import pytest

from schemas import (HUMAN_ACTION_48, PSI0_ACTION, PSI0_STATE, Catalog, EpisodeError, EpisodeMeta, FeatureSpec,
                     Ingested, Rejected, RejectReason, build_frames, column_to_numpy)
from schemas.embodiments import EGODEX_JOINTS, MEDIAPIPE_FROM_HUMAN25, human_hand_joints
from schemas.episode import Episode
from schemas.validation import check_rigid, check_timestamps, validate_episode


def test_psi0_action_layout_matches_reference():
    assert PSI0_ACTION.size == 36
    assert PSI0_ACTION.slice("hands") == slice(0, 14)
    assert PSI0_ACTION.slice("arms") == slice(14, 28)
    assert PSI0_ACTION.names("lower_body") == tuple(f"lower_body.{n}" for n in (
        "torso_roll", "torso_pitch", "torso_yaw", "torso_height", "vx", "vy", "yaw_rate", "target_yaw"))
    assert PSI0_ACTION.dims[14] == "left_arm.left_shoulder_pitch"
    assert PSI0_STATE.size == 36 and PSI0_STATE.dims[28] == "torso.prev_torso_roll"
    assert HUMAN_ACTION_48.size == 48 and HUMAN_ACTION_48.slice("right_hand") == slice(24, 48)


def test_human_hand_topology_and_mediapipe_map():
    left = human_hand_joints("left")
    assert len(left) == 25 and left[0] == "leftHand"
    assert [left[i] for i in (4, 9, 14, 19, 24)] == [
        "leftThumbTip", "leftIndexFingerTip", "leftMiddleFingerTip", "leftRingFingerTip", "leftLittleFingerTip"]
    assert left[MEDIAPIPE_FROM_HUMAN25[5]] == "leftIndexFingerKnuckle"
    assert len(set(EGODEX_JOINTS)) == 68


def test_vector_columns_round_trip():
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    table = build_frames(np.arange(7) / 30, {"action": x})
    np.testing.assert_array_equal(column_to_numpy(table.column("action")), x)


def _episode(n=10, fps=30.0, action=None):
    action = np.zeros((n, 3), np.float32) if action is None else action
    meta = EpisodeMeta("test", "test/0", "human", fps, "do it", "task")
    return Episode(meta, build_frames(np.arange(n) / fps, {"action": action}),
                   {"action": FeatureSpec("action", "float32", (3,), ("a", "b", "c"))})


def test_validation_reasons():
    validate_episode(_episode())
    bad = np.zeros((10, 3), np.float32)
    bad[4, 1] = np.nan
    with pytest.raises(EpisodeError) as err:
        validate_episode(_episode(action=bad))
    assert err.value.reason is RejectReason.NON_FINITE
    with pytest.raises(EpisodeError) as err:
        validate_episode(_episode(n=1))
    assert err.value.reason is RejectReason.EMPTY_EPISODE
    with pytest.raises(EpisodeError) as err:
        check_timestamps(np.array([0, 0.1, 0.05]), 30)
    assert err.value.reason is RejectReason.NON_MONOTONIC_TIME
    with pytest.raises(EpisodeError) as err:
        check_timestamps(np.arange(10) / 10, 30)
    assert err.value.reason is RejectReason.FPS_MISMATCH
    t = np.tile(np.eye(4, dtype=np.float32), (3, 1, 1))
    check_rigid("ok", t)
    t[1, 0, 0] = 2.0
    with pytest.raises(EpisodeError) as err:
        check_rigid("scaled", t)
    assert err.value.reason is RejectReason.NOT_RIGID


def test_check_rigid_accepts_rotations_and_refuses_a_mirror_by_its_determinant():
    """A reflection is orthonormal (RᵀR = I), so only the determinant (-1) catches it; the first bad frame is named."""
    angles = np.linspace(0, 3, 6)
    t = np.tile(np.eye(4), (6, 1, 1))
    t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1] = np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)
    t[:, :3, 3] = np.arange(18).reshape(6, 3)
    check_rigid("turning", t.astype(np.float32))
    t[4, 2, 2] = -1.0                      # mirror z in frame 4 (and a later one)
    t[5, 2, 2] = -1.0
    with pytest.raises(EpisodeError) as err:
        check_rigid("mirrored", t)
    assert err.value.reason is RejectReason.NOT_RIGID and err.value.details["frame"] == 4
    assert err.value.details["count"] == 2


def test_catalog_is_canonical_and_counts():
    cat = Catalog()
    cat.record("b", Rejected("b", "read", RejectReason.MISSING_KEY, "no /transforms/camera"))
    cat.record("a", Ingested("egodex-00000", 0, 120, "pick"))
    data = cat.to_json()
    assert list(data["inputs"]) == ["a", "b"]
    assert data["counts"] == {"inputs": 2, "ingested": 1, "rejected": 1}
    assert Catalog.from_json(data).dumps() == cat.dumps()
