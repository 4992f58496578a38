"""The embodiment registry and the tables every configuration must satisfy; `psi0 embodiments`; and
"adding a configuration = one module": a toy module dropped into the package is found by the registry
and drives the teleop mapper and the retargeting with no other edit."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from converters.retarget.hands import hand_model
from converters.retarget.kinematics import chain
from schemas import PSI0_ACTION, PSI0_STATE, embodiments
from schemas.actions import PSI0_HANDS
from schemas.embodiments import DEX3, G1_ARMS, G1_BODY, INSPIRE, INSPIRE_HAND, Embodiment
from schemas.embodiments.spec import transform

REPO = Path(__file__).resolve().parent.parent
ALL = embodiments.names()


def test_registry_names_spellings_and_errors():
    assert {"g1_dex3", "g1_inspire", "h1_inspire"} <= set(ALL) and list(ALL) == sorted(ALL)
    assert embodiments.DEFAULT == "g1_dex3" and embodiments.get() is embodiments.get("g1_dex3")
    assert embodiments.get("g1-dex3") is embodiments.get("g1_dex3")               # old recordings / CLI spelling
    assert embodiments.canonical("h1-inspire") == "h1_inspire"
    assert set(embodiments.spellings()) >= {"g1_dex3", "g1-dex3", "h1-inspire", "g1-inspire"}
    with pytest.raises(ValueError, match="unknown embodiment 'g2_dex3'; choose from g1_dex3"):
        embodiments.get("g2_dex3")
    assert embodiments.find("g1", 12).name == "g1_inspire" and embodiments.find("g1", 14).name == "g1_dex3"
    assert embodiments.find("g1", 13).name == "g1_dex3"                             # unknown width: stock hand
    assert embodiments.find("h1", 12).name == "h1_inspire" and embodiments.find("b2", 12) is None


@pytest.mark.parametrize("name", ALL)
def test_every_configuration_fits_the_psi0_layout(name):
    emb = embodiments.get(name)
    assert emb.name == name and isinstance(emb, Embodiment)
    slots = PSI0_ACTION.slices["left_hand"]
    assert len(emb.hand.slots) == slots[1] - slots[0] and emb.body.arm_dof == 7
    for side in ("left", "right"):
        hs = emb.hand.side(side)
        assert hs.chain.actuated == hs.joints.dims                       # the chain solves the table's joints
        lo, hi = hs.chain.limits()
        np.testing.assert_allclose(lo, hs.joints.low)
        np.testing.assert_allclose(hi, hs.joints.high)
        q = np.random.default_rng(0).uniform(lo, hi, (5, emb.hand.dof))
        np.testing.assert_array_equal(emb.hand.from_slots(emb.hand.to_slots(q)), q)
    for space in (emb.action_space(), emb.state_space()):
        low, high = space.bounds()
        assert (low <= high).all() and space.dims in (PSI0_ACTION.dims, PSI0_STATE.dims)
        for side in ("left", "right"):
            pads = [i for i, j in enumerate(emb.hand.slots) if j is None]
            block = space.slice(f"{side}_hand")
            assert (low[block][pads] == 0).all() and (high[block][pads] == 0).all()
            arm = space.slice(f"{side}_arm")
            part = slice(0, 7) if side == "left" else slice(7, 14)
            np.testing.assert_array_equal(low[arm], emb.body.arms.bounds()[0][part])
    # a stored two-hand vector lands in the hands block by the slot map
    stored = np.random.default_rng(1).uniform(0, 1, (3, emb.hand.stored_size))
    hands = emb.stored_hands_to_slots(stored)
    assert hands.shape == (3, PSI0_HANDS.size)
    d = emb.describe()
    assert (d["body_dof"], d["hand_dof"], d["action_dim"], d["state_dim"]) == (
        emb.body.joints.size, emb.hand.dof, PSI0_ACTION.size, PSI0_STATE.size)


def test_g1_dex3_is_the_psi0_layout():
    """PSI0_ACTION was laid out for G1 + Dex3-1: its limits are exactly that configuration's."""
    emb = embodiments.get("g1_dex3")
    for mine, ref in zip(emb.action_space().bounds(), PSI0_ACTION.bounds()):
        np.testing.assert_array_equal(mine, ref)
    assert emb.hand is DEX3 and emb.hand.slots == tuple(range(7)) and emb.body.arms == G1_ARMS
    stored = np.random.default_rng(2).uniform(-1, 1, (4, 14))
    np.testing.assert_array_equal(emb.stored_hands_to_slots(stored), stored)       # Dex3-1: as is


def test_inspire_closures_become_angles_thumb_to_little():
    emb = embodiments.get("h1_inspire")
    closures = np.array([[0.0] * 6 + [1.0] * 6, [1.0, 0.5, 0.25, 0.0, 2.0, -1.0] * 2])   # right 6, left 6
    hands = emb.stored_hands_to_slots(closures)
    lo, hi = INSPIRE_HAND.bounds()
    np.testing.assert_allclose(hands[0, 7:13], hi[::-1])                  # right fully closed (q = 0)
    np.testing.assert_allclose(hands[0, 0:6], lo[::-1])                   # left open (q = 1)
    q = np.clip(closures[1, :6], 0, 1)
    np.testing.assert_allclose(hands[1, 7:13], (lo + (1 - q) * (hi - lo))[::-1])   # clipped to [0, 1]
    assert (hands[:, [6, 13]] == 0).all()
    assert emb.hand is INSPIRE and emb.ik.title == "G1" and emb.arm_ik is not None   # declared stand-in
    assert emb.notes and "stand-in" in emb.notes[0]


@pytest.mark.parametrize("spec", [DEX3.left.chain, DEX3.right.chain, INSPIRE.right.chain,
                                  embodiments.get().ik.chains["left"], embodiments.get().ik.chains["right"]])
def test_torch_chain_is_built_from_the_table(spec):
    """FK of the built chain at q = 0 equals the product of the table's joint origins along each branch."""
    c = chain(spec)
    assert c.joint_names == list(spec.actuated) and chain(spec) is c
    frames = c.fk(torch.zeros(1, c.dof, dtype=torch.float64))[0].numpy()
    for i, j in enumerate(spec.joints):
        want = j.origin() if j.parent < 0 else frames[j.parent] @ j.origin()
        if j.mimic is not None and j.mimic[2] != 0.0:
            continue
        np.testing.assert_allclose(frames[i], want, atol=1e-12)
    np.testing.assert_array_equal(transform((0, 0, 0), (0, 0, 0)), np.eye(4))


def test_psi0_embodiments_cli():
    def run(*args):
        return subprocess.run([sys.executable, "-m", "psi0", "embodiments", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
    table = run()
    assert table.returncode == 0, table.stderr
    lines = table.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["name", "body", "arm", "hand"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(ALL)
    assert rows["g1_inspire"][1:6] == ["29", "7", "6", "7", "36"] and rows["h1_inspire"][8] == "G1*"
    js = json.loads(run("--json").stdout)
    assert [d["name"] for d in js] == list(ALL)
    one = json.loads(run("g1-inspire", "--json").stdout)
    assert one["hand_slot_joints"] == ["thumb_rotation", "thumb_bend", "index", "middle", "ring", "pinky", None]
    assert "hand block  thumb_rotation, thumb_bend" in run("g1_inspire").stdout
    bad = run("nope")
    assert bad.returncode == 2 and "unknown embodiment" in bad.stderr
    helped = run("--help")
    assert helped.returncode == 0 and "To add a configuration" in helped.stdout


TOY = '''"""A toy configuration for the registry test: G1 body, Dex3-1 hands, another name."""
from schemas.embodiments.parts.dex3 import DEX3
from schemas.embodiments.parts.g1 import G1_BODY_SPEC
from schemas.embodiments.spec import Embodiment

EMBODIMENT = Embodiment(name="toy_g1", description="toy", body=G1_BODY_SPEC, hand=DEX3, aliases=("toy",))
'''


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    (tmp_path / "toy_g1.py").write_text(TOY)
    monkeypatch.setattr(embodiments, "__path__", [*embodiments.__path__, str(tmp_path)])
    embodiments._registry.cache_clear()
    yield
    embodiments._registry.cache_clear()
    sys.modules.pop("schemas.embodiments.toy_g1", None)


def test_one_module_adds_a_configuration(toy_module):
    from teleop.calibration import calibrate
    from teleop.devices.sim import SimOperator
    from teleop.mapping import WholeBodyMapper

    assert "toy_g1" in embodiments.names() and embodiments.get("toy").name == "toy_g1"
    assert "toy-g1" in embodiments.spellings()
    op = SimOperator(seed=3)
    inputs = [op.poll(i / 50.0) for i in range(60)]
    mapper = WholeBodyMapper("toy-g1", calibrate(inputs[10:]))
    acts = np.array([mapper.step(x).action for x in inputs])
    assert mapper.robot == "toy_g1" and np.isfinite(acts).all()
    assert np.abs(acts[-1, PSI0_ACTION.slice("arms")]).max() > 0.0      # the arms were solved
    assert hand_model(embodiments.get("toy_g1").hand, "left").name == "dex3_left"
    assert embodiments.get("toy_g1").body.joints == G1_BODY


def test_teleop_robot_choices_come_from_the_registry(capsys):
    from teleop.cli import parser

    args = parser().parse_args(["record", "--task", "t", "--robot", "g1-inspire"])
    assert embodiments.canonical(args.robot) == "g1_inspire"
    assert parser().parse_args(["record", "--task", "t"]).robot == embodiments.DEFAULT
    with pytest.raises(SystemExit):
        parser().parse_args(["record", "--task", "t", "--robot", "g2_dex3"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse_args(["record", "--help"])
    helped = capsys.readouterr().out
    assert all(name in helped for name in ALL)


def test_human_hand_landmark_indices():
    """The retargeting's knuckle / middle-joint / tip indices into the EgoDex 25-joint hand, by name."""
    from schemas.embodiments import HUMAN_HAND_KNUCKLE, HUMAN_HAND_MID, HUMAN_HAND_TIP, human_hand_joints

    names = human_hand_joints("right")
    assert [names[i] for i in HUMAN_HAND_KNUCKLE.values()] == [
        "rightThumbIntermediateBase", "rightIndexFingerKnuckle", "rightMiddleFingerKnuckle", "rightRingFingerKnuckle",
        "rightLittleFingerKnuckle"]
    assert list(HUMAN_HAND_KNUCKLE.values()) == [2, 6, 11, 16, 21]
    assert list(HUMAN_HAND_MID.values()) == [3, 7, 12, 17, 22] and list(HUMAN_HAND_TIP.values()) == [4, 9, 14, 19, 24]
