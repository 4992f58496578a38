"""The shard's files are built while its last episode's encoders drain (`shards.writer._Closing`), and a
last episode whose files then fail to close is still that input's reject: the shard left behind is the
one the other episodes alone would have made, byte for byte."""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from converters import egodex
from samples import egodex as egodex_sample
from schemas.names import SHARD_FILE
from shards.formats.lerobot_v3 import LeRobotSink
from shards.video import EpisodeEncoder
from shards.writer import ShardConfig, write_shard

SIZE = (64, 48)
CONFIG = ShardConfig(formats=("lerobot", "zarr"))


def _episodes(root: Path, tasks: tuple[str, ...]) -> list:
    """Real EgoDex episodes (HDF5 + MP4), one per task name, read back as the job would."""
    for i, task in enumerate(tasks):
        ep = egodex_sample.make_episode(np.random.default_rng([7, i]), task, i, 20 + 3 * i, SIZE)
        folder = root / "part1" / task
        egodex_sample.write_hdf5(folder / f"{i}.hdf5", ep)
        egodex_sample.write_mp4(folder / f"{i}.mp4", ep)
    refs = sorted(egodex.discover(str(root)), key=lambda r: r.get("task"))
    return [egodex.read(ref) for ref in refs]


def _close_failing_on(call: int, monkeypatch) -> list[str]:
    """EpisodeEncoder.close raises a disk-full error on its `call`-th call (1-based); returns the closing threads."""
    real = EpisodeEncoder.close
    threads: list[str] = []

    def close(self: EpisodeEncoder) -> None:
        threads.append(threading.current_thread().name)
        if len(threads) == call:
            raise OSError(28, "No space left on device")
        real(self)

    monkeypatch.setattr(EpisodeEncoder, "close", close)
    return threads


def _files(shard: Path) -> dict[str, str]:
    """sha256 of every file of a committed shard but shard.json (it lists the fates, which differ)."""
    return {p.relative_to(shard).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(shard.rglob("*")) if p.is_file() and p.name != SHARD_FILE}


def test_the_shards_files_are_built_while_its_last_episode_closes(tmp_path, monkeypatch):
    """The last episode's encoder may not finish closing until LeRobot's `finish` has started: a writer that
    closed it first would wait here 10 s and reject the episode."""
    eps = _episodes(tmp_path / "in", ("add_remove_lid", "basic_pick_place", "stack_unstack_cups"))
    finishing = threading.Event()
    real_finish, real_close = LeRobotSink.finish, EpisodeEncoder.close
    threads: list[str] = []

    def finish(self, contents) -> None:
        finishing.set()
        real_finish(self, contents)

    def close(self: EpisodeEncoder) -> None:
        threads.append(threading.current_thread().name)
        if len(threads) == len(eps) and not finishing.wait(10):
            raise TimeoutError("the shard's files were not being built while the last episode closed")
        real_close(self)

    monkeypatch.setattr(LeRobotSink, "finish", finish)
    monkeypatch.setattr(EpisodeEncoder, "close", close)
    result = write_shard(eps, tmp_path / "out", "x-00000", CONFIG)
    assert [f["status"] for f in result.fates.values()] == ["ingested"] * 3
    assert threads[-1] == "shard-last-close" and threads[0] == threading.current_thread().name
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("t/x", root=tmp_path / "out" / "shards" / "x-00000", video_backend="pyav")
    assert ds.meta.total_episodes == 3 and len(ds) == sum(ep.length for ep in eps)
    assert ds[len(ds) - 1]["observation.images.egocentric"].shape == (3, 224, 224)   # the last MP4 decodes


def test_a_last_episode_that_fails_to_close_is_rejected_and_the_shard_is_the_others(tmp_path, monkeypatch):
    """Disk full while the last episode's MP4 closes (after the shard's files were built with it): its input
    is a worker_error reject naming the error, and every file of both formats equals the shard written from
    the other two episodes alone (its task, which no other episode has, is gone from the task table too)."""
    eps = _episodes(tmp_path / "in", ("add_remove_lid", "basic_pick_place", "stack_unstack_cups"))
    reference = write_shard(eps[:2], tmp_path / "ref", "x-00000", CONFIG)
    threads = _close_failing_on(3, monkeypatch)
    result = write_shard(eps, tmp_path / "out", "x-00000", CONFIG)
    assert threads[-1] == "shard-last-close"
    last = result.fates[eps[2].meta.source_id]
    assert last["status"] == "rejected" and last["reason"] == "worker_error" and last["stage"] == "write"
    assert "No space left on device" in last["message"] and eps[2].videos["observation.images.egocentric"].uri in last["message"]
    assert {k: v for k, v in result.fates.items() if k != eps[2].meta.source_id} == reference.fates
    assert {k: s.to_json() for k, s in result.stats.items()} == {k: s.to_json() for k, s in reference.stats.items()}
    for name in ("x-00000", "x-00000.zarr"):
        got, want = tmp_path / "out" / "shards" / name, tmp_path / "ref" / "shards" / name
        assert _files(got) == _files(want), name
        assert json.loads((got / SHARD_FILE).read_text())["record"]["episodes"] == 2
    import zarr

    store = zarr.open_group(str(tmp_path / "out" / "shards" / "x-00000.zarr"), mode="r")
    assert list(store["meta/episode_ends"][:]) == [eps[0].length, eps[0].length + eps[1].length]
    assert store.attrs["tasks"] == [eps[0].meta.task, eps[1].meta.task] != [*store.attrs["tasks"], eps[2].meta.task]


def test_an_earlier_episode_that_fails_to_close_is_rejected_in_the_writers_thread(tmp_path, monkeypatch):
    eps = _episodes(tmp_path / "in", ("add_remove_lid", "basic_pick_place", "stack_unstack_cups"))
    threads = _close_failing_on(2, monkeypatch)
    result = write_shard(eps, tmp_path / "out", "x-00000", CONFIG)
    assert threads[1] == threading.current_thread().name            # not the last: closed before the next one
    fates = [result.fates[ep.meta.source_id] for ep in eps]
    assert [f["status"] for f in fates] == ["ingested", "rejected", "ingested"]
    assert fates[1]["reason"] == "worker_error" and fates[2]["episode_index"] == 1


def test_a_lone_episode_that_fails_to_close_leaves_an_empty_shard(tmp_path, monkeypatch):
    """A one-episode shard (a Ray job's usual shard) builds its files beside the close too; when the close
    fails there is no episode left, and every file the formats wrote for it is gone again."""
    (ep,) = _episodes(tmp_path / "in", ("basic_pick_place",))
    threads = _close_failing_on(1, monkeypatch)
    result = write_shard([ep], tmp_path / "out", "x-00000", CONFIG)
    assert threads == ["shard-last-close"]
    assert result.fates[ep.meta.source_id]["reason"] == "worker_error"
    for name in ("x-00000", "x-00000.zarr"):
        shard = tmp_path / "out" / "shards" / name
        assert [p.relative_to(shard).as_posix() for p in shard.rglob("*")] == [SHARD_FILE]


def test_an_input_stream_that_fails_after_an_episode_leaves_no_encoder_open(tmp_path, monkeypatch):
    """The writer asks for the next input before closing the current episode's files: if asking raises,
    those files are aborted (the MP4 removed) before the error goes on."""
    eps = _episodes(tmp_path / "in", ("add_remove_lid", "basic_pick_place"))
    aborted: list[Path] = []
    real_abort = EpisodeEncoder.abort

    def abort(self: EpisodeEncoder) -> None:
        aborted.append(self.path)
        real_abort(self)

    monkeypatch.setattr(EpisodeEncoder, "abort", abort)

    def stream():
        yield eps[0]
        yield eps[1]
        raise RuntimeError("the loader thread failed")

    with pytest.raises(RuntimeError, match="loader thread failed"):
        write_shard(stream(), tmp_path / "out", "x-00000", CONFIG)
    assert len(aborted) == 1 and aborted[0].name == "file-001.mp4" and not aborted[0].exists()


def test_one_encoder_at_a_time_whatever_the_camera_count(tmp_path, monkeypatch):
    """Three cameras per episode: each camera's MP4 is closed once its frames are in, so at most one SVT-AV1
    encoder (its threads and buffers) is open at a time, the last one included; all nine files are there."""
    import dataclasses

    eps = _episodes(tmp_path / "in", ("add_remove_lid", "basic_pick_place", "stack_unstack_cups"))
    for ep in eps:
        main = ep.videos["observation.images.egocentric"]
        for camera in ("left_wrist", "right_wrist"):
            ep.videos[f"observation.images.{camera}"] = dataclasses.replace(main, camera=camera)
    real_init, real_close = EpisodeEncoder.__init__, EpisodeEncoder.close
    open_now, most = [0], [0]
    lock = threading.Lock()

    def init(self, *args, **kwargs) -> None:
        real_init(self, *args, **kwargs)
        with lock:
            open_now[0] += 1
            most[0] = max(most[0], open_now[0])

    def close(self) -> None:
        real_close(self)
        with lock:
            open_now[0] -= 1

    monkeypatch.setattr(EpisodeEncoder, "__init__", init)
    monkeypatch.setattr(EpisodeEncoder, "close", close)
    result = write_shard(eps, tmp_path / "out", "x-00000", ShardConfig(formats=("lerobot",)))
    assert [f["status"] for f in result.fates.values()] == ["ingested"] * 3
    assert most[0] == 1 and open_now[0] == 0
    assert len(list((tmp_path / "out" / "shards" / "x-00000").rglob("*.mp4"))) == 9
