"""Unitree G1 (29 DoF) with Dex3-1 hands: the Ψ₀ reference robot; PSI0_ACTION is laid out for it."""
from schemas.embodiments.parts.dex3 import DEX3
from schemas.embodiments.parts.g1 import G1_BODY_SPEC
from schemas.embodiments.spec import Embodiment

EMBODIMENT = Embodiment(
    name="g1_dex3",
    description="Unitree G1 (29 DoF) with Dex3-1 hands",
    body=G1_BODY_SPEC,
    hand=DEX3,
)
