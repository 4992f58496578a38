"""A LeRobot ACT policy trains on psi0 shards with LeRobot's own training loop (through LeRobotDataset)
and runs through `psi0 eval` (deploy/baselines.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim_shard(tmp_path_factory) -> Path:
    """Two recorded expert demos ingested as one LeRobot v3 shard (H.264, 64x48)."""
    from pipelines.jobcli import main as ingest
    from pipelines.sim_demos import demo
    base = tmp_path_factory.mktemp("lerobot_base")
    for seed in (0, 1):
        demo("bimanual_lift", seed, str(base / "demos"), camera_size=(64, 48))
    assert ingest(["teleop", "--input", str(base / "demos"), "--output", str(base / "out"), "--runner", "local",
                   "--workers", "1", "--format", "lerobot", "--no-tokenize", "--codec", "libx264",
                   "--video-size", "64x48"]) == 0
    return base / "out" / "shards" / "teleop-00000"


def test_act_trains_on_our_shards_and_runs_through_psi0_eval(sim_shard, tmp_path, one_torch_thread):
    from deploy.baselines import SCHEMA_FILE, train_lerobot
    from deploy.eval import EvalConfig, evaluate
    model = train_lerobot("act", sim_shard, tmp_path / "act", steps=3, batch_size=4)
    assert (model / "model.safetensors").is_file() and (model / SCHEMA_FILE).is_file()
    schema = json.loads((model / SCHEMA_FILE).read_text())
    assert schema["state_key"] == "observation.state" and schema["max_delay"] == 1
    summary = evaluate(EvalConfig(tasks=["bimanual_lift"], episodes=1, policy="lerobot", lerobot=str(model),
                                  videos=0, out=str(tmp_path / "ev"), max_seconds=1.0))
    rec = json.loads((tmp_path / "ev" / "episodes.jsonl").read_text().splitlines()[0])
    assert summary["episodes"] == 1 and rec["policy"].startswith("lerobot:")
    assert rec["rtc"] is False and rec["chunks"] >= 2 and rec["steps"] == 50
