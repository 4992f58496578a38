"""Unitree G1 (29 DoF) with Inspire hands instead of Dex3-1 (a common G1 option)."""
from schemas.embodiments.parts.g1 import G1_BODY_SPEC
from schemas.embodiments.parts.h1 import INSPIRE_MOUNT_MIRRORED
from schemas.embodiments.parts.inspire import INSPIRE
from schemas.embodiments.spec import Embodiment

EMBODIMENT = Embodiment(
    name="g1_inspire",
    description="Unitree G1 (29 DoF) with Inspire hands",
    body=G1_BODY_SPEC,
    hand=INSPIRE,
    # the G1 Inspire flange is in none of the project's sources: the H1_2 URDF's Inspire orientation,
    # at the G1 arm chain's `palm` point (where the Dex3-1 mounts)
    hand_mount={side: (G1_BODY_SPEC.arm_ik.chains[side].points["palm"][1], INSPIRE_MOUNT_MIRRORED[side][1])
                for side in ("left", "right")},
    notes=("Inspire mount on the G1 wrist: the H1_2 URDF's orientation at the G1 palm point (a stand-in)",),
)
