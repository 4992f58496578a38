"""Issue 13, items 1, 2, 5, 6 (ingest): no single input stops a job, claimed sizes are checked before
memory is spent, readers never leave their source, every reject names its file. Every bad input is
generated here, in its real on-disk format."""
from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from converters import egodex, humanoid_everyday
from samples import egodex as egodex_sample
from samples import humanoid_everyday as he_sample
from schemas import EpisodeError, RejectReason
from schemas.names import SHARD_FILE
from shards.writer import ShardConfig, write_shard

SIZE = (64, 48)


def _egodex_episode(root: Path, task: str = "basic_pick_place", index: int = 0, frames: int = 24, seed: int = 0) -> Path:
    """One real EgoDex episode (HDF5 + MP4) under root/part1/<task>/; returns the HDF5 path."""
    rng = np.random.default_rng([seed, index])
    ep = egodex_sample.make_episode(rng, task, index, frames, SIZE)
    folder = root / "part1" / task
    egodex_sample.write_hdf5(folder / f"{index}.hdf5", ep)
    egodex_sample.write_mp4(folder / f"{index}.mp4", ep)
    return folder / f"{index}.hdf5"


def _add_odd_attributes(hdf5: Path) -> None:
    """Root attributes JSON cannot hold as they are: a complex number, a compound record (with a bytes
    field), and an object reference."""
    import h5py

    with h5py.File(hdf5, "a") as f:
        f.attrs["phase"] = np.complex128(1.5 - 2j)
        record = np.array((3, 0.25, b"left"), dtype=[("id", "i4"), ("gain", "f8"), ("hand", "S8")])
        f.attrs["calibration"] = record
        f.attrs["camera_ref"] = f["camera/intrinsic"].ref


def _job(source: str, src: Path, out: Path, formats: tuple[str, ...] = ("lerobot",)):
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig

    cfg = JobConfig(source=source, input=str(src), output=str(out), formats=formats, episodes_per_shard=8,
                    video_width=32, video_height=24, video_codec="libx264")
    return run_local(cfg)


# ------------------------------------------------------------------------------------------ item 1
def test_odd_egodex_attributes_do_not_stop_the_job(tmp_path):
    """Complex / compound / object-reference root attributes: the job finishes, writes catalog.json, and
    the episode is ingested with its attributes converted (or dropped) and each conversion noted."""
    src = tmp_path / "in"
    odd = _egodex_episode(src, index=0)
    _egodex_episode(src, index=1, seed=1)
    _add_odd_attributes(odd)
    catalog = _job("egodex", src, tmp_path / "out")
    assert (tmp_path / "out" / "catalog.json").is_file()
    assert catalog.counts() == {"inputs": 2, "ingested": 2, "rejected": 0}
    ep = egodex.read(egodex.discover(str(src))[0])
    attrs, derived = ep.meta.extra["attrs"], ep.meta.derived
    assert attrs["phase"] == {"real": 1.5, "imag": -2.0}
    assert attrs["calibration"] == {"id": 3, "gain": 0.25, "hand": "left"}
    assert "camera_ref" not in attrs and "reference" in derived["attrs.camera_ref"]
    assert "complex" in derived["attrs.phase"] and "compound" in derived["attrs.calibration"]


def test_writer_turns_any_per_episode_failure_into_that_inputs_reject(tmp_path):
    """Metadata JSON cannot hold (the writer's own check names the field and the file) and a frame table
    that breaks mid-write (a worker_error naming the file): both become rejects, the good episode is
    written, the shard commits."""
    src = tmp_path / "in"
    for i in range(3):
        _egodex_episode(src, index=i, seed=i)
    good, bad_meta, bad_table = (egodex.read(r) for r in egodex.discover(str(src)))
    bad_meta.meta.extra["gain"] = complex(1, 2)
    bad_table.features = {**bad_table.features, "observation.extra": bad_table.features["action"]}
    result = write_shard([bad_table, bad_meta, good], tmp_path / "out", "x-00000",
                         ShardConfig(formats=("lerobot", "zarr")))
    fates = result.fates
    meta_fate, table_fate = fates[bad_meta.meta.source_id], fates[bad_table.meta.source_id]
    assert fates[good.meta.source_id]["status"] == "ingested" and fates[good.meta.source_id]["episode_index"] == 0
    assert meta_fate["reason"] == "bad_metadata" and meta_fate["details"]["field"] == "meta.extra.gain"
    assert bad_meta.videos["observation.images.egocentric"].uri in meta_fate["message"]
    assert table_fate["reason"] == "worker_error" and table_fate["stage"] == "write"
    assert bad_table.videos["observation.images.egocentric"].uri in table_fate["message"]
    assert "observation.extra" in table_fate["message"]
    for name in ("x-00000", "x-00000.zarr"):
        assert json.loads((tmp_path / "out" / "shards" / name / SHARD_FILE).read_text())["record"]["episodes"] == 1


# ------------------------------------------------------------------------------------------ item 6 (writer)
def test_a_shard_whose_inputs_were_all_rejected_leaves_no_empty_folders(tmp_path):
    src = tmp_path / "in"
    _egodex_episode(src)
    ep = egodex.read(egodex.discover(str(src))[0])
    ep.frames = ep.frames.slice(0, ep.length - 3)              # video decodes 3 more frames than the poses
    result = write_shard([ep], tmp_path / "out", "x-00000", ShardConfig(formats=("lerobot", "zarr")))
    for name in ("x-00000", "x-00000.zarr"):
        shard = tmp_path / "out" / "shards" / name
        assert [p.relative_to(shard).as_posix() for p in shard.rglob("*")] == [SHARD_FILE]
    (fate,) = result.fates.values()
    assert fate["reason"] == "frame_count_mismatch" and str(src) in fate["message"]    # names the video file


def test_worker_error_names_the_file_and_what_was_read(tmp_path):
    """An EgoDex dataset h5py cannot read as numbers names the file and the dataset; an unexpected
    exception in a transform names the file, the stage and the code."""
    import h5py

    from pipelines.stages import JobConfig, load

    src = tmp_path / "in"
    hdf5 = _egodex_episode(src)
    with h5py.File(hdf5, "a") as f:
        del f["transforms/leftHand"]
        f.create_dataset("transforms/leftHand", data=np.array([[[b"x" * 4] * 4] * 4] * 24, dtype="S4"))
    (ref,) = egodex.discover(str(src))
    cfg = JobConfig(source="egodex", input=str(src), output=str(tmp_path / "out"))
    rejected = load(ref, cfg, [])
    assert str(hdf5) in rejected.message and "transforms/leftHand" in rejected.message, rejected

    _egodex_episode(src, index=1)
    good = egodex.discover(str(src))[1]

    class Explodes:
        stage = "explode"

        def __call__(self, episode):
            return {}["no such key"]

    rejected = load(good, cfg, [Explodes()])
    assert rejected.reason is RejectReason.WORKER_ERROR and rejected.stage == "explode"
    assert good.uri in rejected.message and rejected.details["file"] == good.uri
    assert "__call__" in rejected.details["code"]


# ------------------------------------------------------------------------------------------ item 2
def _claiming_hdf5(hdf5: Path, frames: int) -> None:
    """Replace every transform with a chunked dataset that claims `frames` frames but stores none (the
    file stays a few hundred KB)."""
    import h5py

    with h5py.File(hdf5, "a") as f:
        for name in egodex.REQUIRED_TRANSFORMS:
            del f[f"transforms/{name}"]
            f.create_dataset(f"transforms/{name}", shape=(frames, 4, 4), dtype="f4", chunks=(4096, 4, 4))
        if "confidences" in f:
            del f["confidences"]


def test_claimed_frames_are_checked_against_the_video_before_reading(tmp_path):
    src = tmp_path / "in"
    hdf5 = _egodex_episode(src)
    _claiming_hdf5(hdf5, 40_000)
    assert hdf5.stat().st_size < 2_000_000
    (ref,) = egodex.discover(str(src))
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(EpisodeError) as err:
            egodex.read(ref)
        took, peak = time.monotonic() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.reason is RejectReason.FRAME_COUNT_MISMATCH and "40000 pose frames" in err.value.message
    assert peak < 20 << 20, f"{peak / 2**20:.0f} MiB allocated before the claim was checked"
    assert took < 5.0


def test_an_episode_above_the_memory_bound_is_refused_before_reading(tmp_path, monkeypatch):
    src = tmp_path / "in"
    _egodex_episode(src, frames=40)
    monkeypatch.setattr(egodex, "MAX_EPISODE_BYTES", 30 * egodex.BYTES_PER_FRAME)
    with pytest.raises(EpisodeError) as err:
        egodex.read(egodex.discover(str(src))[0])
    assert err.value.reason is RejectReason.OUT_OF_RANGE and "40 frames" in err.value.message
    assert err.value.details["frames"] == 40


# ------------------------------------------------------------------------------------------ item 5
@pytest.fixture()
def he_folder(tmp_path) -> Path:
    """One extracted Humanoid Everyday episode folder (data.json + JPEG frames)."""
    rng = np.random.default_rng(0)
    ep = he_sample.make_episode(rng, "fold_towel", 0, "G1", 20, False, (64, 48))
    he_sample.write_dir(tmp_path / "src" / "fold_towel", {f"episode_0/{k}": v for k, v in ep.files().items()})
    return tmp_path / "src" / "fold_towel" / "episode_0"


def _rewrite_image_paths(folder: Path, path_of) -> None:
    data = json.loads((folder / "data.json").read_text())
    for k, frame in enumerate(data):
        frame["image"] = path_of(k, frame["image"])
    (folder / "data.json").write_text(json.dumps(data))


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_he_paths_never_leave_the_episode_folder(he_folder, tmp_path, how):
    """data.json naming an image elsewhere on the host (absolute, ../.., or a symlink inside the folder that
    points out) is never read: the input is rejected, saying so."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    first = json.loads((he_folder / "data.json").read_text())[0]["image"]
    secret = outside / "secret.jpg"
    secret.write_bytes((he_folder / first).read_bytes())        # a real JPEG: the old reader ingested it
    for jpg in (he_folder / Path(first).parent).glob("*"):
        jpg.unlink()
    if how == "absolute":
        _rewrite_image_paths(he_folder, lambda k, p: str(secret))
    elif how == "dotdot":
        rel = Path("../" * (len(he_folder.relative_to(tmp_path).parts))) / "elsewhere" / "secret.jpg"
        _rewrite_image_paths(he_folder, lambda k, p: str(rel))
    else:
        _rewrite_image_paths(he_folder, lambda k, p: "color/leak.jpg")
        (he_folder / "color").mkdir(exist_ok=True)
        (he_folder / "color" / "leak.jpg").symlink_to(secret)
    (ref,) = humanoid_everyday.discover(str(tmp_path / "src"))
    with pytest.raises(EpisodeError) as err:
        humanoid_everyday.read(ref)
    assert err.value.reason is RejectReason.MISSING_VIDEO
    assert "outside the episode folder" in err.value.message


def test_he_recorded_absolute_paths_inside_the_folder_still_resolve(he_folder):
    """Recorders sometimes wrote absolute paths of the machine they ran on: the part inside the episode
    folder is still found (nothing outside is read)."""
    _rewrite_image_paths(he_folder, lambda k, p: f"/home/robot/data/fold_towel/episode_0/{p}")
    (ref,) = humanoid_everyday.discover(str(he_folder.parent.parent))
    ep = humanoid_everyday.read(ref)
    assert ep.videos["observation.images.egocentric"].frame_count == ep.length


# ------------------------------------------------------------------------------------------ item 2 (HE)
def test_a_zip_bomb_data_json_is_refused_without_inflating_it(tmp_path):
    """A task archive whose data.json inflates to 300 MB (300 KB on disk): refused from the central
    directory's size, nothing inflated."""
    import zipfile

    archive = tmp_path / "src" / "bomb.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("bomb/episode_0/data.json", "w") as member:
            block = b" " * (1 << 20)
            for _ in range(300):
                member.write(block)
        zf.writestr("bomb/episode_0/color/frame_000000.jpg", b"")
    assert archive.stat().st_size < 2_000_000
    (ref,) = humanoid_everyday.discover(str(tmp_path / "src"))
    tracemalloc.start()
    try:
        with pytest.raises(EpisodeError) as err:
            humanoid_everyday.read(ref)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.reason is RejectReason.OUT_OF_RANGE and "data.json" in err.value.message
    assert peak < 20 << 20, f"{peak / 2**20:.0f} MiB allocated"


def test_a_depth_frame_that_inflates_without_bound_is_refused(he_folder):
    """An LZMA depth frame that inflates to 80 MB (a real frame is 0.6 MB) stops at the bound."""
    import lzma

    data = json.loads((he_folder / "data.json").read_text())
    bomb = lzma.compress(b"\0" * (80 << 20), preset=0)
    (he_folder / data[0]["depth"]).write_bytes(bomb)
    (ref,) = humanoid_everyday.discover(str(he_folder.parent.parent))
    tracemalloc.start()
    try:
        with pytest.raises(EpisodeError) as err:
            humanoid_everyday.read(ref, with_depth=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.reason is RejectReason.OUT_OF_RANGE and "depth" in err.value.message
    assert peak < 40 << 20, f"{peak / 2**20:.0f} MiB allocated"
