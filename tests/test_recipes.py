"""`train --recipe`: the seed's recipe and its ablations as documented mappings (training/recipes.py)."""
from __future__ import annotations

import pytest

from training.recipes import RECIPES, apply, check_fraction, get


def test_every_ablation_of_the_seed_is_a_recipe():
    assert set(RECIPES) == {"psi0", "egodex-10pct", "he-only-pretrain", "no-posttrain", "no-rtc"}
    assert get("egodex-10pct").data_fractions == {"egodex": 0.1}
    assert get("no-posttrain").stages == (1, 3)
    with pytest.raises(ValueError, match="unknown recipe"):
        get("psi1")


def test_apply_maps_stage_switches_mixtures_and_rtc():
    w, expert = apply(get("psi0"), 1, None)
    assert w == {"egodex": 0.5, "humanoid_everyday": 0.5} and expert == {}
    w, _ = apply(get("he-only-pretrain"), 1, None)
    assert w == {"humanoid_everyday": 1.0}
    w, _ = apply(get("psi0"), 1, {"egodex": 0.9})
    assert w == {"egodex": 0.9}                                   # explicit --weights win
    _, overrides = apply(get("no-rtc"), 2, None)
    assert overrides == {"max_delay": 1}                          # d = 0 only: no clean prefix in training, naive at deploy
    with pytest.raises(ValueError, match="no stage 2"):
        apply(get("no-posttrain"), 2, None)


def test_data_fractions_must_be_realized_by_the_shards():
    assert check_fraction(get("psi0"), {"egodex": 100, "humanoid_everyday": 50}, None) == []
    assert "uses no egodex" in check_fraction(get("he-only-pretrain"), {"egodex": 5}, None)[0]
    assert "pass a view" in check_fraction(get("egodex-10pct"), {"egodex": 10}, None)[0]
    assert check_fraction(get("egodex-10pct"), {"egodex": 10}, {"egodex": 100}) == []
    assert "hold 50%" in check_fraction(get("egodex-10pct"), {"egodex": 50}, {"egodex": 100})[0]


def test_train_cli_applies_the_recipe(tmp_path):
    """`train --recipe no-rtc` writes max_delay 1 (d = 0 only) into the run's model config (tiny, 1 step)."""
    import json

    from pipelines.runners import run_local
    from pipelines.stages import JobConfig
    from samples import humanoid_everyday as he_sample
    from training.cli import main as train_main
    he_sample.write_sample(tmp_path / "in", resolution=(96, 64), seconds=1.2)
    cfg = JobConfig(source="humanoid_everyday", input=str(tmp_path / "in"), output=str(tmp_path / "o"),
                    formats=("lerobot",), episodes_per_shard=4, video_width=64, video_height=48, tokenize=False)
    assert run_local(cfg).counts()["rejected"] == 0
    rc = train_main(["--shards", str(tmp_path / "o"), "--stage", "2", "--config", "tiny", "--recipe", "no-rtc",
                     "--image-size", "32x32", "--batch-size", "2", "--steps", "1", "--out", str(tmp_path / "r"),
                     "--no-progress", "--no-export"])
    assert rc == 0
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["recipe"] == "no-rtc" and run["model"]["max_delay"] == 1
    assert train_main(["--shards", str(tmp_path / "o"), "--stage", "2", "--config", "tiny", "--recipe",
                       "no-posttrain", "--steps", "1", "--out", str(tmp_path / "r2")]) == 2
