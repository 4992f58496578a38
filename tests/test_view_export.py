"""`psi0 dataset export`: a view as one LeRobot v3 dataset (LeRobotDataset loads it, every frame's task is its
source episode's task, values equal the source), as LeRobot v2.1 + GR00T modality.json (LeRobot's own v2.1 →
v3.0 converter accepts it), as one Zarr v3 store; exactly once, resumable, atomic; on Ray."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from shards.dataset_cli import main as dataset
from shards.reader import open_output
from shards.views import ViewError
from shards.views_export import export
from views_fixture import sample_roots

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CAM = "observation.images.egocentric"


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> dict[str, Path]:
    roots = sample_roots()
    base = tmp_path_factory.mktemp("export-views")
    out = {"he": roots["he"], "eg": roots["eg"]}
    assert dataset(["filter", str(roots["he"]), "--embodiment", "g1_dex3", "--out", str(base / "g1.json")]) == 0
    assert dataset(["sample", str(roots["eg"]), "--count", "4", "--seed", "2", "--out", str(base / "eg4.json")]) == 0
    assert dataset(["merge", str(roots["eg"]), str(roots["he"]), "--mixture", "--out", str(base / "mix.json")]) == 0
    out.update(g1=base / "g1.json", eg4=base / "eg4.json", mix=base / "mix.json")
    return out


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def source_frames(view: Path) -> list[tuple[str, str, np.ndarray]]:
    """(episode key, task, action) of each episode of the view, in view order, read from the source shards."""
    out = open_output(view)
    rows = []
    for e in sorted(out.episodes(), key=lambda e: (e.shard, e.episode_index)):
        reader, info = out.episode(e.source_id)
        rows.append((e.source_id, e.task, reader.columns(["action"], episode=info.index)["action"]))
    return rows


def test_lerobot_v3_export_loads_with_every_frames_task_its_episodes(views, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    result = export(views["eg4"], "lerobot", tmp_path / "eg4", part_episodes=3)
    assert result["complete"] and result["episodes"] == 4 and result["parts"] == 2
    ds = LeRobotDataset("psi0/eg4", root=tmp_path / "eg4", video_backend="pyav")
    expected = source_frames(views["eg4"])
    assert ds.num_episodes == 4 and ds.num_frames == sum(len(a) for _, _, a in expected)
    keys = list(ds.meta.episodes["psi0/source_id"])
    assert keys == [k for k, _, _ in expected]
    hf = ds.hf_dataset.with_format(None)
    tasks = {int(i): t for t, i in zip(ds.meta.tasks.index, ds.meta.tasks["task_index"])}
    by_key = {k: (task, action) for k, task, action in expected}
    for frame in range(ds.num_frames):
        row = hf[frame]
        key = keys[int(row["episode_index"])]
        task, action = by_key[key]
        assert tasks[int(row["task_index"])] == task
        np.testing.assert_array_equal(np.asarray(row["action"], np.float32), action[int(row["frame_index"])])
    for i in (0, ds.num_frames - 1):
        item = ds[i]
        assert item["task"] == by_key[keys[int(item["episode_index"])]][0]
        assert tuple(item[CAM].shape) == (3, 48, 64)
    stats = json.loads((tmp_path / "eg4" / "meta" / "stats.json").read_text())
    assert np.asarray(stats[CAM]["mean"]).shape == (3, 1, 1) and stats["action"]["count"] == [ds.num_frames]
    record = json.loads((tmp_path / "eg4" / "meta" / "psi0_export.json").read_text())
    assert record["source"]["kind"] == "view" and record["source"]["operation"]["verb"] == "sample"
    src = open_output(views["eg4"])                    # MP4s are copied: same bytes as the shard's
    first = next(iter(src.episodes()))
    reader, info = src.episode(first.source_id)
    assert (tmp_path / "eg4" / "videos" / CAM / "chunk-000" / "file-000.mp4").read_bytes() == \
        reader.video_file(CAM, info.index).location.read_bytes()


def test_lerobot_v21_export_with_modality_json_converts_with_lerobots_own_converter(views, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset

    from schemas import PSI0_ACTION, PSI0_STATE

    out = tmp_path / "psi0" / "g1"
    export(views["g1"], "lerobot-v21", out)
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["total_chunks"] == 1 and info["total_videos"] == 3
    assert info["features"][CAM]["info"]["video.codec"] == "h264"          # GR00T's decoders: no AV1
    for e in range(3):
        assert (out / info["data_path"].format(episode_chunk=0, episode_index=e)).is_file()
        assert (out / info["video_path"].format(episode_chunk=0, video_key=CAM, episode_index=e)).is_file()
    lines = (out / "meta" / "episodes_stats.jsonl").read_text().splitlines()
    assert len(lines) == 3 and set(json.loads(lines[0])["stats"]["action"]) == {"min", "max", "mean", "std", "count"}
    modality = json.loads((out / "meta" / "modality.json").read_text())
    for part, space, key in (("action", PSI0_ACTION, "action"), ("state", PSI0_STATE, "observation.state")):
        spans = sorted((v["start"], v["end"], g) for g, v in modality[part].items())
        assert spans[0][0] == 0 and spans[-1][1] == space.size
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))         # contiguous, covering the vector
        for start, end, group in spans:
            assert {d.split(".", 1)[0] for d in space.dims[start:end]} == {group}
            assert modality[part][group]["original_key"] == key
    assert modality["action"]["left_arm"] == {"start": 14, "end": 21, "original_key": "action"}
    assert modality["video"] == {"egocentric": {"original_key": CAM}}
    assert modality["annotation"] == {"human.task_description": {"original_key": "task_index"}}
    gr00t = json.loads((out / "meta" / "stats.json").read_text())
    assert {"mean", "std", "min", "max", "q01", "q99"} <= set(gr00t["action"])
    tasks = [json.loads(x) for x in (out / "meta" / "tasks.jsonl").read_text().splitlines()]

    convert_dataset("psi0/g1", root=tmp_path, push_to_hub=False)          # LeRobot's v2.1 rules, then v3.0
    ds = LeRobotDataset("psi0/g1", root=out, video_backend="pyav")
    expected = source_frames(views["g1"])
    assert ds.num_episodes == 3 and ds.num_frames == sum(len(a) for *_, a in expected)
    starts = np.cumsum([0] + [len(a) for *_, a in expected])
    for e, (_, task, _) in enumerate(expected):
        assert ds[int(starts[e])]["task"] == task and ds[int(starts[e + 1] - 1)]["task"] == task
    assert [t["task"] for t in tasks] == sorted({t for _, t, _ in expected})


def test_zarr_export_is_one_store_the_reader_opens(views, tmp_path):
    export(views["g1"], "zarr", tmp_path / "g1.zarr", part_episodes=2)
    out = open_output(tmp_path / "g1.zarr")
    reader = out.open_shard(out.shard_ids()[0])
    expected = source_frames(views["g1"])
    assert [(e.source_id, e.task) for e in reader.episodes()] == [(k, t) for k, t, _ in expected]
    for e, (_, _, action) in zip(reader.episodes(), expected):
        np.testing.assert_array_equal(reader.columns(["action"], episode=e.index)["action"], action)
    frames = reader.frames(CAM, 2)
    assert frames.shape == (reader.episode(2).length, 48, 64, 3) and frames.dtype == np.uint8
    assert reader.columns(["episode_index"])["episode_index"].tolist() == \
        sum(([i] * len(a) for i, (_, _, a) in enumerate(expected)), [])
    import zarr

    attrs = zarr.open_group(str(tmp_path / "g1.zarr"), mode="r").attrs.asdict()
    assert attrs["psi0_export"]["sha256"] and attrs["stats"]["action"]["count"] == [sum(len(a) for *_, a in expected)]


def test_export_is_resumable_exactly_once_and_atomic(views, tmp_path):
    whole = tmp_path / "whole"
    export(views["eg4"], "lerobot", whole, part_episodes=1, repo_id="psi0/eg4")
    out = tmp_path / "resumed"
    first = export(views["eg4"], "lerobot", out, part_episodes=1, stop_after=2, repo_id="psi0/eg4")   # a "crash"
    assert not first["complete"] and not out.exists()                                 # nothing half-written
    staging = tmp_path / ".tmp-resumed"
    assert sorted(p.name for p in (staging / "parts").iterdir()) == ["part-00000", "part-00001"]
    second = export(views["eg4"], "lerobot", out, part_episodes=1, repo_id="psi0/eg4")
    assert second["complete"] and second["skipped"] == 2 and not staging.exists()
    assert tree_hashes(out) == tree_hashes(whole)                                      # same bytes as one run
    with pytest.raises(ViewError, match="already exists"):
        export(views["eg4"], "lerobot", out)
    export(views["eg4"], "lerobot", tmp_path / "other", part_episodes=1, stop_after=1)
    with pytest.raises(ViewError, match="interrupted export of something else"):
        export(views["g1"], "lerobot", tmp_path / "other", part_episodes=1)


def test_export_refuses_a_view_without_one_feature_set(views, tmp_path):
    with pytest.raises(ViewError, match="different features"):
        export(views["mix"], "lerobot", tmp_path / "mix")
    with pytest.raises(ViewError, match="'action' differs"):
        export(views["mix"], "lerobot", tmp_path / "mix", features=["action", CAM])
    assert not (tmp_path / "mix").exists()
    assert dataset(["export", str(views["mix"]), "--format", "zarr", "--out", str(tmp_path / "m")]) == 2


@pytest.mark.slow
def test_ray_export_writes_the_same_bytes(views, tmp_path):
    local = tmp_path / "local"
    export(views["eg4"], "lerobot", local, part_episodes=1, repo_id="psi0/eg4")
    result = export(views["eg4"], "lerobot", tmp_path / "ray", runner="ray", workers=2, part_episodes=1,
                    repo_id="psi0/eg4")
    assert result["complete"] and tree_hashes(tmp_path / "ray") == tree_hashes(local)
    shutil.rmtree(local)
