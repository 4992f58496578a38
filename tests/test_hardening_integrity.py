"""Issue 13, items 3 (shards) and 6 (train): a shard whose bytes changed after it was written is refused
wherever it is opened, naming the file; `train` says so (and names a truncated parquet) instead of
training on it or printing a pyarrow traceback; `psi0 validate` names the file and can stamp a shard so
later opens check sizes and mtimes only."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shards.commit import content_hash
from shards.reader import open_output
from shards.validate import validate

ROOT = Path(__file__).resolve().parent.parent
DATA = "data/chunk-000/file-000.parquet"
TRAIN = [sys.executable, "-m", "psi0", "train", "--config", "tiny", "--image-size", "native", "--no-progress",
         "--stage", "2", "--batch-size", "2", "--steps", "1", "--no-export"]
ENV = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """A Humanoid Everyday output root the real job wrote (LeRobot + Zarr twins)."""
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig
    from samples import humanoid_everyday as he_sample

    base = tmp_path_factory.mktemp("integrity")
    he_sample.write_sample(base / "in", resolution=(64, 48), seconds=1.0)
    cfg = JobConfig(source="humanoid_everyday", input=str(base / "in"), output=str(base / "out"),
                    formats=("lerobot", "zarr"), episodes_per_shard=8, video_width=32, video_height=24,
                    video_codec="libx264")
    assert run_local(cfg).counts()["rejected"] == 0
    return base / "out"


@pytest.fixture()
def root(written, tmp_path) -> Path:
    out = tmp_path / "out"              # a fresh path: nothing about it is remembered as verified
    shutil.copytree(written, out)
    return out


def _forget() -> None:
    """A fresh process's view: nothing verified yet (imported here so the behaviour tests below also run,
    and fail, on code that predates `shards.integrity`)."""
    from shards import integrity

    integrity.forget()


def _integrity():
    from shards import integrity

    return integrity


def _shard(root: Path, suffix: str = "") -> Path:
    (shard,) = [p for p in (root / "shards").iterdir() if p.name.endswith(suffix) and (suffix or "." not in p.name)]
    return shard


def _scale_actions(parquet: Path, factor: float) -> None:
    """Rewrite a shard's data file with every action multiplied (a well-formed parquet: only hashes can tell)."""
    table = pq.read_table(parquet)
    col = table.column("action").combine_chunks()
    scaled = pa.FixedSizeListArray.from_arrays(pa.array(col.flatten().to_numpy() * factor, pa.float32()),
                                               col.type.list_size)
    table = table.set_column(table.schema.get_field_index("action"), "action", scaled)
    pq.write_table(table, parquet)


def test_modified_shard_is_refused_on_open_naming_the_file(root):
    from shards.integrity import ShardIntegrityError

    out = open_output(root)
    out.open_shard(out.shard_ids()[0]).close()                     # sound: opens
    _scale_actions(_shard(root) / DATA, 1e6)
    _forget()
    with pytest.raises(ShardIntegrityError) as err:
        open_output(root).open_shard(out.shard_ids()[0])
    assert DATA in str(err.value) and err.value.path == DATA
    zarr = _shard(root, ".zarr")
    chunk = next(p for p in sorted((zarr / "data" / "action").rglob("*")) if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(chunk.read_bytes()[:-1] + bytes([chunk.read_bytes()[-1] ^ 1]))
    with pytest.raises(ShardIntegrityError) as err:
        open_output(root).open_shard(out.shard_ids()[0], fmt="zarr")
    assert chunk.relative_to(zarr).as_posix() in str(err.value)


def test_a_file_added_to_or_removed_from_a_shard_is_named(root):
    from shards.integrity import ShardIntegrityError

    shard = _shard(root)
    (shard / "data" / "extra.parquet").write_bytes(b"PAR1")
    with pytest.raises(ShardIntegrityError, match="data/extra.parquet was not written with the shard"):
        open_output(root).open_shard(open_output(root).shard_ids()[0])
    (shard / "data" / "extra.parquet").unlink()
    (shard / "meta" / "stats.json").unlink()
    with pytest.raises(ShardIntegrityError, match="meta/stats.json is missing"):
        open_output(root).open_shard(open_output(root).shard_ids()[0])


def test_catalog_and_shard_json_must_agree(root):
    from shards.integrity import ShardIntegrityError

    catalog = json.loads((root / "catalog.json").read_text())
    catalog["shards"][0]["content_hash"] = "f" * 64
    (root / "catalog.json").write_text(json.dumps(catalog))
    out = open_output(root)
    with pytest.raises(ShardIntegrityError, match="one of them was rewritten"):
        out.open_shard(out.catalog.shards[0])


def test_a_shard_is_hashed_once_per_process(root):
    integrity = _integrity()
    out = open_output(root)
    sid = out.shard_ids()[0]
    out.open_shard(sid).close()
    hashed = integrity.stats["files_hashed"]
    for _ in range(3):
        out.open_shard(sid).close()
    assert integrity.stats["files_hashed"] == hashed


def test_shard_json_is_parsed_once_until_it_changes(root, monkeypatch):
    integrity = _integrity()
    parsed = []
    real = integrity._parse_shard_json
    monkeypatch.setattr(integrity, "_parse_shard_json", lambda where, marker: parsed.append(marker.uri) or
                        real(where, marker))
    out = open_output(root)
    sid = out.shard_ids()[0]
    for _ in range(3):
        out.open_shard(sid).close()
        open_output(root).open_shard(sid).close()
    assert len(parsed) == 1
    marker = _shard(root) / "shard.json"
    data = json.loads(marker.read_text())
    data["record"]["content_hash"] = "0" * 64                          # rewritten: must be read again
    marker.write_text(json.dumps(data) + " ")
    from shards.integrity import ShardIntegrityError
    with pytest.raises(ShardIntegrityError, match="one of them was rewritten"):
        open_output(root).open_shard(sid)
    assert len(parsed) == 2


def test_validate_names_the_file_and_its_stamp_spares_rehashing(root):
    integrity = _integrity()
    from shards.integrity import STAMP_FILE, ShardIntegrityError

    assert validate(root, stamp=True) == []
    shard = _shard(root)
    assert (shard / STAMP_FILE).is_file() and (_shard(root, ".zarr") / STAMP_FILE).is_file()
    _forget()
    hashed, trusted = integrity.stats["files_hashed"], integrity.stats["stamps_trusted"]
    out = open_output(root)
    out.open_shard(out.shard_ids()[0]).close()
    assert integrity.stats["files_hashed"] == hashed and integrity.stats["stamps_trusted"] == trusted + 1
    record = json.loads((shard / "shard.json").read_text())["record"]
    assert content_hash(shard) == record["content_hash"]    # the stamp is not part of the content hash
    _scale_actions(shard / DATA, 10.0)                       # the file changes: size/mtime differ from the stamp
    _forget()
    with pytest.raises(ShardIntegrityError, match=DATA):
        open_output(root).open_shard(out.shard_ids()[0])
    problems = validate(root)
    assert any(f"{DATA} differs from shard.json" in p for p in problems), problems


def _train(shards: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*TRAIN, "--shards", str(shards), "--out", str(out)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)


def test_train_refuses_a_modified_shard_naming_the_file(root, tmp_path):
    _scale_actions(_shard(root) / DATA, 1e6)
    proc = _train(root, tmp_path / "run")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "train: error:" in proc.stderr and DATA in proc.stderr and "modified after it was written" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_train_on_a_truncated_parquet_names_it_without_a_traceback(root, tmp_path):
    """A shard without hashes (shard.json removed: as LeRobot-written datasets are) whose data file was cut:
    a one-line error naming the file."""
    shard = _shard(root)
    (shard / "shard.json").unlink()
    data = (shard / DATA).read_bytes()
    (shard / DATA).write_bytes(data[: len(data) // 2])
    proc = _train(root, tmp_path / "run")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("train: error:"))
    assert str(shard / DATA) in line and "not a readable parquet file" in line
