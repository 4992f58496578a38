"""Unitree Dex3-1 hand (7 joints per hand): joint table, FK chains, retargeting model, DDS driver.

Sources: unitreerobotics/avp_teleoperate / xr_teleoperate `assets/unitree_hand/unitree_dex3_{left,right}.urdf`
(palm -> zero/one/two thumb, three/four middle, five/six index; fingertip offsets from the file's
`thumb_tip_joint` / `middle_joint` / `index_joint` auxiliary links; left/right mirror signs) and the SDK's
hardware order (= Humanoid Everyday `hand_state` order: thumb 0..2, middle 0..1, index 0..1).

Chirality: Unitree's right Dex3 URDF is the left one rotated 180 deg about x, so its `index` finger sits
on the anatomical middle side; the retargeting maps human index -> URDF `middle` for that hand.
"""
from __future__ import annotations

from schemas.embodiments.spec import HandDDS, HandSide, HandSpec, ChainSpec, JointSpec, joint_space

_Z, _Y = (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)
_URDF = "unitreerobotics/avp_teleoperate assets/unitree_hand/unitree_dex3_{left,right}.urdf"


def _joints(side: str) -> list[tuple[str, float, float]]:
    sign = 1.0 if side == "left" else -1.0

    def rng(lo: float, hi: float) -> tuple[float, float]:
        a, b = sign * lo, sign * hi
        return (min(a, b), max(a, b))

    # URDF limits (left; the right file mirrors them). Unitree's Dex3-1 SDK page quotes narrower
    # ranges (thumb_2 0..100 deg, finger_0 -90..0 deg, finger_1 -100..0 deg); the URDF is what
    # the retargeting FK and IK use, so the table carries the URDF ranges.
    return [
        ("thumb_0", -1.04719755, 1.04719755),
        ("thumb_1", *rng(-0.72431163, 1.04719755)),
        ("thumb_2", *rng(0.0, 2.09439510)),
        ("middle_0", *rng(-1.83259571, 0.19198621)),
        ("middle_1", *rng(-2.09439510, 0.0)),
        ("index_0", *rng(-1.83259571, 0.19198621)),
        ("index_1", *rng(-2.09439510, 0.0)),
    ]


DEX3_LEFT = joint_space("dex3_left", _joints("left"))
DEX3_RIGHT = joint_space("dex3_right", _joints("right"))
"""Dex3-1 hardware order: thumb 0..2, middle 0..1, index 0..1 (= HE `hand_state` order)."""


def chain(side: str) -> ChainSpec:
    """Dex3-1 hand in its palm-link frame; actuated order = hardware order. Points: `{thumb,middle,index}_tip`,
    finger bases `{middle,index}_base`, `wrist` = palm origin, `{finger}_mid` = the second-phalanx joint."""
    s = 1.0 if side == "left" else -1.0
    lim = {name: (lo, hi) for name, lo, hi in _joints(side)}
    mid_z, idx_z = -s * 0.0285, s * 0.0285      # left: three (middle) at z=-0.0285, five (index) at +0.0285

    def joint(name: str, parent: int, xyz: tuple[float, float, float], axis: tuple[float, float, float]) -> JointSpec:
        return JointSpec(name, parent, xyz, axis=axis, lower=lim[name][0], upper=lim[name][1])

    joints = (
        joint("thumb_0", -1, (0.028, 0, 0), _Y),
        joint("thumb_1", 0, (0, -s * 0.0246, 0), _Z),
        joint("thumb_2", 1, (0.0055, -s * 0.0528, 0), _Z),
        joint("middle_0", -1, (0.1, -s * 0.0017, mid_z), _Z),
        joint("middle_1", 3, (0.0528, -s * 0.0055, 0), _Z),
        joint("index_0", -1, (0.1, -s * 0.0017, idx_z), _Z),
        joint("index_1", 5, (0.0528, -s * 0.0055, 0), _Z),
    )
    zero = (0.0, 0.0, 0.0)
    points = {
        "wrist": (-1, zero),
        "thumb_tip": (2, (0.003, -s * 0.06, 0.0)), "thumb_mid": (2, zero),
        "middle_tip": (4, (0.06, -s * 0.003, 0.0)), "middle_mid": (4, zero), "middle_base": (3, zero),
        "index_tip": (6, (0.06, -s * 0.003, 0.0)), "index_mid": (6, zero), "index_base": (5, zero),
    }
    return ChainSpec(f"dex3_{side}", joints, points, source=_URDF)


DEX3 = HandSpec(
    name="dex3", title="Dex3-1",
    left=HandSide(DEX3_LEFT, chain("left"), "left", False,
                  (("thumb", "thumb"), ("middle", "middle"), ("index", "index"))),
    right=HandSide(DEX3_RIGHT, chain("right"), "right", False,
                   (("thumb", "thumb"), ("middle", "index"), ("index", "middle"))),
    pinch=("middle", "index"),
    slots=(0, 1, 2, 3, 4, 5, 6),          # the Ψ₀ hand block IS the Dex3-1 hardware order
    stored_sides=("left", "right"),
    dds=HandDDS(cmd_topic="rt/dex3/{side}/cmd", state_topic="rt/dex3/{side}/state", motors=7, kp=1.5, kd=0.2),
    source=_URDF,
)
