"""Inspire dexterous hand (6 actuated joints per hand): joint table, FK chain, retargeting model.

Sources: unitreerobotics/avp_teleoperate `assets/inspire_hand/inspire_hand_right.urdf` (6 actuated joints
+ mimic joints: finger intermediate = 1.0 x proximal, thumb intermediate = 1.6 x pitch, thumb distal =
2.4 x pitch); hardware order `[pinky, ring, middle, index, thumb_proximal_pitch (bend),
thumb_proximal_yaw (rotation)]` (xr_teleoperate `hand_retargeting.py`).

Conventions the data carries:
- The left hand is the mirror image of the right: one right-hand chain, left keypoints mirrored.
- Drivers and Humanoid Everyday store 0..1 closures (1 = open), right hand first (Unitree's Inspire
  DDS layout `Inspire_{Right,Left}_Hand_JointIndex`: right 0-5, left 6-11; the Ψ₀ post-training
  transform reads HE H1 hands the same way); angles = `lo + (1 - q) (hi - lo)` within the limits.
- In a Ψ₀ 7-slot hand block the joints go thumb -> little (reversed hardware order) plus one zero
  pad, as the reference post-training converter orders them.
"""
from __future__ import annotations

from schemas.embodiments.spec import ChainSpec, HandSide, HandSpec, JointSpec, joint_space

_Z = (0.0, 0.0, 1.0)
_URDF = "unitreerobotics/avp_teleoperate assets/inspire_hand/inspire_hand_right.urdf"

INSPIRE_HAND = joint_space("inspire_hand", [
    ("pinky", 0.0, 1.7), ("ring", 0.0, 1.7), ("middle", 0.0, 1.7), ("index", 0.0, 1.7),
    ("thumb_bend", 0.0, 0.5), ("thumb_rotation", -0.1, 1.3),
])
"""Inspire hardware order, as proximal joint angles (rad)."""


def right_chain() -> ChainSpec:
    """Inspire hand (right) in R_hand_base_link; actuated order = hardware order. The left = mirror image."""
    lim = dict(zip(INSPIRE_HAND.dims, zip(INSPIRE_HAND.low, INSPIRE_HAND.high)))
    finger_mid = (-0.0024229, 0.032041, -0.001)

    def finger(name: str, parent: int) -> JointSpec:
        return JointSpec(f"{name}_intermediate", parent, finger_mid, axis=_Z, lower=0.0, upper=1.7,
                         mimic=(name, 1.0, 0.0))

    joints = (
        JointSpec("pinky", -1, (0.00028533, -0.13571, 0.025488), (3.0369, 0, 0), _Z, *lim["pinky"]),
        finger("pinky", 0),
        JointSpec("ring", -1, (0.00028533, -0.13691, 0.0062872), (3.0892, 0, 0), _Z, *lim["ring"]),
        finger("ring", 2),
        JointSpec("middle", -1, (0.00028533, -0.1371, -0.01295), (-3.1416, 0, 0), _Z, *lim["middle"]),
        finger("middle", 4),
        JointSpec("index", -1, (0.00028533, -0.13653, -0.032268), (-3.1067, 0, 0), _Z, *lim["index"]),
        JointSpec("index_intermediate", 6, (-0.0026138, 0.032026, -0.001), axis=_Z, lower=0.0, upper=1.7,
                  mimic=("index", 1.0, 0.0)),
        # thumb: yaw (rotation) first in the tree, pitch (bend) on it, then two mimic joints
        JointSpec("thumb_rotation_joint", -1, (-0.01696, -0.0691, -0.02045), (1.5708, -1.5708, 0), (0.0, 0.0, -1.0),
                  *lim["thumb_rotation"], mimic=("thumb_rotation", 1.0, 0.0)),
        JointSpec("thumb_bend", 8, (-0.0088099, 0.010892, -0.00925), (1.5708, 0, 2.8587), _Z, *lim["thumb_bend"]),
        JointSpec("thumb_intermediate", 9, (0.04407, 0.034553, -0.0008), axis=_Z, lower=0.0, upper=0.8,
                  mimic=("thumb_bend", 1.6, 0.0)),
        JointSpec("thumb_distal", 10, (0.020248, 0.010156, -0.0012), axis=_Z, lower=0.0, upper=1.2,
                  mimic=("thumb_bend", 2.4, 0.0)),
        # `thumb_rotation` must be actuated (last, hardware order): a zero-origin virtual joint at the end
        # that the real thumb-yaw joint above mimics 1:1.
        JointSpec("thumb_rotation", -1, axis=_Z, lower=lim["thumb_rotation"][0], upper=lim["thumb_rotation"][1]),
    )
    points = {
        "wrist": (-1, (0.0, 0.0, 0.0)),
        "pinky_tip": (1, (-0.002, 0.032, -0.004)), "ring_tip": (3, (-0.002, 0.04, -0.004)),
        "middle_tip": (5, (-0.005, 0.045, -0.004)), "index_tip": (7, (-0.005, 0.04, -0.004)),
        "thumb_tip": (11, (0.015, 0.013, -0.004)),
        "pinky_base": (0, (0.0, 0.0, 0.0)), "ring_base": (2, (0.0, 0.0, 0.0)),
        "middle_base": (4, (0.0, 0.0, 0.0)), "index_base": (6, (0.0, 0.0, 0.0)),
        "pinky_mid": (1, (0.0, 0.0, 0.0)), "ring_mid": (3, (0.0, 0.0, 0.0)),
        "middle_mid": (5, (0.0, 0.0, 0.0)), "index_mid": (7, (0.0, 0.0, 0.0)),
        "thumb_mid": (10, (0.0, 0.0, 0.0)),
    }
    return ChainSpec("inspire_right", joints, points, source=_URDF)


_FINGERS = (("thumb", "thumb"), ("index", "index"), ("middle", "middle"), ("ring", "ring"), ("pinky", "little"))
_RIGHT = right_chain()

INSPIRE = HandSpec(
    name="inspire", title="Inspire",
    left=HandSide(INSPIRE_HAND, _RIGHT, "right", True, _FINGERS),
    right=HandSide(INSPIRE_HAND, _RIGHT, "right", False, _FINGERS),
    pinch=("index", "middle"),
    slots=(5, 4, 3, 2, 1, 0, None),      # thumb rotation, thumb bend, index, middle, ring, pinky, pad
    stored_sides=("right", "left"),
    stored_as_closure=True,
    dds=None,                            # the project's Unitree bridge drives Dex3-1 only
    conversion="Inspire closures -> angles, thumb->little, padded to 7",
    source=_URDF,
)
