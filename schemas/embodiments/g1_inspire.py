"""Unitree G1 (29 DoF) with Inspire hands instead of Dex3-1 (a common G1 option)."""
from schemas.embodiments.parts.g1 import G1_BODY_SPEC
from schemas.embodiments.parts.inspire import INSPIRE
from schemas.embodiments.spec import Embodiment

EMBODIMENT = Embodiment(
    name="g1_inspire",
    description="Unitree G1 (29 DoF) with Inspire hands",
    body=G1_BODY_SPEC,
    hand=INSPIRE,
)
