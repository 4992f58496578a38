"""A shard format added from outside: a toy `.npz` format, defined and registered in this file only, is
written by the shard writer, read by the training loader and shown by the dashboard, with no edit
anywhere else (the registry in `shards.formats` is the one place formats are known)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from schemas.catalog import ShardRecord
from schemas.episode import (Episode, EpisodeMeta, FeatureSpec, Rejected, RejectReason, VideoRef, build_frames,
                             column_to_numpy)
from shards import formats
from shards.formats import BaseReader, Camera, EpisodeEntry, EpisodeInfo, ShardContents, ShardFormat, ShardInfo
from shards.location import Location

NAME = "npz"
CAM = "observation.images.cam"
W, H, FPS = 32, 24, 10.0
ACTION_NAMES = [f"{side}_arm_j{k}" for side in ("left", "right") for k in range(3)]
STATE_NAMES = ["torso_yaw", "torso_pitch"]


# ------------------------------------------------------------------------------------------ the toy format
class _Frames:
    def __init__(self, sink: "NpzSink", key: str):
        self.frames: list[np.ndarray] = []
        sink.pending[key] = self
        self.sink, self.key = sink, key

    def add(self, frame: Any) -> None:
        self.frames.append(frame.to_ndarray(format="rgb24"))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.sink.pending.pop(self.key, None)


class NpzSink:
    """Everything in one `frames.npz` (columns and camera frames) plus `episodes.json`."""

    def __init__(self, root: Path, config: Any):
        self.root = root
        self.pending: dict[str, _Frames] = {}
        self.images: dict[str, list[np.ndarray]] = {}

    def camera(self, key: str, episode: int, fps: float) -> _Frames:
        return _Frames(self, key)

    def add_episode(self, entry: EpisodeEntry, table: pa.Table) -> None:
        for key, got in self.pending.items():
            self.images.setdefault(key, []).extend(got.frames)
        self.pending = {}

    def finish(self, contents: ShardContents) -> None:
        table = pa.concat_tables(contents.tables)
        arrays = {f"col/{k}": column_to_numpy(table.column(k)) for k in table.column_names}
        arrays.update({f"img/{k}": np.stack(v) for k, v in self.images.items()})
        np.savez(self.root / "frames.npz", **arrays)
        (self.root / "episodes.json").write_text(json.dumps({
            "fps": contents.fps, "tasks": contents.tasks,
            "features": {k: s.to_lerobot() for k, s in contents.features.items()},
            "episodes": [{"source_id": e.source_id, "start": e.start, "length": e.length, "task": e.meta.task,
                          "embodiment": e.meta.embodiment, "meta": e.meta.to_json()} for e in contents.episodes]}))


class NpzReader(BaseReader):
    format = NAME

    def __init__(self, location: Location, videos: Any = None):
        super().__init__(location, videos)
        self.header = location.join("episodes.json").read_json()
        with np.load(location.join("frames.npz").uri, allow_pickle=False) as data:
            self.arrays = {k: data[k] for k in data.files}

    def info(self) -> ShardInfo:
        images = {k[4:]: v for k, v in self.arrays.items() if k.startswith("img/")}
        return ShardInfo(fps=self.header["fps"], frames=sum(e["length"] for e in self.header["episodes"]),
                         episodes=len(self.header["episodes"]), features=self.header["features"],
                         cameras=tuple(Camera(k, v.shape[2], v.shape[1]) for k, v in sorted(images.items())))

    def tasks(self) -> list[str]:
        return list(self.header["tasks"])

    def episodes(self) -> list[EpisodeInfo]:
        return [EpisodeInfo(i, e["start"], e["length"], e["task"], e["source_id"], e["embodiment"], e["meta"],
                            {"episode_index": i, "length": e["length"]})
                for i, e in enumerate(self.header["episodes"])]

    def columns(self, keys: Sequence[str] | None = None, episode: int | None = None) -> dict[str, np.ndarray]:
        names = [k[4:] for k in self.arrays if k.startswith("col/")]
        wanted = names if keys is None else [k for k in keys if k in names]
        span = slice(None) if episode is None else slice(self.episode(episode).start,
                                                         self.episode(episode).start + self.episode(episode).length)
        return {k: self.arrays[f"col/{k}"][span] for k in wanted}

    def frames(self, camera: str, episode: int) -> np.ndarray:
        e = self.episode(episode)
        return self.arrays[f"img/{camera}"][e.start:e.start + e.length]


TOY = ShardFormat(NAME, ".npz", NpzSink, NpzReader,
                  recognizes=lambda loc: loc.join("episodes.json").is_file() and loc.join("frames.npz").is_file())


# ------------------------------------------------------------------------------------------ fixtures
def _episode(folder: Path, index: int, length: int) -> Episode:
    """A hand-made episode: smooth actions/state and a camera of PNG frames (a moving square)."""
    folder.mkdir(parents=True)
    names = []
    for f in range(length):
        img = np.zeros((H, W, 3), np.uint8)
        img[:, :] = (40 * index, 20, 200)
        x = (f * 2) % (W - 8)
        img[8:16, x:x + 8] = (255, 255, 0)
        names.append(f"{f:04d}.png")
        Image.fromarray(img).save(folder / names[-1])
    t = np.arange(length) / FPS
    action = np.sin(t[:, None] * (np.arange(len(ACTION_NAMES)) + 1) + index).astype(np.float32)
    state = np.cos(t[:, None] * (np.arange(len(STATE_NAMES)) + 1) + index).astype(np.float32)
    meta = EpisodeMeta("toy", f"toy/ep{index}", "toy_robot", FPS, f"task {index % 2}", f"task_{index % 2}",
                       quality={"smoothness": 0.5 + index})
    features = {"action": FeatureSpec("action", "float32", (len(ACTION_NAMES),), tuple(ACTION_NAMES)),
                "observation.state": FeatureSpec("observation.state", "float32", (len(STATE_NAMES),),
                                                 tuple(STATE_NAMES)),
                CAM: FeatureSpec(CAM, "video", (H, W, 3))}
    video = VideoRef("cam", "images", str(folder), length, FPS, W, H, frames=tuple(names))
    return Episode(meta, build_frames(t, {"action": action, "observation.state": state}), features, {CAM: video})


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> tuple[Path, dict[str, Episode]]:
    from shards.catalog import finalize
    from shards.video import VideoConfig
    from shards.writer import ShardConfig, write_shard

    formats.register(TOY)
    base = tmp_path_factory.mktemp("toy")
    episodes = {f"toy/ep{i}": _episode(base / "src" / f"ep{i}", i, 12 + 3 * i) for i in range(4)}
    out = base / "out"
    cfg = ShardConfig(formats=(NAME,), video=VideoConfig(width=W, height=H, codec="libx264"))
    items = list(episodes.values())
    bad = Rejected("toy/bad", "read", RejectReason.NON_FINITE, "NaN in action")
    write_shard([items[0], bad, items[1]], out, "toy-00000", cfg)
    write_shard(items[2:], out, "toy-00001", cfg)
    finalize(out, expected_inputs=[*episodes, "toy/bad"])
    yield out, episodes
    formats.unregister(NAME)


# ------------------------------------------------------------------------------------------ tests
def test_writer_writes_the_registered_format(toy_root):
    out, _ = toy_root
    assert NAME in formats.names()
    for shard in ("toy-00000", "toy-00001"):
        folder = out / "shards" / f"{shard}.npz"
        assert sorted(p.name for p in folder.iterdir()) == ["episodes.json", "frames.npz", "shard.json"]
        record = ShardRecord(**{**json.loads((folder / "shard.json").read_text())["record"], "inputs": ()})
        assert record.format == NAME and record.path == f"shards/{shard}.npz"
    catalog = json.loads((out / "catalog.json").read_text())
    assert catalog["counts"] == {"inputs": 5, "ingested": 4, "rejected": 1}
    assert {s["format"] for s in catalog["shards"]} == {NAME}


def test_training_loader_reads_it(toy_root):
    from training.data import DataConfig, make_loader

    out, episodes = toy_root
    horizon = 4
    cfg = DataConfig(horizon=horizon, cameras=(CAM,), image_size=(H, W), normalization="none", format=NAME)
    loader, sampler = make_loader([out], cfg, batch_size=5, seed=1)
    dataset = loader.dataset
    assert len(dataset) == sum(e.length for e in episodes.values())
    assert [set(s.paths) for s in dataset.shards] == [{NAME}, {NAME}]
    batches = list(loader)
    assert sum(len(b["frame_index"]) for b in batches) == len(dataset) == sampler.position
    assert batches[0]["images"].shape == (5, 1, 3, H, W) and batches[0]["actions"].shape == (5, horizon, cfg.pad_dim)
    fates = json.loads((out / "catalog.json").read_text())["inputs"]
    by_place = {(f["shard"], f["episode_index"]): sid for sid, f in fates.items() if f["status"] == "ingested"}
    readers = {s.shard_id: NpzReader(Location.of(s.paths[NAME])) for s in dataset.shards}
    for i in range(len(dataset)):
        sample = dataset[i]
        shard = dataset.shards[dataset.locate(i)[0]].shard_id
        ep, frame = sample["episode_index"], sample["frame_index"]
        truth = episodes[by_place[(shard, ep)]]
        steps = np.minimum(np.arange(frame, frame + horizon), truth.length - 1)
        np.testing.assert_array_equal(sample["actions"][:, :len(ACTION_NAMES)].numpy(), truth.column("action")[steps])
        np.testing.assert_array_equal(sample["state"][:len(STATE_NAMES)].numpy(),
                                      truth.column("observation.state")[frame])
        np.testing.assert_array_equal(sample["action_pad"].numpy(), np.arange(frame, frame + horizon) >= truth.length)
        assert sample["task"] == truth.meta.task and sample["embodiment"] == "toy_robot"
        stored = readers[shard].frame(CAM, ep, frame)             # pixels: the toy shard's own frames
        assert sample["image_mask"].all() and np.array_equal(sample["images"][0].numpy(), stored.transpose(2, 0, 1))
        assert abs(int(stored[12, 4 + (frame * 2) % (W - 8), 0]) - 255) < 40      # the square is where it was drawn


def test_dashboard_reads_an_episode_from_it(toy_root):
    from fastapi.testclient import TestClient

    from dashboard.app import create_app
    from dashboard.data import Store

    out, episodes = toy_root
    store = Store([out])
    row = next(r for r in store.all_rows() if r.source_id == "toy/ep1")
    page = store.episode(row)
    assert page["format"] == NAME and page["length"] == episodes["toy/ep1"].length and page["fps"] == FPS
    truth = episodes["toy/ep1"].column("action")
    assert page["groups"]["action"]["right_arm"]["right_arm_j2"] == pytest.approx(truth[:, 5].tolist())
    assert page["quality"] == {"smoothness": 1.5} and page["episode_meta"]["source_id"] == "toy/ep1"
    client = TestClient(create_app([out]), base_url="http://127.0.0.1")
    e = client.get("/api/episode", params={"id": row.id}).json()
    video = e["videos"][0]
    assert (video["key"], video["width"], video["height"]) == (CAM, W, H)
    mp4 = client.get(video["url"])
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4" and mp4.content[4:8] == b"ftyp"
    overview = client.get("/api/overview").json()
    assert overview["episodes"] == 4 and overview["rejected"] == 1 and all(s["error"] is None for s in overview["shards"])
    assert overview["quality_keys"] == ["smoothness"]
