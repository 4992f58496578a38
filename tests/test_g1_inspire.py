"""G1 + Inspire hands (`schemas/embodiments/g1_inspire.py`) end to end: the Humanoid Everyday reader,
retargeting, the teleop mapper, shards and the training loader all take it from the registry, with no
other edit. The fixture is a G1 episode written by the HE sample writer whose `hand_state` is replaced
by 12-D Inspire closures (right 6 + left 6, 1 = open), as a G1 fitted with Inspire hands records it."""
from __future__ import annotations

import os

import numpy as np
import pytest

from converters import humanoid_everyday as he
from converters.retarget import RetargetConfig, retarget_episode, target_embodiment
from samples import humanoid_everyday as sample
from retarget_fixture import human_episode
from schemas import PSI0_ACTION, PSI0_STATE, EpisodeError, embodiments, validate_episode
from schemas.embodiments import G1_ARMS, G1_LEGS_WAIST, INSPIRE_HAND

os.environ.setdefault("HF_HUB_OFFLINE", "1")
EMB = embodiments.get("g1_inspire")
TASK = "pick_with_inspire"


def g1_inspire_episode(n: int = 30, resolution: tuple[int, int] = (48, 32)) -> sample.HeEpisode:
    g1 = sample.make_episode(np.random.default_rng(7), TASK, 0, "G1", n, False, resolution)
    inspire = sample.make_episode(np.random.default_rng(8), TASK, 0, "H1", n, False, resolution)
    for frame, other in zip(g1.frames, inspire.frames):
        frame["states"]["hand_state"] = other["states"]["hand_state"]
        del frame["states"]["hand_pressure_state"]                  # a Dex3-1 sensor
    g1.truth["hand_state"] = inspire.truth["hand_state"]
    return g1


def expected_hands(closures: np.ndarray) -> np.ndarray:
    """The Ψ₀ hands block written by hand from the Inspire convention: closures -> angles, thumb -> little, pad."""
    lo, hi = INSPIRE_HAND.bounds()
    left, right = lo + (1 - closures[:, 6:12]) * (hi - lo), lo + (1 - closures[:, 0:6]) * (hi - lo)
    pad = np.zeros((len(closures), 1))
    return np.concatenate([left[:, ::-1], pad, right[:, ::-1], pad], axis=1)


@pytest.fixture(scope="module")
def he_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("he_g1_inspire")
    ep = g1_inspire_episode()
    sample.store_task(root, TASK, [ep], "zip")
    return root, ep


def test_registry_entry():
    assert "g1_inspire" in embodiments.names() and embodiments.get("g1-inspire") is EMB
    assert EMB.body.joints.size == 29 and EMB.hand.dof == 6 and EMB.hand.stored_size == 12
    assert EMB.ik is not None and EMB.ik.title == "G1" and EMB.arm_ik is None      # its own arms, no stand-in
    low, high = EMB.action_space().bounds()
    for side in ("left", "right"):
        hand = PSI0_ACTION.slice(f"{side}_hand")
        np.testing.assert_array_equal(low[hand], np.r_[INSPIRE_HAND.bounds()[0][::-1], 0.0])
        np.testing.assert_array_equal(high[hand], np.r_[INSPIRE_HAND.bounds()[1][::-1], 0.0])
    np.testing.assert_array_equal(low[PSI0_ACTION.slice("arms")], G1_ARMS.bounds()[0])


def test_he_reader_reads_a_g1_with_inspire_hands(he_root):
    root, ep = he_root
    (ref,) = he.discover(str(root))
    got = he.read(ref)
    validate_episode(got)
    assert got.meta.embodiment == "g1_inspire" and got.meta.extra["robot_type"] == "G1"
    hands = expected_hands(ep.truth["hand_state"])
    np.testing.assert_allclose(got.column("action")[:, PSI0_ACTION.slice("hands")], hands, atol=1e-5)
    np.testing.assert_allclose(got.column("observation.state")[:, PSI0_STATE.slice("hands")], hands, atol=1e-5)
    np.testing.assert_allclose(got.column("action")[:, PSI0_ACTION.slice("arms")], ep.truth["sol_q"], atol=1e-5)
    # raw columns: G1 legs and arms keep the default names; the Inspire hand layout is recorded
    names = got.meta.extra["names"]
    assert set(names) == {"observation.hand_state_raw"}
    assert names["observation.hand_state_raw"][:7] == ("right.pinky", "right.ring", "right.middle", "right.index",
                                                       "right.thumb_bend", "right.thumb_rotation", "left.pinky")
    assert got.features["observation.leg_state"].names == G1_LEGS_WAIST.dims
    assert got.meta.extra["color_intrinsics"] == EMB.body.color_intrinsics
    assert "Inspire closures -> angles" in got.meta.derived["action.hands"]
    # a width no G1 hand has is still rejected by the stock hand's (Dex3-1) width check
    bad = g1_inspire_episode(n=4)
    for frame in bad.frames:
        frame["states"]["hand_state"] = frame["states"]["hand_state"][:11]
    sample.store_task(root.parent / "bad", TASK, [bad], "dir")
    with pytest.raises(EpisodeError, match=r"hand_state has shape \(11,\), expected one of \[14\]"):
        he.read(he.discover(str(root.parent / "bad"))[0])


def test_retargeting_to_g1_arms_and_inspire_hands():
    ep, truth = human_episode("g1_inspire", t=24, meta_embodiment="g1_inspire")
    assert target_embodiment(RetargetConfig(), ep) is EMB               # the episode's own embodiment
    out = retarget_episode(ep)
    act = out.column("action.robot")
    for side in ("left", "right"):
        q_arm, q_hand = truth[side]
        block = act[:, PSI0_ACTION.slice(f"{side}_hand")]
        assert np.abs(block[:, :6] - q_hand[:, ::-1]).mean() < 0.03      # thumb -> little
        assert np.all(block[:, 6] == 0.0)                                # pad
    assert np.percentile(out.column("retarget.residual")[:, [0, 2]], 95) < 1e-3
    assert "Inspire vector retargeting, G1 DLS IK" in out.meta.derived["action.robot"]


def test_teleop_mapper_drives_g1_inspire_within_limits():
    from teleop.calibration import calibrate
    from teleop.devices.sim import SimOperator
    from teleop.mapping import WholeBodyMapper, action_bounds

    rate = 50.0
    op = SimOperator("pick_place", seed=2)
    inputs = [op.poll(i / rate) for i in range(int(5.5 * rate))]        # calibrate, reach, grasp, lift
    cal = calibrate(inputs[10:int(op.calibration_duration() * rate)])
    mapper = WholeBodyMapper("g1_inspire", cal)
    assert mapper.robot == "g1_inspire"
    acts = np.array([mapper.step(x).action for x in inputs], np.float64)
    low, high = action_bounds("g1_inspire")
    assert np.isfinite(acts).all()
    assert (acts >= low - 1e-6).all() and (acts <= high + 1e-6).all()
    hands = acts[:, PSI0_ACTION.slice("hands")]
    assert np.all(hands[:, [6, 13]] == 0.0)                             # the pad slot of each hand block
    phases = np.array([op.phase_at(x.t) for x in inputs])
    fingers = [EMB.hand.slots.index(INSPIRE_HAND.index(j)) for j in ("index", "middle", "ring", "pinky")]
    assert fingers == [2, 3, 4, 5]
    closed, open_ = hands[phases == "lift"][:, fingers].mean(), hands[phases == "reach"][:, fingers].mean()
    assert closed > open_ + 0.3                                         # the fingers close on the object


def test_ingests_into_shards_and_the_training_loader_reads_it(he_root, tmp_path):
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig
    from training.data import DataConfig, make_loader

    root, ep = he_root
    cfg = JobConfig(source="humanoid_everyday", input=str(root), output=str(tmp_path / "out"), formats=("lerobot",),
                    episodes_per_shard=1, video_width=32, video_height=24)
    catalog = run_local(cfg)
    assert catalog.counts()["ingested"] == 1 and catalog.counts()["rejected"] == 0
    loader, _ = make_loader([tmp_path / "out"], DataConfig(horizon=4, normalization="none", image_size=(16, 16)),
                            batch_size=2)
    batch = next(iter(loader))
    assert batch["embodiment"] == ["g1_inspire", "g1_inspire"]
    hands = expected_hands(ep.truth["hand_state"])
    for b in range(2):
        frame = int(batch["frame_index"][b])
        got = batch["actions"][b, 0, PSI0_ACTION.slice("hands")].numpy()
        np.testing.assert_allclose(got, hands[frame], atol=1e-5)


def test_deploy_clamps_to_inspire_limits_not_dex3():
    from deploy.system0 import split_action

    a = np.zeros(PSI0_ACTION.size)
    a[PSI0_ACTION.slice("lower_body")][3] = 0.75
    a[PSI0_ACTION.slice("left_hand").start] = 1.2             # Inspire thumb rotation: within [-0.1, 1.3]
    a[PSI0_ACTION.slice("left_hand").start + 2] = 1.6         # Inspire index: within [0, 1.7]
    inspire = split_action(a, "g1_inspire")
    assert not inspire.clamped and inspire.upper_body_q[2] == pytest.approx(1.6)
    dex3 = split_action(a)                                    # the default robot's Dex3-1 thumb_2 / thumb_0 limits
    assert dex3.clamped and dex3.upper_body_q[0] == pytest.approx(1.04719755)
    a[PSI0_ACTION.slice("left_hand").start + 6] = 0.3         # the pad slot carries nothing on an Inspire robot
    assert split_action(a, "g1_inspire").upper_body_q[6] == 0.0
