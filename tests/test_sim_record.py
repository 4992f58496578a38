"""Simulated demos as teleop recordings: `teleop record --device mujoco` and `pipelines/sim_demos.py` write
sessions that `pipelines/teleop_ingest.py` turns into shards LeRobotDataset loads; the executed
lower-body command is recorded next to the commanded one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sim  # noqa: F401  - headless EGL before mujoco

pytest.importorskip("mujoco")

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")


def test_teleop_record_device_mujoco(tmp_path):
    from schemas.recording import episode_dirs, episode_info, load_session, read_stream

    r = subprocess.run([sys.executable, "-m", "psi0", "teleop", "record", "--device", "mujoco", "--task", "pick_place_left",
                        "--episodes", "1", "--duration", "1.0", "--out", str(tmp_path), "--json"],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    session = Path(summary["session"])
    meta = load_session(session)
    assert meta["device"]["kind"] == "mujoco" and meta["device"]["grasp_assist"] is True
    (ep,) = episode_dirs(session)
    assert episode_info(ep)["outcome"] == "failure"             # 1 s is too short to place anything
    states = read_stream(ep / "robot_state")
    commands = read_stream(ep / "commands")
    assert states.num_rows == commands.num_rows == 50
    extra = json.loads(states.column("extra")[-1].as_py())
    assert {"executed.vx", "executed.torso_height", "object.object.z", "success"} <= set(extra)
    assert read_stream(ep / "camera_egocentric").num_rows == 30


def _demos(out: Path, runner: str, episodes: int, seed: int = 1) -> dict:
    env = {k: v for k, v in ENV.items() if k != "RAY_ADDRESS"}        # a fresh local Ray, never a shared one
    r = subprocess.run([sys.executable, "pipelines/sim_demos.py", "--tasks", "pick_place_left", "--episodes", str(episodes),
                        "--seed", str(seed), "--out", str(out), "--runner", runner, "--workers", "2"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_sim_demos_ray_matches_local_and_ingests_to_lerobot(tmp_path):
    """`--runner ray` (2 episodes on a local Ray) writes the same recordings as `--runner local`, and
    `pipelines/teleop_ingest.py` turns them into shards LeRobotDataset loads."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from converters import teleop as conv
    from schemas.actions import PSI0_ACTION
    from schemas.recording import episode_dirs, read_stream

    demos, local = tmp_path / "demos", tmp_path / "local"
    result = _demos(demos, "ray", 2)
    assert result["runner"] == "ray" and result["episodes"] == 2 and result["success_rate"] == 1.0, result
    assert _demos(local, "local", 1)["success_rate"] == 1.0        # seed 1 again, in this process's way
    (ray_ep,), (local_ep,) = (episode_dirs(root / "pick_place_left" / "seed_00001") for root in (demos, local))
    for stream in ("robot_state", "commands", "camera_egocentric"):
        assert read_stream(ray_ep / stream).equals(read_stream(local_ep / stream)), stream

    out = tmp_path / "shards"
    r = subprocess.run([sys.executable, "pipelines/teleop_ingest.py", "--input", str(demos), "--output", str(out),
                        "--no-tokenize", "--video-size", "160x120", "--codec", "libx264", "--format", "lerobot"],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    fates = json.loads((out / "catalog.json").read_text())["inputs"]
    assert len(fates) == 2 and all(v["status"] == "ingested" for v in fates.values()), fates
    refs = {x.source_id: x for x in conv.discover(str(demos))}
    for source_id, fate in fates.items():
        episode = conv.read(refs[source_id])
        ds = LeRobotDataset("t/sim", root=out / "shards" / fate["shard"], video_backend="pyav")
        assert ds.fps == 30 and int(ds.meta.episodes["length"][fate["episode_index"]]) == episode.length
        item = ds[int(ds.meta.episodes["dataset_from_index"][fate["episode_index"]]) + episode.length // 2]
        assert item["action"].shape == (PSI0_ACTION.size,) and item["observation.images.egocentric"].shape == (3, 120, 160)
        np.testing.assert_allclose(item["action"].numpy(), episode.column("action")[episode.length // 2], atol=1e-6)
        assert episode.meta.extra["outcome"] == "success"
