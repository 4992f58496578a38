"""Where `psi0 tokenizer fit` gets action chunks from: EgoDex roots (hdf5 read directly) or LeRobot shards.

Both yield (N, H, D) float chunks deterministically (sorted files, fixed chunking), so a fixed seed gives
the same fitted tokenizer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from converters.retarget.human_action import HumanActionConfig, absolute_chunks, delta_chunks
from schemas.embodiments import human_hand_joints


def egodex_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*.hdf5"))


def egodex_keypoints(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One EgoDex hdf5 -> ({side: (T, 25, 3) keypoints in the current camera frame}, (T, 4, 4) camera poses)."""
    import h5py
    with h5py.File(path, "r") as f:
        camera = np.asarray(f["transforms/camera"], dtype=np.float64)
        inv = np.linalg.inv(camera)
        kps = {}
        for side in ("left", "right"):
            world = np.stack([np.asarray(f[f"transforms/{name}"], dtype=np.float64)[:, :3, 3]
                              for name in human_hand_joints(side)], axis=1)          # (T, 25, 3)
            kps[side] = world @ np.swapaxes(inv[:, :3, :3], 1, 2) + inv[:, None, :3, 3]
    return kps, camera


def egodex_chunks(root: Path, horizon: int, kind: str = "delta", rate: float = 10.0) -> Iterator[np.ndarray]:
    cfg = HumanActionConfig(rate=rate, chunk=horizon)
    for path in egodex_files(root):
        kps, camera = egodex_keypoints(path)
        if len(camera) < 2:
            continue
        _, chunks = (delta_chunks if kind == "delta" else absolute_chunks)(kps, camera, cfg)
        yield chunks


def frame_chunks(values: np.ndarray, horizon: int) -> np.ndarray:
    """(T, D) -> (T, H, D): the chunk starting at every frame, end-padded by repeating the last frame."""
    t = len(values)
    idx = np.minimum(np.arange(t)[:, None] + np.arange(horizon)[None], t - 1)
    return values[idx]


def lerobot_chunks(shard: Path, horizon: int, column: str = "action") -> Iterator[np.ndarray]:
    """Chunks of `column` per episode from a LeRobot v3 shard's data/**/*.parquet."""
    import pyarrow.parquet as pq
    for path in sorted(Path(shard).glob("data/**/*.parquet")):
        table = pq.read_table(path, columns=[column, "episode_index", "frame_index"])
        values = np.asarray(table.column(column).to_pylist(), dtype=np.float64)
        episodes = np.asarray(table.column("episode_index"))
        order = np.lexsort((np.asarray(table.column("frame_index")), episodes))
        values, episodes = values[order], episodes[order]
        for ep in np.unique(episodes):
            yield frame_chunks(values[episodes == ep], horizon)


def collect_chunks(inputs: list[Path], horizon: int, kind: str, rate: float, column: str) -> np.ndarray:
    parts: list[np.ndarray] = []
    for item in inputs:
        item = Path(item)
        if (item / "data").is_dir() or (item / "meta" / "info.json").exists():
            parts.extend(lerobot_chunks(item, horizon, column))
        elif item.is_dir() and (any(item.rglob("data/**/*.parquet"))):
            for shard in sorted(p.parent for p in item.rglob("meta/info.json")):
                parts.extend(lerobot_chunks(shard, horizon, column))
        elif item.is_dir() or item.suffix == ".hdf5":
            parts.extend(egodex_chunks(item, horizon, kind, rate) if item.is_dir() else
                         egodex_chunks(item.parent, horizon, kind, rate))
        else:
            raise FileNotFoundError(f"not an EgoDex root or LeRobot shard: {item}")
    if not parts:
        raise ValueError("no action chunks found in the inputs")
    return np.concatenate(parts)
