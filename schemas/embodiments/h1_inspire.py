"""Unitree H1 (H1_2 order) with Inspire hands, as in Humanoid Everyday's H1 episodes."""
from schemas.embodiments.parts.g1 import G1_ARM_IK
from schemas.embodiments.parts.h1 import H1_BODY_SPEC, INSPIRE_MOUNT_MIRRORED
from schemas.embodiments.parts.inspire import INSPIRE
from schemas.embodiments.spec import Embodiment

EMBODIMENT = Embodiment(
    name="h1_inspire",
    description="Unitree H1 with Inspire hands",
    body=H1_BODY_SPEC,
    hand=INSPIRE,
    arm_ik=G1_ARM_IK,
    hand_mount=INSPIRE_MOUNT_MIRRORED,
    notes=("the project has no H1 arm kinematics: teleop and retargeting solve arm slots with the G1 arm "
           "chain (a stand-in, fine for the hand pipeline and the recorder, not for driving a real H1 arm)",),
)
