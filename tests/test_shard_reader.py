"""`shards.reader` over what the ingest job writes (LeRobot v3 + Zarr v3 twins) and over a dataset LeRobot
itself wrote: every way to open an output, episodes and columns that agree with the catalog and between
formats, decoded frames, stats, tokenizer, the format registry, path containment, `validate` against each
shard's own shard.json, and `psi0 tokenizer fit` over shards and single EgoDex files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from schemas.names import SHARD_FILE
from shards import formats
from shards.location import Location
from shards.reader import open_output, open_shard

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
CAM = "observation.images.egocentric"


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """Humanoid Everyday sample through the real job: both formats, 2 episodes per shard, FAST tokens."""
    from samples import humanoid_everyday as he_sample
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig

    base = tmp_path_factory.mktemp("reader")
    he_sample.write_sample(base / "src", resolution=(96, 64), seconds=0.8)
    root = base / "out"
    catalog = run_local(JobConfig(source="humanoid_everyday", input=str(base / "src"), output=str(root),
                                  formats=("lerobot", "zarr"), episodes_per_shard=2, video_width=64, video_height=48,
                                  tokenize=True, token_horizon=4, token_vocab=512, token_fit_episodes=8))
    assert catalog.counts()["rejected"] == 0
    return root


def test_every_way_to_open_an_output(out):
    root = open_output(out)
    assert not root.synthesized and root.root == Location.of(out)
    assert open_output(out / "catalog.json").catalog.to_json() == root.catalog.to_json()
    shard = root.shard_ids()[0]
    for fmt, name in (("lerobot", shard), ("zarr", f"{shard}.zarr")):
        bare = open_output(out / "shards" / name)
        assert bare.synthesized and [r.format for r in bare.shards] == [fmt]
        record = bare.shards[0]
        assert record.shard_id == shard and record.path == name
        assert record.inputs == root.record(shard, fmt).inputs
        assert bare.fates() == {k: v for k, v in root.fates().items() if v.get("shard") == shard}
        assert bare.tokenizer() is not None and bare.tokenizer().config == root.tokenizer().config
        assert open_shard(out / "shards" / name).format == fmt
    with pytest.raises(FileNotFoundError, match="finalize"):
        no_catalog = out.parent / "no-catalog"
        (no_catalog / "shards").mkdir(parents=True)
        open_output(no_catalog)
    with pytest.raises(FileNotFoundError, match="registered format"):
        open_output(out / "shards")


def test_episodes_and_columns_agree_with_the_catalog_and_between_formats(out):
    root = open_output(out)
    fates = root.fates()
    for shard in root.shard_ids():
        lr, zr = root.open_shard(shard, "lerobot"), root.open_shard(shard, "zarr")
        assert root.open_shard(shard).format == "lerobot"                   # preferred when twins exist
        assert lr.info().frames == zr.info().frames == root.record(shard).frames
        assert [c.key for c in lr.info().cameras] == [c.key for c in zr.info().cameras]
        for a, b in zip(lr.episodes(), zr.episodes()):
            assert (a.index, a.start, a.length, a.task, a.source_id, a.embodiment, a.meta) == \
                   (b.index, b.start, b.length, b.task, b.source_id, b.embodiment, b.meta)
            fate = fates[a.source_id]
            assert (fate["shard"], fate["episode_index"], fate["frames"], fate["task"]) == \
                   (shard, a.index, a.length, a.task)
            assert a.meta["source_id"] == a.source_id and "psi0/meta" not in a.record
            found_in, found = root.episode(a.source_id)
            assert found_in.format == "lerobot" and found == a
        whole = lr.columns()
        assert set(whole) - set(zr.columns()) == {"index"}                   # zarr drops only the global row index
        for key, values in zr.columns().items():
            np.testing.assert_array_equal(values.reshape(len(values), -1), whole[key].reshape(len(values), -1))
        e = lr.episodes()[-1]
        for key, values in lr.columns(["action", "frame_index"], episode=e.index).items():
            np.testing.assert_array_equal(values, whole[key][e.start:e.start + e.length])
        assert lr.tasks() == zr.tasks() and lr.tasks()
        cam = lr.info().cameras[0].key
        a, b = lr.frames(cam, e.index), zr.frames(cam, e.index)
        assert a.shape == b.shape == (e.length, 48, 64, 3)
        mse = float(((a.astype(float) - b) ** 2).mean())
        assert 10 * np.log10(255 ** 2 / max(mse, 1e-9)) > 30                 # AV1 crf 30 vs the lossless frames
        np.testing.assert_array_equal(lr.frame(cam, e.index, 3), a[3])
        assert lr.image(cam, e.index, 3, None).shape == (3, 48, 64) and zr.image(cam, e.index, 3, (24, 32)).shape == (3, 24, 32)
        span = lr.video_file(cam, e.index)
        assert span is not None and span.start == 0.0 and span.location.is_file() and zr.video_file(cam, e.index) is None


def test_stats_and_tokenizer(out):
    from schemas.stats import merge_all

    root = open_output(out)
    parts = [root.shard_stats(root.record(s)) for s in root.shard_ids()]
    merged = {k: v.to_lerobot() for k, v in merge_all(parts).items()}
    assert json.dumps(merged, sort_keys=True) == json.dumps(root.stats(), sort_keys=True)
    tok = root.tokenizer()
    assert tok.local_dir() == out / "tokenizer" and tok.config["horizon"] == 4
    for shard in root.shard_ids():
        native = root.open_shard(shard, "zarr").native_stats()
        assert native["action"]["min"] == root.open_shard(shard, "lerobot").native_stats()["action"]["min"]


def test_a_dataset_lerobot_itself_wrote(tmp_path):
    """Several episodes per data file and per MP4 (from_timestamp > 0): frames equal LeRobotDataset's."""
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    sys.path.insert(0, str(REPO / "tests"))
    from dashboard_fixture import build_output_root

    root = build_output_root(tmp_path / "lr")
    shard_dir = root / "shards" / "demo-000"
    reader = open_shard(shard_dir)
    episodes = reader.episodes()
    assert [(e.index, e.start, e.length) for e in episodes] == [(0, 0, 20), (1, 20, 20)]
    assert [c.key for c in reader.info().cameras] == ["observation.images.head", "observation.images.wrist"]
    span = reader.video_file("observation.images.head", 1)
    assert (span.start, span.end) == (2.0, 4.0)
    ds = LeRobotDataset("psi0/demo", root=shard_dir, video_backend="pyav")
    for ep, frame in ((1, 0), (1, 7), (0, 19)):
        expected = (ds[20 * ep + frame]["observation.images.head"] * 255).round().to(torch.uint8).numpy()
        np.testing.assert_array_equal(reader.image("observation.images.head", ep, frame, None), expected)
    bare = open_output(shard_dir)                                   # no shard.json: catalog from LeRobot's meta
    assert bare.synthesized and bare.shards[0].frames == 40 and bare.stats()["action"]["min"]
    assert [e.frames for e in bare.episodes()] == [20, 20]


def test_registry_and_containment(out, tmp_path):
    from shards.writer import ShardConfig
    from training.data import DataConfig

    assert formats.names()[:2] == ("lerobot", "zarr") and formats.TWINS == ("lerobot", "zarr")
    assert formats.detect(Location.of(out / "shards")) is None
    with pytest.raises(KeyError, match="registered: lerobot, zarr"):
        formats.get("parquet")
    with pytest.raises(ValueError, match="subset"):
        ShardConfig(formats=("parquet",))
    with pytest.raises(ValueError, match="registered"):
        DataConfig(format="parquet")
    base = Location.of(out)
    for bad in ("../x", "/etc/passwd", "shards/../../x", ""):
        with pytest.raises(PermissionError):
            base.child(bad)
    (out / "shards" / "escape").symlink_to(tmp_path)
    try:
        with pytest.raises(PermissionError):
            base.child("shards/escape/x.mp4")
    finally:
        (out / "shards" / "escape").unlink()
    url = Location.of("s3://bucket/out")
    assert url.child("shards/a/../b").uri == "s3://bucket/out/shards/b"
    for bad in ("../x", "shards/../../x", "s3://other/x"):
        with pytest.raises(PermissionError):
            url.child(bad)


def test_validate_checks_each_shard_against_its_own_shard_json(out, tmp_path):
    from shards.commit import content_hash
    from shards.validate import validate

    assert validate(out) == []
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    parquet = next((copy / "shards").glob("*-00000/data/chunk-000/file-000.parquet"))
    parquet.write_bytes(parquet.read_bytes()[:-100])
    shard = parquet.parents[2]
    catalog = json.loads((copy / "catalog.json").read_text())
    for rec in catalog["shards"]:                      # a catalog rewritten to match the tampered bytes
        if rec["path"] == f"shards/{shard.name}":
            rec["content_hash"] = content_hash(shard)
    (copy / "catalog.json").write_text(json.dumps(catalog))
    problems = validate(copy)
    assert any(f"differs from its own {SHARD_FILE}" in p for p in problems), problems
    assert not any("differs from the catalog" in p for p in problems)
    assert validate(out / "shards" / shard.name) == []            # a bare shard validates on its own


def test_tokenizer_fit_over_shards_and_one_egodex_file(out, tmp_path):
    from samples import egodex as egodex_sample

    src = tmp_path / "egodex"
    egodex_sample.write_sample(src, resolution=(64, 48), episodes_per_task=1, seconds=1.0)
    one = sorted(src.rglob("*.hdf5"))[0]
    total = sum(f["frames"] for f in open_output(out).fates().values() if f["status"] == "ingested")
    from schemas.actions import HUMAN_ACTION_48

    # robot shards and EgoDex files fit in the one stage-1 token space: the 48-D hand action (issue 14)
    hand = HUMAN_ACTION_48.size
    for inputs, dims in (([str(out)], "shards"), ([str(out / "catalog.json"), str(out / "shards")], None),
                         ([str(one)], "egodex")):
        target = tmp_path / f"tok{len(inputs)}{dims}"
        r = subprocess.run([sys.executable, "-m", "psi0", "tokenizer", "fit", "--input", *inputs, "--out", str(target),
                            "--horizon", "4", "--vocab-size", "1024"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
        if dims is None:                                       # shards/ alone is not something to read
            assert r.returncode == 2 and "registered format" in r.stderr, r.stderr
            continue
        assert r.returncode == 0, r.stderr
        assert json.loads((target / "config.json").read_text())["dims"] == hand
        chunks = json.loads(r.stdout.strip().splitlines()[-1])["chunks"]
        if dims == "shards":
            assert chunks == total                 # shards: one chunk per frame, of one copy of each shard
        else:
            assert chunks > 0
