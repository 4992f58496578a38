"""Tiny real output roots for dashboard tests.

`build_output_root`: a LeRobot v3 shard written by LeRobot's own writer (two cameras) plus a catalog.json
written with schemas.Catalog (one ingested source, two rejects).
`build_egodex_roots`: what the psi0 pipeline really writes for the EgoDex sample: a LeRobot root with
MediaPipe hand QA and FAST tokens, and a Zarr-only root (`--format zarr`) with retargeting and tokens."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from schemas.catalog import Catalog, Ingested, ShardRecord
from schemas.episode import Rejected, RejectReason

ACTION_NAMES = ["left_arm_j0", "left_arm_j1", "right_arm_j0", "right_arm_j1", "left_hand_g", "right_hand_g",
                "torso_yaw"]
STATE_NAMES = ["left_arm_q0", "left_arm_q1", "right_arm_q0", "right_arm_q1"]
FPS = 10
SIZE = 64


def build_output_root(out: Path, episodes: int = 2, frames: int = 20, vcodec: str = "h264") -> Path:
    """Write OUT/shards/demo-000 (LeRobot v3) and OUT/catalog.json; returns OUT."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out.mkdir(parents=True, exist_ok=True)
    shard_id = "demo-000"
    features = {
        "observation.images.head": {"dtype": "video", "shape": (SIZE, SIZE, 3),
                                    "names": ["height", "width", "channels"]},
        "observation.images.wrist": {"dtype": "video", "shape": (SIZE, SIZE, 3),
                                     "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (len(STATE_NAMES),), "names": STATE_NAMES},
        "action": {"dtype": "float32", "shape": (len(ACTION_NAMES),), "names": ACTION_NAMES},
    }
    try:
        ds = LeRobotDataset.create(repo_id=f"psi0/{shard_id}", fps=FPS, features=features,
                                   root=out / "shards" / shard_id, robot_type="demo", use_videos=True,
                                   vcodec=vcodec)
    except TypeError:  # older signature without vcodec
        ds = LeRobotDataset.create(repo_id=f"psi0/{shard_id}", fps=FPS, features=features,
                                   root=out / "shards" / shard_id, robot_type="demo", use_videos=True)
    rng = np.random.default_rng(0)
    catalog = Catalog()
    inputs = []
    for e in range(episodes):
        t = np.arange(frames) / FPS
        task = "pick the cube" if e % 2 == 0 else "wave hello"
        for i in range(frames):
            img = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
            x = int((i / max(frames - 1, 1)) * (SIZE - 12))
            img[20:32, x:x + 12] = (255, 80 + 40 * e, 40)
            img[:, :, 2] += np.uint8(30 * e)
            action = np.sin(t[i] * (np.arange(len(ACTION_NAMES)) + 1) + e).astype(np.float32)
            state = np.cos(t[i] * (np.arange(len(STATE_NAMES)) + 1) + e).astype(np.float32)
            ds.add_frame({"observation.images.head": img, "observation.images.wrist": 255 - img,
                          "observation.state": state, "action": action, "task": task})
        ds.save_episode()
        sid = f"demo/ep{e:03d}"
        inputs.append(sid)
        catalog.record(sid, Ingested(shard_id, e, frames, task))
    ds.finalize()
    catalog.shards.append(ShardRecord(shard_id, "lerobot", f"shards/{shard_id}", "demo", episodes,
                                      episodes * frames, tuple(inputs), "0" * 64))
    catalog.record("demo/bad001", Rejected("demo/bad001", "read", RejectReason.NON_FINITE,
                                           "NaN in action at frame 3", {"frame": 3}))
    catalog.record("demo/bad002", Rejected("demo/bad002", "validate", RejectReason.MISSING_VIDEO,
                                           "head.mp4 not found", {}))
    catalog.stats = {
        "action": {"mean": [0.0] * len(ACTION_NAMES), "std": [0.7] * len(ACTION_NAMES),
                   "min": [-1.0] * len(ACTION_NAMES), "max": [1.0] * len(ACTION_NAMES),
                   "count": [episodes * frames], "q01": [-0.98] * len(ACTION_NAMES),
                   "q10": [-0.9] * len(ACTION_NAMES), "q50": [0.0] * len(ACTION_NAMES),
                   "q90": [0.9] * len(ACTION_NAMES), "q99": [0.98] * len(ACTION_NAMES)},
    }
    (out / "catalog.json").write_text(catalog.dumps())
    return out


_BUILT: dict[str, tuple[Path, Path]] = {}


def build_egodex_roots(base: Path) -> tuple[Path, Path]:
    """(lerobot_root, zarr_root) from the EgoDex sample (3 episodes of 1 s at 96x64): the LeRobot root with
    MediaPipe hand QA + FAST tokens, the Zarr-only root with retargeting + FAST tokens. Built once per test
    process (the API and browser test modules share it; the roots are only read)."""
    if "roots" in _BUILT:
        return _BUILT["roots"]
    import torch

    from pipelines.runners import run
    from pipelines.stages import JobConfig
    from samples import egodex as sample

    torch.set_num_threads(1)   # retargeting's small torch ops: 8x slower when threads fight over 2 busy cores
    src = base / "egodex-src"
    sample.write_sample(src, 0, episodes_per_task=1, seconds=1.0)
    common = dict(source="egodex", input=str(src), video_width=96, video_height=64, video_codec="libx264",
                  tokenize=True, token_horizon=4)
    run(JobConfig(output=str(base / "egodex-lerobot"), formats=("lerobot",), hand_qa=True, **common), "local")
    run(JobConfig(output=str(base / "egodex-zarr"), formats=("zarr",), retarget=True, **common), "local")
    _BUILT["roots"] = (base / "egodex-lerobot", base / "egodex-zarr")
    return _BUILT["roots"]
