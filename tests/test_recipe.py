"""`psi0 recipe --quick` in its CI size (`QuickConfig.ci()`): the same code path as the <= 15 min run -
simulator demos, ingest, stage 2, stage 3, eval of the trained, zero and expert policies on unseen seeds.

Measured (docs/eval.md): stage 2 alone at this size succeeded on 17 of 20 unseen seeds; the zero policy
never lifts the box. MARGIN asks for 2 of 6 over zero: at a true rate of 0.85 that fails with p ~ 0.6 %."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

MARGIN = 0.25
"""The trained policy must beat the zero policy's success rate by at least this much."""


@pytest.mark.timeout(1200)   # 130-170 s on a quick host, ~380 s on a 2.3x slower one; the suite's default is 300 s
def test_quick_recipe_trained_beats_zero(tmp_path):
    from psi0.recipe import QuickConfig, run_quick
    result = run_quick(QuickConfig.ci(), tmp_path / "quick")
    assert set(result) >= {"trained_success", "zero_success", "expert_success"}
    assert result["expert_success"] >= 0.75
    assert result["zero_success"] == 0.0
    assert result["trained_success"] >= result["zero_success"] + MARGIN, result
    assert json.loads((tmp_path / "quick" / "result.json").read_text())["trained_success"] == result["trained_success"]
    assert (tmp_path / "quick" / "s3" / "final" / "normalization.json").is_file()
