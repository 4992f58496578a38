"""EgoDex reader: `<split>/<task>/<n>.hdf5` + `<n>.mp4` -> `Episode` of human-hand poses.

On disk (Apple's release, see shared/reference/egodex_amo.md): `/camera/intrinsic` (3, 3),
`/transforms/<joint>` (N, 4, 4) world poses (ARKit origin) for `camera` and 68 joints,
optional `/confidences/<joint>` (N,), and root attributes (bytes or str, any may be missing).

Per frame we emit, all in the *current* frame's camera frame (inv(T_camera[t]) @ T_joint[t],
OpenCV axes as in Apple's own projection code):
- `observation.state` == `action`: the absolute 48-D human representation (HUMAN_ACTION_48), its
  wrist rotation the palmar hand frame of the keypoints (`converters.retarget.frames.palm_frame`), the
  one wrist convention of state, action and tokens (ARKit's own wrist axes are not used: docs/shards.md);
- `human.<side>_hand.keypoints` (25 x xyz) and `.confidence` (25), topology from joint *names*;
- `human.camera.pose`: camera-to-world 4x4, row-major.
The MP4 is only probed (container metadata), never decoded here.
"""
from __future__ import annotations

import io
import os
import posixpath
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from converters.retarget.frames import palm_frame
from converters.source import Hand48Tokens, JobDefaults, features_summary, input_columns
from converters.tokenize import hand48
from converters.transforms import HandQA
from schemas import HUMAN_ACTION_48, HUMAN_ACTION_48_DELTA, Episode, EpisodeError, EpisodeMeta, FeatureSpec, \
    RejectReason, SourceRef, VideoRef, remote
from schemas.embodiments import HUMAN_HAND_KEYPOINTS, HUMAN_HAND_TIPS, SIDES, human_hand_joints
from schemas.episode import build_frames
from schemas.ffmpeg_log import ffmpeg_warnings_muted
from schemas.rotations import rot6d
from schemas.validation import FPS_TOLERANCE, MIN_FRAMES, check_finite, check_rigid

SOURCE = "egodex"
FPS = 30.0
CAMERA = "egocentric"
DEFAULT_INTRINSIC = ((736.6339, 0.0, 960.0), (0.0, 736.6339, 540.0), (0.0, 0.0, 1.0))
NATIVE_SHAPE = (1080, 1920, 3)
MAX_EPISODE_BYTES = 1 << 30
"""Memory one episode may take to convert: a claimed frame count above it is rejected before reading."""
BYTES_PER_FRAME = 17_500
"""Peak bytes per frame while converting (float32 block, float64 camera-frame poses, columns), measured."""

CAMERA_POSE_NAMES = tuple(f"T_world_camera.r{r}c{c}" for r in range(4) for c in range(4))
HAND_JOINTS = {side: human_hand_joints(side) for side in SIDES}
REQUIRED_TRANSFORMS = ("camera",) + HAND_JOINTS["left"] + HAND_JOINTS["right"]

FEATURES: dict[str, FeatureSpec] = {
    "observation.state": FeatureSpec("observation.state", "float32", (HUMAN_ACTION_48.size,), HUMAN_ACTION_48.dims),
    "action": FeatureSpec("action", "float32", (HUMAN_ACTION_48.size,), HUMAN_ACTION_48.dims),
    **{f"human.{s}_hand.keypoints": FeatureSpec(f"human.{s}_hand.keypoints", "float32", (HUMAN_HAND_KEYPOINTS[s].size,),
                                                HUMAN_HAND_KEYPOINTS[s].dims) for s in SIDES},
    **{f"human.{s}_hand.confidence": FeatureSpec(f"human.{s}_hand.confidence", "float32", (len(HAND_JOINTS[s]),),
                                                 HAND_JOINTS[s]) for s in SIDES},
    "human.camera.pose": FeatureSpec("human.camera.pose", "float32", (len(CAMERA_POSE_NAMES),), CAMERA_POSE_NAMES),
    f"observation.images.{CAMERA}": FeatureSpec(f"observation.images.{CAMERA}", "video", NATIVE_SHAPE),
}
"""Video shape is the native EgoDex 1080p; the actual size of an episode is in its VideoRef."""


# ------------------------------------------------------------------------------------------ discover
def discover(root: str) -> list[SourceRef]:
    """All episodes under `root` (`<split>/<task>/<n>.hdf5`), sorted by source_id.

    An HDF5 without its MP4, and an MP4 without its HDF5, are still listed so `read` can reject
    them with a reason (nothing is silently dropped). If `root` is itself a split folder
    (`<task>/<n>.hdf5`), its name is used as the split.
    """
    if remote.is_url(root):
        found = _scan_remote(root)
    else:
        base = Path(root)
        found = [ep for split_dir in _subdirs(base) for ep in _scan_split(split_dir, split_dir.name)]
        if not found:
            found = _scan_split(base, base.name)
    refs = []
    for split, task, stem, files in found:
        hdf5, mp4 = files.get(".hdf5"), files.get(".mp4")
        uri = str(hdf5) if hdf5 else str(mp4)
        extra = (("video", str(mp4) if mp4 else ""), ("hdf5", str(hdf5) if hdf5 else ""),
                 ("split", split), ("task", task), ("episode", stem))
        refs.append(SourceRef(f"{SOURCE}/{split}/{task}/{stem}", SOURCE, uri, "", extra))
    return sorted(refs)


def _scan_split(split_dir: Path, split: str) -> list[tuple[str, str, str, dict[str, Path]]]:
    out = []
    for task_dir in _subdirs(split_dir):
        pairs: dict[str, dict[str, Path]] = {}
        with os.scandir(task_dir) as it:
            for entry in it:
                stem, ext = os.path.splitext(entry.name)
                if ext in (".hdf5", ".mp4") and entry.is_file() and not entry.name.startswith("."):
                    pairs.setdefault(stem, {})[ext] = Path(entry.path)
        out.extend((split, task_dir.name, stem, files) for stem, files in pairs.items())
    return out


def _scan_remote(root: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """`_scan_split` over an object-store listing (one recursive LIST instead of a directory walk)."""
    by_depth: dict[int, dict[tuple[str, str, str], dict[str, str]]] = {2: {}, 3: {}}
    for url in remote.list_files(root):
        parts = remote.relative(url, root).split("/")
        if len(parts) not in by_depth or any(p.startswith((".", "__MACOSX")) for p in parts):
            continue
        stem, ext = os.path.splitext(parts[-1])
        if ext not in (".hdf5", ".mp4"):
            continue
        split, task = (parts[0], parts[1]) if len(parts) == 3 else (posixpath.basename(root.rstrip("/")), parts[0])
        by_depth[len(parts)].setdefault((split, task, stem), {})[ext] = url
    found = by_depth[3] or by_depth[2]      # as locally: `<split>/<task>/<n>`, else `root` is the split
    return [(split, task, stem, files) for (split, task, stem), files in found.items()]


def _subdirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX")))


# ------------------------------------------------------------------------------------------ read
def read(ref: SourceRef, **options: Any) -> Episode:
    """One EgoDex episode; raises `EpisodeError` for anything unusable (see module doc)."""
    hdf5 = _hdf5_of(ref)
    if not hdf5:
        raise EpisodeError(RejectReason.UNREADABLE, f"{ref.uri}: video without its .hdf5 pose file", path=ref.uri)
    probed: dict[str, VideoRef] = {}

    def check_claims(n: int) -> None:
        """Runs once the HDF5's dataset shapes are known and before any of them is read: the frame count
        they claim must match the video's (a few container reads) and fit the per-episode memory bound."""
        if n < MIN_FRAMES:
            raise EpisodeError(RejectReason.EMPTY_EPISODE, f"{hdf5}: {n} pose frames (< {MIN_FRAMES})", frames=n)
        video = _probe_video(ref.get("video"), hdf5)
        if abs(video.fps - FPS) > FPS_TOLERANCE * FPS:
            raise EpisodeError(RejectReason.FPS_MISMATCH, f"{video.uri}: {video.fps:g} fps, expected {FPS:g}",
                               fps=video.fps)
        if video.frame_count != n:
            raise EpisodeError(RejectReason.FRAME_COUNT_MISMATCH,
                               f"{hdf5}: {n} pose frames but the video has {video.frame_count}",
                               poses=n, video=video.frame_count)
        check_episode_size(hdf5, n)
        probed["video"] = video

    raw = _read_hdf5(hdf5, check_claims)
    n = raw["transforms"].shape[1]
    _validate_transforms(raw["transforms"], hdf5)
    video = probed["video"]

    columns = human_columns(raw["transforms"])
    derived: dict[str, str] = {}
    for side in SIDES:
        conf = raw["confidences"][side]
        if conf is None:
            conf = np.ones((n, len(HAND_JOINTS[side])), np.float32)
            derived[f"human.{side}_hand.confidence"] = "no /confidences in the file: filled with 1.0"
        columns[f"human.{side}_hand.confidence"] = conf
    frames = build_frames(np.arange(n, dtype=np.float64) / FPS, {key: columns[key] for key in FEATURES
                                                                 if FEATURES[key].dtype != "video"})
    attrs = raw["attrs"]
    derived.update(raw["attr_notes"])
    task_name = ref.get("task") or Path(hdf5).parent.name
    task, how = instruction(attrs, task_name)
    if how:
        derived["task"] = how
    meta = EpisodeMeta(
        source=SOURCE, source_id=ref.source_id, embodiment="human", fps=FPS, task=task, task_name=task_name,
        task_category=ref.get("split"),
        quality={f"{s}_hand_confidence_mean": float(np.mean(columns[f"human.{s}_hand.confidence"])) for s in SIDES},
        derived=derived,
        extra={"camera_intrinsic": raw["intrinsic"].tolist(), "video_width": video.width,
               "video_height": video.height, "video_codec": video.codec, "split": ref.get("split"),
               "episode": ref.get("episode"), "attrs": attrs,
               "frame_convention": "camera frame of the current frame (OpenCV axes: x right, y down, z forward)",
               "wrist_rotation": "palmar hand frame of the keypoints (x wrist->index/middle knuckles, z palm normal)"},
    )
    return Episode(meta, frames, dict(FEATURES), {video.key: video})


def _hdf5_of(ref: SourceRef) -> str:
    """The episode's pose file ("" when the ref names none)."""
    return ref.get("hdf5") or (ref.uri if ref.uri.endswith(".hdf5") else "")


def _read_hdf5(path: str, check_claims: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """Transforms stacked as (1 + 50, N, 4, 4) in REQUIRED_TRANSFORMS order, confidences, attrs.

    Datasets are read with h5py's low-level API straight into one preallocated float32 block:
    the high-level `Group[...]` path costs ~0.3 ms of Python per dataset, and an episode has ~100.
    Nothing is allocated from a claimed size before `check_claims(n)` has accepted the frame count the
    shapes claim (a 440 KB file can claim 300 k frames); anything h5py raises names the dataset.
    """
    import h5py

    try:
        # Remote: one GET into memory (pose files are a few MB; h5py's many small reads through a
        # file object would each be a round trip).
        f = h5py.File(io.BytesIO(remote.read_bytes(path)) if remote.is_url(path) else path, "r")
    except FileNotFoundError:
        raise EpisodeError(RejectReason.UNREADABLE, f"{path}: no such file", path=path) from None
    except OSError as exc:
        raise EpisodeError(RejectReason.UNREADABLE, f"{path}: not a readable HDF5 file ({exc})", path=path) from None
    reading = "/"
    with f:
        try:
            for group in ("camera/intrinsic", "transforms"):
                if group not in f:
                    raise EpisodeError(RejectReason.MISSING_KEY, f"{path}: missing /{group}", key=group)
            reading = "/transforms"
            ids = _open_datasets(f, "transforms", REQUIRED_TRANSFORMS)
            missing = [name for name, dsid in zip(REQUIRED_TRANSFORMS, ids) if dsid is None]
            if missing:
                raise EpisodeError(RejectReason.MISSING_KEY, f"{path}: missing /transforms/{missing[0]}"
                                   + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""), key=missing[0])
            n = ids[0].shape[0] if len(ids[0].shape) == 3 else -1
            for name, dsid in zip(REQUIRED_TRANSFORMS, ids):
                if dsid.shape != (n, 4, 4):
                    raise EpisodeError(RejectReason.SHAPE_MISMATCH,
                                       f"{path}: /transforms/{name} has shape {dsid.shape}, expected ({n}, 4, 4)",
                                       key=name, shape=list(dsid.shape))
                _check_numeric(path, f"transforms/{name}", dsid)
            reading = "/camera/intrinsic"
            intrinsic_ds = f["camera/intrinsic"]
            if not isinstance(intrinsic_ds, h5py.Dataset) or intrinsic_ds.shape != (3, 3):
                raise EpisodeError(RejectReason.SHAPE_MISMATCH, f"{path}: /camera/intrinsic has shape "
                                   f"{getattr(intrinsic_ds, 'shape', None)}, expected (3, 3)", key="camera/intrinsic")
            _check_numeric(path, "camera/intrinsic", intrinsic_ds.id)
            check_claims(n)
            transforms = np.empty((len(ids), n, 4, 4), np.float32)
            if n > 0:
                for k, dsid in enumerate(ids):
                    reading = f"/transforms/{REQUIRED_TRANSFORMS[k]}"
                    dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, transforms[k])
            reading = "/camera/intrinsic"
            intrinsic = np.asarray(intrinsic_ds[()], dtype=np.float64)
            check_finite("camera/intrinsic", intrinsic)
            reading = "/confidences"
            confidences = {side: _confidences(f, path, HAND_JOINTS[side], n) for side in SIDES}
            reading = "root attributes"
            attrs, notes = _read_attrs(f, path)
        except EpisodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - h5py raises many types on crafted files: name what was read
            raise EpisodeError(RejectReason.UNREADABLE, f"{path}: {reading}: unreadable ({type(exc).__name__}: {exc})",
                               path=path, dataset=reading) from None
    return {"transforms": transforms, "intrinsic": intrinsic, "confidences": confidences, "attrs": attrs,
            "attr_notes": notes}


def _check_numeric(path: str, name: str, dsid: Any) -> None:
    """A dataset read as float32 must hold plain numbers (not strings, compound records or references)."""
    kind = dsid.dtype.kind
    if kind not in "fiub":
        raise EpisodeError(RejectReason.SHAPE_MISMATCH, f"{path}: /{name} holds {dsid.dtype} values, not numbers",
                           key=name, dtype=str(dsid.dtype))


def check_episode_size(path: str, n: int) -> None:
    """Refuse an episode whose claimed frame count would need more than MAX_EPISODE_BYTES to convert."""
    need = n * BYTES_PER_FRAME
    if need > MAX_EPISODE_BYTES:
        raise EpisodeError(RejectReason.OUT_OF_RANGE,
                           f"{path}: {n} frames would need ~{need / 2**30:.1f} GiB to convert, above the "
                           f"per-episode bound of {MAX_EPISODE_BYTES / 2**30:.0f} GiB "
                           f"({MAX_EPISODE_BYTES // BYTES_PER_FRAME} frames, "
                           f"{MAX_EPISODE_BYTES // BYTES_PER_FRAME / FPS / 60:.0f} min at {FPS:g} fps): split it",
                           frames=n, bytes=need)


def _open_datasets(f: Any, group: str, names: tuple[str, ...]) -> list[Any]:
    """Low-level dataset ids (None where absent) for `group/<name>`."""
    import h5py

    ids = []
    for name in names:
        try:
            ids.append(h5py.h5d.open(f.id, f"{group}/{name}".encode()))
        except KeyError:
            ids.append(None)
    return ids


def _confidences(f: Any, path: str, joints: tuple[str, ...], n: int) -> np.ndarray | None:
    """(N, 25) or None when the file has no confidences for this hand (they are optional)."""
    import h5py

    if "confidences" not in f:
        return None
    ids = _open_datasets(f, "confidences", joints)
    if any(dsid is None for dsid in ids):
        return None
    for joint, dsid in zip(joints, ids):
        if int(np.prod(dsid.shape)) != n:
            raise EpisodeError(RejectReason.SHAPE_MISMATCH,
                               f"{path}: /confidences/{joint} has shape {dsid.shape}, expected ({n},)")
        _check_numeric(path, f"confidences/{joint}", dsid)
    conf = np.empty((len(joints), n), np.float32)
    if n > 0:
        for k, dsid in enumerate(ids):
            dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, conf[k].reshape(dsid.shape))
    conf = np.ascontiguousarray(conf.T)
    check_finite("confidences", conf)
    return conf


def _read_attrs(f: Any, path: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Root attributes as plain JSON values, and a note (for `meta.derived`) per attribute that had to be
    converted or dropped: a crafted or unusual attribute never costs the episode."""
    attrs: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for key in sorted(f.attrs.keys()):
        try:
            value = f.attrs[key]
        except Exception as exc:  # noqa: BLE001 - h5py cannot even decode it
            notes[f"attrs.{key}"] = f"unreadable HDF5 attribute ({type(exc).__name__}): dropped"
            continue
        try:
            attrs[key] = _attr(value)
        except _Unrepresentable as why:
            notes[f"attrs.{key}"] = f"{why}: not representable in JSON, dropped"
            continue
        kinds = _converted_kinds(value)
        if kinds:
            notes[f"attrs.{key}"] = f"{' and '.join(kinds)} converted to JSON ({_CONVERSIONS})"
    return attrs, notes


_CONVERSIONS = "complex -> {real, imag}, compound record -> {field: value}"


class _Unrepresentable(ValueError):
    pass


def _converted_kinds(value: Any) -> list[str]:
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return ["complex number"] if isinstance(value, complex) else []
    kinds = []
    if dtype.kind == "c":
        kinds.append("complex number")
    if dtype.names:
        kinds.append("compound record")
    return kinds


def _attr(value: Any) -> Any:
    """HDF5 attribute -> plain JSON value (bytes decoded as UTF-8, arrays as lists, complex numbers as
    {real, imag}, compound records as {field: value}); object and region references raise _Unrepresentable."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, complex):
        return {"real": _attr(value.real), "imag": _attr(value.imag)}
    if isinstance(value, np.ndarray):
        if value.dtype.names:
            flat = value.reshape(-1)
            return [_attr(v) for v in flat] if value.ndim else _attr(value[()])
        if value.dtype.kind == "O":
            return [_attr(v) for v in value.reshape(-1)] if value.ndim else _attr(value[()])
        return [_attr(v) for v in value.reshape(-1).tolist()] if value.ndim else _attr(value.item())
    if isinstance(value, np.void) and value.dtype.names:
        return {name: _attr(value[name]) for name in value.dtype.names}
    if isinstance(value, np.generic):
        return _attr(value.item())
    raise _Unrepresentable(f"{type(value).__module__}.{type(value).__name__}"
                           + (" (an HDF5 reference)" if "Reference" in type(value).__name__ else ""))


def instruction(attrs: dict[str, Any], task_name: str) -> tuple[str, str]:
    """(instruction, how-derived note or ""): Apple's rule — `llm_description`, or `llm_description2`
    for reversible tasks whose `which_llm_description` is not '1'; else fall back, and say so."""
    def text(key: str) -> str:
        value = attrs.get(key)
        return value.strip() if isinstance(value, str) else ""

    primary = text("llm_description")
    if text("llm_type") == "reversible" and str(attrs.get("which_llm_description", "1")).strip() != "1":
        primary = text("llm_description2") or primary
    if primary:
        return primary, ""
    for key in ("description", "task"):
        if text(key):
            return text(key), f"no llm_description: taken from the '{key}' attribute"
    return task_name.replace("_", " ").strip().capitalize(), "no description attributes: task folder name"


def _validate_transforms(transforms: np.ndarray, path: str) -> None:
    """Finite and rigid (schemas.validation.check_rigid), naming the failing joint and frame."""
    joints, n = transforms.shape[:2]
    flat = transforms.reshape(joints * n, 4, 4)
    try:
        check_finite("transforms", flat)
        check_rigid("transforms", flat)
    except EpisodeError as err:
        bad = ~np.isfinite(flat)
        where = int(np.argwhere(bad)[0][0]) if bad.any() else int(err.details.get("frame", 0))
        joint, frame = REQUIRED_TRANSFORMS[where // n], where % n
        what = "has non-finite values" if err.reason is RejectReason.NON_FINITE else "is not a rigid transform"
        raise EpisodeError(err.reason, f"{path}: /transforms/{joint} frame {frame} {what}", joint=joint,
                           frame=frame) from None


# ------------------------------------------------------------------------------------------ math
def rigid_inverse(T: np.ndarray) -> np.ndarray:
    """Inverse of (..., 4, 4) rigid transforms without a general matrix inverse."""
    out = np.zeros_like(T)
    rt = np.swapaxes(T[..., :3, :3], -1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def human_columns(transforms: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame float32 columns from (1 + 50, N, 4, 4) world transforms (camera first, then the
    25 left and 25 right hand joints in `human_hand_joints` order)."""
    cam = transforms[0].astype(np.float64)
    n = cam.shape[0]
    in_cam = np.matmul(rigid_inverse(cam)[None], transforms[1:].astype(np.float64))   # (50, N, 4, 4)
    cols: dict[str, np.ndarray] = {}
    action = np.empty((n, HUMAN_ACTION_48.size), np.float64)
    joints = len(HAND_JOINTS[SIDES[0]])
    for k, side in enumerate(SIDES):
        hand = in_cam[joints * k:joints * (k + 1)]              # (25, N, 4, 4)
        points = np.transpose(hand[:, :, :3, 3], (1, 0, 2))     # (N, 25, 3)
        cols[f"human.{side}_hand.keypoints"] = points.reshape(n, -1).astype(np.float32)
        action[:, HUMAN_ACTION_48.slice(f"{side}_hand.wrist_pos")] = hand[0, :, :3, 3]
        action[:, HUMAN_ACTION_48.slice(f"{side}_hand.wrist_rot")] = rot6d(palm_frame(points, side))
        action[:, HUMAN_ACTION_48.slice(f"{side}_hand.tips")] = points[:, HUMAN_HAND_TIPS, :].reshape(n, -1)
    cols["observation.state"] = action.astype(np.float32)
    cols["action"] = cols["observation.state"].copy()
    cols["human.camera.pose"] = cam.reshape(n, -1).astype(np.float32)
    return cols


# ------------------------------------------------------------------------------------------ video
def _probe_video(path: str, hdf5: str) -> VideoRef:
    """Container metadata only: stream frame count, rate, size, codec. Never decodes the stream."""
    import av

    remote_info = remote.info(path) if path and remote.is_url(path) else None
    if not path or not (remote_info if remote.is_url(path) else os.path.exists(path)):
        expected = os.path.splitext(hdf5)[0] + ".mp4" if remote.is_url(hdf5) else str(Path(hdf5).with_suffix(".mp4"))
        raise EpisodeError(RejectReason.MISSING_VIDEO, f"{hdf5}: no video beside it ({Path(expected).name})",
                           path=path or expected)
    try:
        # Local: first without decoding (the header holds everything when it has a frame count and rate);
        # remote keeps the one probe that stops reading once the decoder knows the stream (fewer bytes).
        header = None if remote_info else _stream_header(path, path, skip_decoding=True)
        if header is None:
            # Remote: PyAV reads the container header through a file object (a few range requests).
            opened = remote.open_remote(path, block_size=remote.PROBE_BLOCK_SIZE) if remote_info else nullcontext(path)
            with opened as source:
                header = _stream_header(source, path, skip_decoding=False)
        frames, fps, width, height, codec = header
    except EpisodeError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        text = str(exc).replace("'<none>'", repr(path)) if remote_info else str(exc)   # PyAV names file objects <none>
        raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"{path}: cannot open video ({text})", path=path) from None
    if frames <= 0 or width <= 0 or height <= 0:
        raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"{path}: video stream has no frames", path=path)
    if remote_info:
        with remote.open_remote(path, cache="none") as fh:
            truncated = mp4_box_truncation(fh, int(remote_info["size"]))
    else:
        truncated = mp4_truncation(path)
    if truncated:
        raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"{path}: {truncated}", path=path)
    return VideoRef(camera=CAMERA, kind="video", uri=str(path), frame_count=frames, fps=fps, width=width,
                    height=height, codec=codec)


# FFmpeg's stream probe (avformat_find_stream_info) decodes the first frames to learn what the header
# already says: ~45-120 ms of CPU per 1080p file, a whole frame-decoder start-up before the writer's own
# decode. With the decoder told to skip every frame, and the probe told not to read packets past the header
# (it would read up to 5 MB or 5 s of them looking for the pixel format no skipped frame reveals), the same
# open costs ~1 ms and reads ~0.5 MB (a 10 s 1080p file: 0.7 vs 2.6-7 ms, 0.53 vs 0.99 MB). FFmpeg then warns
# that it could not find the codec's parameters; that expected warning is muted, its errors are not.
_NO_DECODE = [{"skip_frame": "all"}]     # per stream; `* 8` below covers any stream order seen in practice
_HEADER_ONLY = {"probesize": "32", "analyzeduration": "0"}


def _stream_header(source: Any, path: str, skip_decoding: bool) -> tuple[int, float, int, int, str] | None:
    """(frames, fps, width, height, codec) of the first video stream. With `skip_decoding`, None when the
    header lacks a frame count or an average rate (e.g. fragmented MP4), which only a decoding probe
    estimates; the caller then probes again with decoding."""
    import av

    options = {"stream_options": _NO_DECODE * 8, "options": _HEADER_ONLY} if skip_decoding else {}
    with ffmpeg_warnings_muted() if skip_decoding else nullcontext(), \
            av.open(source, metadata_errors="ignore", **options) as container:
        if not container.streams.video:
            raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"{path}: no video stream", path=path)
        stream = container.streams.video[0]
        if skip_decoding and not (stream.frames and stream.average_rate):
            return None
        frames = int(stream.frames or 0)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if frames <= 0 and stream.duration and stream.time_base and fps:
            frames = int(round(float(stream.duration * stream.time_base) * fps))
        return frames, fps, int(stream.codec_context.width), int(stream.codec_context.height), stream.codec_context.name


def mp4_truncation(path: str) -> str:
    """"" if the file's top-level ISO-BMFF boxes fit in the file, else what is cut off.

    A truncated MP4 whose index (`moov`) comes first still opens and reports its full frame count;
    its `mdat` box then claims more bytes than the file has. Reading the box headers costs a few
    seeks, so this check runs on every episode instead of decoding the stream.
    """
    with open(path, "rb") as f:
        return mp4_box_truncation(f, os.path.getsize(path))


def mp4_box_truncation(f: Any, size: int) -> str:
    """`mp4_truncation` over an open binary file object of `size` bytes (local or remote)."""
    offset = 0
    while offset + 8 <= size:
        f.seek(offset)
        header = f.read(16)
        box_size, kind = int.from_bytes(header[0:4], "big"), header[4:8].decode("latin-1")
        if box_size == 1 and len(header) >= 16:
            box_size = int.from_bytes(header[8:16], "big")
        elif box_size == 0:                     # box extends to the end of the file
            return ""
        if box_size < 8:
            return f"corrupt MP4 box header at byte {offset}"
        if offset + box_size > size:
            return f"truncated: '{kind}' box needs {offset + box_size} bytes, file has {size}"
        offset += box_size
    return ""



# ------------------------------------------------------------------------------------------ the Source
TOKEN_RATE = hand48.RATE
"""Rate (Hz) of the 48-D delta chunks FAST tokenizes (the Ψ₀ pre-training representation)."""
CAMERA_POSE_COLUMN = "human.camera.pose"
TOKEN_INPUTS = {"hand48": "action", "camera_pose": CAMERA_POSE_COLUMN}
"""The stage-1 chunks: deltas of the absolute 48-D action, each chunk in its first frame's camera."""


def delta_token_chunks(episode: Episode, horizon: int, rate: float = TOKEN_RATE) -> np.ndarray:
    """(T, horizon, 48) HUMAN_ACTION_48_DELTA chunks starting at every frame (source rate = episode fps),
    from the absolute 48-D action and the camera poses."""
    if CAMERA_POSE_COLUMN not in episode.frames.column_names:
        raise EpisodeError(RejectReason.MISSING_KEY, f"tokenize needs column {CAMERA_POSE_COLUMN!r}")
    return hand48.chunks(input_columns(EGODEX, episode), episode.meta.fps, horizon, rate)


@dataclass(frozen=True)
class EgoDex(Hand48Tokens):
    """Apple's EgoDex: egocentric 1080p video + ARKit hand/body joint poses of people doing tasks."""

    name: str = SOURCE
    token_column: str | None = None          # tokens are derived 48-D delta chunks, not a recorded column
    token_space: str = hand48.SPACE
    defaults: JobDefaults = JobDefaults(token_horizon=1, episodes_per_shard=64)

    @property
    def token_inputs(self) -> dict[str, str]:
        return dict(TOKEN_INPUTS)

    def discover(self, root: str) -> list[SourceRef]:
        return discover(root)

    def read(self, ref: SourceRef) -> Episode:
        return read(ref)

    def videos(self, ref: SourceRef) -> dict[str, VideoRef] | None:
        """The episode's camera from its MP4's header alone (~1 ms, the probe `read` makes too), so a job can
        start decoding it while `read` reads the HDF5 (~10 ms). None where `read` will reject the episode."""
        hdf5 = _hdf5_of(ref)
        if not hdf5:
            return None
        try:
            video = _probe_video(ref.get("video"), hdf5)
        except EpisodeError:
            return None
        return {video.key: video}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "summary": "EgoDex (hdf5 + mp4): human hand poses in the camera frame, egocentric video",
            "layout": "<split>/<task>/<n>.hdf5 + <n>.mp4 (local path or s3:// URL)",
            "fps": FPS, "embodiments": ["human"], "features": features_summary(FEATURES),
            "derived": {
                "observation.state == action": f"the absolute {HUMAN_ACTION_48.size}-D human representation "
                                               "(wrist pose + fingertips per hand) from the joint transforms",
                "frame": "every vector in the current frame's camera frame (OpenCV axes)",
                "task": "llm_description (Apple's rule), else description attributes, else the task folder",
            },
            "tokens": f"{HUMAN_ACTION_48_DELTA.size}-D delta chunks (HUMAN_ACTION_48_DELTA) at {TOKEN_RATE:g} Hz "
                      "from the action and camera-pose columns",
            "hand_qa": "MediaPipe detections on sampled frames vs the projected hand joints (--hand-qa)",
            "defaults": asdict(self.defaults),
        }

    def token_chunks(self, episode: Episode, horizon: int) -> np.ndarray:
        return delta_token_chunks(episode, horizon)

    def hand_qa(self) -> HandQA:
        return HandQA()


EGODEX = EgoDex()
