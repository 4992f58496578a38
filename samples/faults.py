"""Bad inputs of every kind, written in the real formats, for tests of readers and pipelines.

Each writer adds ONE bad episode to a source root (beside a normal sample or alone) and returns
its source_id; `EGODEX_FAULTS` / `HE_FAULTS` say which `RejectReason` it must end with.
`write_all(root, source)` writes every kind and returns `{source_id: reason}`.

EgoDex faults live under the split `faults/<kind>/0.*`; HE faults are task folders or archives
named `fault_<kind>`. The HE duplicate writes the same task both as a zip and as a folder: the
reader yields two refs with one source_id, and the pipeline planner rejects the later one.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from samples import egodex as egodex_sample
from samples import humanoid_everyday as he_sample
from schemas import RejectReason

EGODEX_FAULTS: dict[str, RejectReason] = {
    "truncated_mp4": RejectReason.VIDEO_DECODE_ERROR,
    "truncated_mp4_faststart": RejectReason.VIDEO_DECODE_ERROR,
    "missing_key": RejectReason.MISSING_KEY,
    "nan_transform": RejectReason.NON_FINITE,
    "frame_count_mismatch": RejectReason.FRAME_COUNT_MISMATCH,
    "empty_episode": RejectReason.EMPTY_EPISODE,
    "non_rigid": RejectReason.NOT_RIGID,
    "missing_video": RejectReason.MISSING_VIDEO,
    "unreadable_hdf5": RejectReason.UNREADABLE,
}

HE_FAULTS: dict[str, RejectReason] = {
    "non_monotonic_time": RejectReason.NON_MONOTONIC_TIME,
    "missing_key": RejectReason.MISSING_KEY,
    "empty_episode": RejectReason.EMPTY_EPISODE,
    "missing_image": RejectReason.MISSING_VIDEO,
    "nan_state": RejectReason.NON_FINITE,
    "unreadable_json": RejectReason.UNREADABLE,
    "corrupt_zip": RejectReason.UNREADABLE,
    "duplicate_id": RejectReason.DUPLICATE_ID,
}

_SMALL = (96, 64)


# ------------------------------------------------------------------------------------------ EgoDex
def write_egodex_fault(root: Path, kind: str, seed: int = 0, resolution: tuple[int, int] = _SMALL) -> str:
    """Write one bad EgoDex episode of `kind` under `root/faults/<kind>/`; returns its source_id."""
    if kind not in EGODEX_FAULTS:
        raise ValueError(f"unknown EgoDex fault {kind!r}; choose from {sorted(EGODEX_FAULTS)}")
    root = Path(root)
    folder = root / "faults" / kind
    hdf5, mp4 = folder / "0.hdf5", folder / "0.mp4"
    rng = np.random.default_rng([seed, 7, sorted(EGODEX_FAULTS).index(kind)])
    ep = egodex_sample.make_episode(rng, "basic_pick_place", 0, 24, resolution)
    # The video is rendered from the clean poses; the pose faults are injected afterwards.
    video_frames = {"frame_count_mismatch": ep.length - 5, "empty_episode": 1}.get(kind)
    egodex_sample.write_mp4(mp4, ep, n_frames=video_frames, seed=seed, faststart=kind.endswith("faststart"))
    drop: tuple[str, ...] = ()
    if kind == "missing_key":
        drop = ("transforms/rightIndexFingerTip",)
    elif kind == "nan_transform":
        ep.transforms["leftThumbTip"][5, 0, 3] = np.nan
    elif kind == "non_rigid":
        ep.transforms["rightHand"][7, :3, :3] *= 1.2
    elif kind == "empty_episode":
        ep.transforms = {k: v[:0] for k, v in ep.transforms.items()}
        ep.confidences = {k: v[:0] for k, v in (ep.confidences or {}).items()}
    egodex_sample.write_hdf5(hdf5, ep, drop=drop)
    if kind.startswith("truncated_mp4"):
        data = mp4.read_bytes()
        mp4.write_bytes(data[: len(data) * 3 // 5])
    elif kind == "missing_video":
        mp4.unlink()
    elif kind == "unreadable_hdf5":
        hdf5.write_bytes(b"this is not an HDF5 file\n" * 8)
    return f"egodex/faults/{kind}/0"


# ------------------------------------------------------------------------------------------ Humanoid Everyday
def write_he_fault(root: Path, kind: str, seed: int = 0, resolution: tuple[int, int] = _SMALL) -> str:
    """Write one bad HE episode of `kind` under `root`; returns its source_id."""
    if kind not in HE_FAULTS:
        raise ValueError(f"unknown HE fault {kind!r}; choose from {sorted(HE_FAULTS)}")
    root = Path(root)
    task = f"fault_{kind}"
    rng = np.random.default_rng([seed, 8, sorted(HE_FAULTS).index(kind)])
    ep = he_sample.make_episode(rng, task, 0, "G1", 20, False, resolution)
    source_id = f"humanoid_everyday/{task}/episode_0"
    if kind == "non_monotonic_time":
        ep.frames[9]["time"], ep.frames[10]["time"] = ep.frames[10]["time"], ep.frames[9]["time"]
    elif kind == "missing_key":
        del ep.frames[5]["states"]["arm_state"]
    elif kind == "empty_episode":
        ep.frames = []
    elif kind == "missing_image":
        ep.images, ep.image_names = ep.images[:-3], ep.image_names[:-3]
    elif kind == "nan_state":
        ep.frames[4]["states"]["imu"]["rpy"][1] = float("nan")    # json writes NaN, json.loads reads it back
    files = ep.files()
    if kind == "unreadable_json":
        files["data.json"] = b'[{"time": 1.0, "states": {'
    entries = {f"episode_0/{k}": v for k, v in files.items()}
    if kind == "corrupt_zip":
        target = root / f"{task}.zip"
        he_sample.write_zip(target, entries)
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
        return f"humanoid_everyday/{task}/{task}.zip"
    if kind == "duplicate_id":
        he_sample.write_zip(root / f"{task}.zip", {f"{task}/{k}": v for k, v in entries.items()})
    he_sample.write_dir(root / task, entries)
    return source_id


# ------------------------------------------------------------------------------------------ all
def write_all(root: Path, source: str, seed: int = 0) -> dict[str, RejectReason]:
    """Every fault kind of `source` ("egodex" | "humanoid_everyday") under `root`."""
    if source == "egodex":
        return {write_egodex_fault(root, kind, seed): reason for kind, reason in EGODEX_FAULTS.items()}
    if source == "humanoid_everyday":
        return {write_he_fault(root, kind, seed): reason for kind, reason in HE_FAULTS.items()}
    raise ValueError(f"unknown source {source!r}")


def remove_faults(root: Path, source: str) -> None:
    """Undo `write_all` (tests that reuse one sample root)."""
    root = Path(root)
    if source == "egodex":
        shutil.rmtree(root / "faults", ignore_errors=True)
        return
    for path in root.glob("fault_*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def expected_json(faults: dict[str, RejectReason]) -> str:
    """Stable text form of a fault table (for logs and golden files)."""
    return json.dumps({k: v.value for k, v in sorted(faults.items())}, indent=1)
