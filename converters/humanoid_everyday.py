"""Humanoid Everyday reader: per-task zip archives (read in place) or extracted task folders.

Layout (shared/reference/humanoid_everyday.md): `<task>.zip` or `[<category>/]<task>/`, holding
`[<task>/]episode_<k>/data.json` (a JSON list, one dict per 30 Hz step) + the image / depth / lidar
files it names. Archives may lack the root folder and may carry `__MACOSX/` junk; both are handled.

What `read` produces (one feature set for G1 and H1; the embodiment is in the metadata):
- `observation.state` (PSI0_STATE 36) = hands 14 + `arm_state` 14 + previous torso rpy 3 +
  previous torso height 1 (from the derived lower-body command of the previous frame; rpy 0 and
  height 0.75 at frame 0), padded to 36.
- `action` (PSI0_ACTION 36) = hands 14 + arms 14 + lower-body command 8, and `action.mask` (36, 1 = a
  label, 0 = masked out of the loss).
  * arms: `actions.sol_q` (the IK solution sent to the arm controller; the last 14 when 29-D),
    falling back to `left_angles + right_angles` when a file has no `sol_q`.
  * hands: HE records no hand *command*, so the measured `hand_state` is used, mapped into the hand
    blocks by the embodiment's tables (`schemas.embodiments`): Dex3-1 (14): as-is. Inspire (12 =
    right 6 + left 6, Unitree's DDS order): 0..1 closures (1 = open) -> joint angles
    `lo + (1 - q) (hi - lo)` within the Inspire limits, then ordered thumb -> little (reversed
    hardware order) and zero-padded to 7 per hand, as the reference post-training converter does.
  * embodiment: the body from `robot_type` (absent = H1), the hand from the width of `hand_state`
    (`robot_embodiment`): G1 + Dex3-1 `g1_dex3`, G1 + Inspire `g1_inspire`, H1 + Inspire `h1_inspire`.
  * lower body: HE has no lower-body command; each dim is DERIVED with AMO's meaning from the waist
    and leg joints, IMU and odometry, or masked where the robot has no such state
    (`converters.lower_body`; H1: torso roll, pitch and height); `meta.derived` says how, per dim.
- `action.hand48` (HUMAN_ACTION_48): the action's arms and hands by forward kinematics, in the head
  camera frame: the stage-1 token space shared with EgoDex (`converters.retarget.robot_hand48`), and
  `observation.head_camera.pose` (that camera in the odometry world) for its 10 Hz deltas.
- raw columns: `observation.arm_state`, `observation.leg_state` (15; H1's 13 zero-padded),
  `observation.hand_state_raw` (14; H1's 12 zero-padded), `observation.imu.*`,
  `observation.odometry.*`, `action.lower_body` (8).
- camera: `VideoRef(kind="images")` over the JPEG/PNG members; the shard writer encodes them.
- depth / lidar (`with_depth=True`): per-frame *references* in `meta.extra["depth"|"lidar"]`
  (a dense float32 depth column would be ~1 MB/frame); load one frame with `load_depth` /
  `load_lidar`.
"""
from __future__ import annotations

import io
import json
import lzma
import os
import posixpath
import re
import threading
import zipfile
from collections import OrderedDict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from converters.lower_body import LowerBody, describe_mask
from converters.lower_body import derive as derive_command
from converters.retarget.frames import Calibration
from converters.retarget.robot_hand48 import hand48_from_action
from converters.source import Hand48Tokens, JobDefaults, features_summary, task_key, task_sentence
from converters.tokenize import hand48
from schemas import HUMAN_ACTION_48, LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT, PSI0_ACTION, PSI0_STATE, Episode, \
    EpisodeError, EpisodeMeta, FeatureSpec, RejectReason, SourceRef, VideoRef, embodiments
from schemas.actions import PSI0_HANDS
from schemas.embodiments import G1_BODY, Embodiment
from schemas.episode import build_frames
from schemas.validation import MIN_FRAMES, check_finite, check_timestamps

from schemas import remote

SOURCE = "humanoid_everyday"
FPS = 30.0
CAMERA = "egocentric"
EPISODE_RE = re.compile(r"episode_(\d+)")
DESCRIPTION_FILES = ("task_description_dict.json", "task_descriptions.json")
JUNK = ("__MACOSX",)
MAX_FILE_BYTES = 256 << 20
"""Largest single file of an episode read into memory (data.json of a 10-minute episode is ~10 MB)."""
MAX_DEPTH_BYTES = 16 << 20
"""Largest decompressed depth frame (a 640x480 uint16 frame is 0.6 MB, 2048x2048 is 8 MB): an LZMA bomb stops
there."""

# Depth camera intrinsics used by the public loader (fx, fy, cx, cy); the colour camera's are per robot
# body (`BodySpec.color_intrinsics`).
DEPTH_INTRINSICS = (389.07278, 389.07278, 321.61887, 238.43630)
DEFAULT_FAMILY = "h1"
"""HE writes `robot_type` for G1 only: an episode without one is an H1."""
SOL_Q_BODY = G1_BODY
"""A whole-body `actions.sol_q` is the G1 29-DoF SDK vector; its `arms` slice holds the arm command."""
_RAW_LAYOUT = embodiments.get()
"""Raw columns are named by the default embodiment's layout (G1, Dex3-1); others record their names."""


CAMERA_POSE_NAMES = tuple(f"T_world_camera.r{r}c{c}" for r in range(4) for c in range(4))


def _names(prefix: str, dims: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{prefix}.{d}" for d in dims)


FEATURES: dict[str, FeatureSpec] = {
    spec.key: spec for spec in (
        FeatureSpec("observation.state", "float32", (PSI0_STATE.size,), PSI0_STATE.dims),
        FeatureSpec("action", "float32", (PSI0_ACTION.size,), PSI0_ACTION.dims),
        FeatureSpec("action.lower_body", "float32", (LOWER_BODY_COMMAND.size,), LOWER_BODY_COMMAND.dims),
        FeatureSpec("action.mask", "float32", (PSI0_ACTION.size,), PSI0_ACTION.dims),
        FeatureSpec("action.hand48", "float32", (HUMAN_ACTION_48.size,), HUMAN_ACTION_48.dims),
        FeatureSpec("observation.head_camera.pose", "float32", (16,), CAMERA_POSE_NAMES),
        FeatureSpec("observation.arm_state", "float32", (_RAW_LAYOUT.body.arms.size,), _RAW_LAYOUT.body.arms.dims),
        FeatureSpec("observation.leg_state", "float32", (_RAW_LAYOUT.body.legs_waist.size,),
                    _RAW_LAYOUT.body.legs_waist.dims),
        FeatureSpec("observation.hand_state_raw", "float32", (PSI0_HANDS.size,), PSI0_HANDS.dims),
        FeatureSpec("observation.imu.rpy", "float32", (3,), ("roll", "pitch", "yaw")),
        FeatureSpec("observation.imu.quaternion", "float32", (4,), ("w", "x", "y", "z")),
        FeatureSpec("observation.imu.accelerometer", "float32", (3,), ("x", "y", "z")),
        FeatureSpec("observation.imu.gyroscope", "float32", (3,), ("x", "y", "z")),
        FeatureSpec("observation.odometry.position", "float32", (3,), ("x", "y", "z")),
        FeatureSpec("observation.odometry.velocity", "float32", (3,), ("x", "y", "z")),
        FeatureSpec("observation.odometry.rpy", "float32", (3,), ("roll", "pitch", "yaw")),
        FeatureSpec("observation.odometry.quat", "float32", (4,), ("w", "x", "y", "z")),
        FeatureSpec(f"observation.images.{CAMERA}", "video", (480, 640, 3)),
    )
}
"""Raw columns are named by the G1 / Dex3-1 layout; other embodiments record their own names in
meta.extra["names"] (`raw_names`)."""


def _padded_names(names: tuple[str, ...], width: int) -> tuple[str, ...]:
    return tuple(names) + tuple(f"pad.{i}" for i in range(width - len(names)))


def raw_names(emb: Embodiment) -> dict[str, tuple[str, ...]]:
    """Dim names of the raw columns whose layout differs from the default embodiment's (zero-padded to the
    feature width), e.g. H1: legs + waist yaw, Inspire hands right then left, H1 arm joints."""
    names: dict[str, tuple[str, ...]] = {}
    body, hand, ref = emb.body, emb.hand, _RAW_LAYOUT
    if body.legs_waist.dims != ref.body.legs_waist.dims:
        names["observation.leg_state"] = _padded_names(body.legs_waist.dims, FEATURES["observation.leg_state"].shape[0])
    if hand.stored_names() != ref.hand.stored_names():
        names["observation.hand_state_raw"] = _padded_names(hand.stored_names(),
                                                            FEATURES["observation.hand_state_raw"].shape[0])
    if body.arms.dims != ref.body.arms.dims:
        names["observation.arm_state"] = body.arms.dims
        names["action.arms"] = body.arms.dims
    return names


# ------------------------------------------------------------------------------------------ discover
def discover(root: str) -> list[SourceRef]:
    """Every episode under `root` (zips at any depth, extracted `episode_<k>/` folders), sorted.

    Broken archives and episode folders without `data.json` are listed too, so `read` rejects them
    with a reason. The same task as both zip and folder yields two refs with the same source_id
    (the pipeline's planner rejects the later one as DUPLICATE_ID).
    """
    if remote.is_url(root):
        return _discover_remote(root)
    base = Path(root)
    descriptions = next((str(base / n) for n in DESCRIPTION_FILES if (base / n).is_file()), "")
    refs: list[SourceRef] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in JUNK and not d.startswith("."))
        here = Path(dirpath)
        for name in sorted(filenames):
            if name.lower().endswith(".zip") and not name.startswith("."):
                category = here.name if here != base else ""
                refs.extend(_zip_refs(here / name, category, descriptions))
        if EPISODE_RE.fullmatch(here.name) and here != base:
            task_dir = here.parent
            rel = task_dir.relative_to(base).parts if task_dir != base else ()
            category = rel[-2] if len(rel) >= 2 else ""
            extra = (("kind", "dir"), ("task_dir", task_dir.name), ("category", category),
                     ("descriptions", descriptions))
            refs.append(SourceRef(f"{SOURCE}/{task_key(task_dir.name)}/{here.name}", SOURCE, str(here), "", extra))
            dirnames[:] = []            # frames live below; nothing else to find there
    return sorted(refs)


def _discover_remote(root: str) -> list[SourceRef]:
    """`discover` over one recursive object-store listing, with the directory walk's rules: junk and
    dot folders skipped, nothing looked for below an `episode_<k>/` folder."""
    files = remote.list_files(root)
    names = {remote.relative(url, root): url for url in files}
    descriptions = next((names[n] for n in DESCRIPTION_FILES if n in names), "")
    refs: list[SourceRef] = []
    episode_dirs: set[tuple[str, ...]] = set()
    for rel, url in sorted(names.items()):
        parts = rel.split("/")
        dirs, name = parts[:-1], parts[-1]
        episode = None
        for i, folder in enumerate(dirs):
            if folder in JUNK or folder.startswith("."):
                break
            if EPISODE_RE.fullmatch(folder):
                episode = tuple(dirs[:i + 1])
                break
        else:
            if name.lower().endswith(".zip") and not name.startswith("."):
                refs.extend(_zip_refs(url, dirs[-1] if dirs else "", descriptions))
        if episode is not None:
            episode_dirs.add(episode)
    for episode in sorted(episode_dirs):
        task_dir = episode[-2] if len(episode) >= 2 else posixpath.basename(root.rstrip("/"))
        rel = episode[:-1]
        category = rel[-2] if len(rel) >= 2 else ""
        extra = (("kind", "dir"), ("task_dir", task_dir), ("category", category), ("descriptions", descriptions))
        refs.append(SourceRef(f"{SOURCE}/{task_key(task_dir)}/{episode[-1]}", SOURCE,
                              remote.join(root, *episode), "", extra))
    return sorted(refs)


def _zip_refs(path: Path | str, category: str, descriptions: str) -> list[SourceRef]:
    path_name = os.path.basename(str(path))
    task_dir = os.path.splitext(path_name)[0]
    common = (("task_dir", task_dir), ("category", category), ("descriptions", descriptions))
    try:
        names = sorted(open_zip(str(path))[1])
    except (zipfile.BadZipFile, OSError) as exc:
        return [SourceRef(f"{SOURCE}/{task_key(task_dir)}/{path_name}", SOURCE, str(path), "",
                          (("kind", "zip"), ("error", f"not a readable zip archive ({exc})")) + common)]
    episodes: set[str] = set()
    for name in names:
        parts = name.split("/")
        if parts[0] in JUNK or any(p.startswith("._") for p in parts):
            continue
        for i, part in enumerate(parts[:-1]):
            if EPISODE_RE.fullmatch(part):
                episodes.add("/".join(parts[:i + 1]) + "/")
                break
    return [SourceRef(f"{SOURCE}/{task_key(task_dir)}/{member.rstrip('/').rsplit('/', 1)[-1]}", SOURCE, str(path),
                      member, (("kind", "zip"),) + common) for member in sorted(episodes)]


# ------------------------------------------------------------------------------------------ episode files
_ZIPS: OrderedDict[tuple, tuple[zipfile.ZipFile, frozenset[str]]] = OrderedDict()
_ZIPS_LOCK = threading.Lock()
ZIP_CACHE_SIZE = 8


def open_zip(path: str) -> tuple[zipfile.ZipFile, frozenset[str]]:
    """A shared, open ZipFile and its member names, cached per process.

    A task archive holds ~40 episodes x ~600 frames x 3 files: parsing its central directory costs
    ~0.5 s, so it is parsed once per process, not once per episode. Keyed by (pid, path, size,
    mtime) so a rewritten file or a forked worker never sees a stale handle. ZipFile reads are
    thread-safe (one lock around seek+read); evicted handles close when garbage-collected.
    """
    if remote.is_url(path):        # read in place: range requests through a block-caching file object
        found = remote.info(path)
        if found is None:
            raise FileNotFoundError(path)
        key = (os.getpid(), path, found.get("size"), found.get("ETag") or found.get("LastModified"))
    else:
        st = os.stat(path)
        key = (os.getpid(), os.path.abspath(path), st.st_size, st.st_mtime_ns)
    with _ZIPS_LOCK:
        hit = _ZIPS.get(key)
        if hit is not None:
            _ZIPS.move_to_end(key)
            return hit
    if remote.is_url(path):
        handle = remote.open_remote(path, cache="blockcache")
        try:
            zf = zipfile.ZipFile(handle)
        except BaseException:
            handle.close()
            raise
    else:
        zf = zipfile.ZipFile(path)
    entry = (zf, frozenset(zf.namelist()))
    with _ZIPS_LOCK:
        _ZIPS[key] = entry
        while len(_ZIPS) > ZIP_CACHE_SIZE:
            _ZIPS.popitem(last=False)
    return entry


class EpisodeFiles:
    """The files of one episode folder, in a zip (read in place) or on disk, by relative path."""

    def __init__(self, ref: SourceRef):
        self.ref = ref
        self.in_zip = ref.get("kind") == "zip"
        self._zip: zipfile.ZipFile | None = None
        self._names: frozenset[str] = frozenset()
        self.remote = remote.is_url(ref.uri)
        if self.remote and not self.in_zip:     # one LIST per episode folder instead of a HEAD per file
            self._names = frozenset(remote.relative(url, ref.uri) for url in remote.list_files(ref.uri))
        if self.in_zip:
            if ref.get("error"):
                raise EpisodeError(RejectReason.UNREADABLE, f"{ref.uri}: {ref.get('error')}", path=ref.uri)
            try:
                self._zip, self._names = open_zip(ref.uri)
            except (zipfile.BadZipFile, OSError) as exc:
                raise EpisodeError(RejectReason.UNREADABLE, f"{ref.uri}: not a readable zip ({exc})") from None

    def close(self) -> None:
        """Nothing to release: zip handles are shared through `open_zip`'s cache."""

    def __enter__(self) -> "EpisodeFiles":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def path(self, rel: str) -> str:
        """Member name inside the zip, or path relative to the episode dir (normalized)."""
        rel = rel.replace("\\", "/")
        return posixpath.normpath(self.ref.member + rel) if self.in_zip else posixpath.normpath(rel)

    def resolve(self, rel: str) -> str | None:
        """`rel` as stored in data.json, made relative to the episode folder: tried as given, then
        with leading folders stripped (recorders sometimes wrote task-relative or absolute paths)."""
        if self.exists(rel):
            return rel
        parts = [p for p in rel.replace("\\", "/").split("/") if p]
        for i in range(1, len(parts)):
            candidate = "/".join(parts[i:])
            if self.exists(candidate):
                return candidate
        return None

    def exists(self, rel: str) -> bool:
        if self.in_zip or self.remote:
            return self.path(rel) in self._names
        return self._inside(rel) and os.path.isfile(os.path.join(self.ref.uri, self.path(rel)))

    def _inside(self, rel: str) -> bool:
        """A local path named by data.json stays inside the episode folder once `..`, absolute paths and
        symlinks are resolved: a recording never makes the reader open a file elsewhere on the host."""
        base = os.path.realpath(self.ref.uri)
        target = os.path.realpath(os.path.join(base, self.path(rel)))
        return target == base or target.startswith(base.rstrip(os.sep) + os.sep)

    def read(self, rel: str) -> bytes:
        """A file's bytes; one whose (uncompressed) size is above MAX_FILE_BYTES is refused unread (a zip
        member's size is known from the central directory: a zip bomb is never inflated)."""
        if self.in_zip:
            self._check_size(rel, self._zip.getinfo(self.path(rel)).file_size)
            return self._zip.read(self.path(rel))
        if self.remote:
            url = remote.join(self.ref.uri, self.path(rel))
            found = remote.info(url)
            self._check_size(rel, int(found.get("size") or 0) if found else 0)
            return remote.read_bytes(url)
        if not self._inside(rel):
            raise EpisodeError(RejectReason.UNREADABLE, f"{self.ref.uri}: {rel} points outside the episode folder",
                               path=rel)
        path = os.path.join(self.ref.uri, self.path(rel))
        self._check_size(rel, os.path.getsize(path))
        with open(path, "rb") as f:
            return f.read()

    def _check_size(self, rel: str, size: int) -> None:
        if size > MAX_FILE_BYTES:
            raise EpisodeError(RejectReason.OUT_OF_RANGE, f"{_where(self.ref)}: {rel} is {size / 2**20:.0f} MiB "
                               f"uncompressed, above the {MAX_FILE_BYTES >> 20} MiB a file of an episode may take",
                               path=rel, size=size)

    def escapes(self, rel: str) -> bool:
        """`rel` as stored would leave the episode (absolute, `..`, or a symlink out): never followed."""
        if self.in_zip or self.remote:
            norm = self.path(rel)
            return norm.startswith(("/", "../")) or norm == ".."
        return not self._inside(rel)


# ------------------------------------------------------------------------------------------ read
def read(ref: SourceRef, with_depth: bool = False, **options: Any) -> Episode:
    """One episode -> `Episode`; raises `EpisodeError` on bad input. data.json is parsed once."""
    try:
        return _read(ref, with_depth)
    except EpisodeError as err:
        where = _where(ref)
        if err.message.startswith(where):
            raise
        raise EpisodeError(err.reason, f"{where}: {err.message}", **err.details) from None


def _read(ref: SourceRef, with_depth: bool) -> Episode:
    with EpisodeFiles(ref) as files:
        if not files.exists("data.json"):
            raise EpisodeError(RejectReason.MISSING_KEY, f"{_where(ref)}: episode has no data.json", key="data.json")
        try:
            data = json.loads(files.read("data.json"))
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
            raise EpisodeError(RejectReason.UNREADABLE, f"{_where(ref)}: data.json is not valid JSON ({exc})") from None
        if not isinstance(data, list):
            raise EpisodeError(RejectReason.UNREADABLE,
                               f"{_where(ref)}: data.json is a {type(data).__name__}, not a list")
        if len(data) < MIN_FRAMES:
            raise EpisodeError(RejectReason.EMPTY_EPISODE, f"{_where(ref)}: {len(data)} frames (< {MIN_FRAMES})",
                               frames=len(data))
        raw = parse_frames(data, _where(ref))
        video = _image_stream(files, data, ref)
        depth = _sidecar_refs(files, data, ref, "depth") if with_depth else None
        lidar = _sidecar_refs(files, data, ref, "lidar") if with_depth else None
        if depth is not None:
            depth["shape"] = list(_depth_shape(_read_member(depth, 0), video))
    return _episode(ref, raw, video, depth, lidar)


def _where(ref: SourceRef) -> str:
    return f"{ref.uri}:{ref.member}" if ref.member else ref.uri


def _field(data: list[dict], path: tuple[str, ...], where: str, dim: int | tuple[int, ...] | None = None,
           optional: bool = False) -> np.ndarray | None:
    """Stack one (nested) field over all frames as float64 (N, ...); None if optional and absent."""
    try:
        values = []
        for frame in data:
            v = frame
            for key in path:
                v = v[key]
            values.append(v)
    except (KeyError, TypeError, IndexError):
        if optional:
            return None
        raise EpisodeError(RejectReason.MISSING_KEY, f"{where}: frame {len(values)} has no {'.'.join(path)}",
                           key=".".join(path), frame=len(values)) from None
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise EpisodeError(RejectReason.SHAPE_MISMATCH, f"{where}: {'.'.join(path)} is ragged or not numeric",
                           key=".".join(path)) from None
    dims = (dim,) if isinstance(dim, int) else dim
    if dims is not None and arr.shape[1:] not in [(d,) if isinstance(d, int) else d for d in dims]:
        raise EpisodeError(RejectReason.SHAPE_MISMATCH,
                           f"{where}: {'.'.join(path)} has shape {arr.shape[1:]}, expected one of {list(dims)}",
                           key=".".join(path), shape=list(arr.shape))
    check_finite(".".join(path), arr)
    return arr


def robot_embodiment(frame: dict) -> tuple[str, str]:
    """(embodiment, raw robot_type). The body from `robot_type` (at the top or in `states`; absent means
    H1), the hand from the width of `states.hand_state` (14 Dex3-1, 12 Inspire; any other width: the
    body's stock hand, whose width check then rejects the episode)."""
    states = frame.get("states") if isinstance(frame.get("states"), dict) else {}
    raw = frame.get("robot_type") or states.get("robot_type") or ""
    families = sorted({e.body.family for e in embodiments.all_embodiments()})
    family = next((f for f in families if f in str(raw).lower()), DEFAULT_FAMILY)
    hand = states.get("hand_state")
    emb = embodiments.find(family, len(hand) if isinstance(hand, list) else None)
    return emb.name, str(raw)


def parse_frames(data: list[dict], where: str) -> dict[str, Any]:
    """All numeric fields as arrays, validated for presence, shape and finiteness."""
    embodiment, robot_type = robot_embodiment(data[0])
    emb = embodiments.get(embodiment)
    body, hand = emb.body, emb.hand
    raw: dict[str, Any] = {"embodiment": embodiment, "robot_type": robot_type}
    raw["time"] = _field(data, ("time",), where)
    s = ("states",)
    raw["arm_state"] = _field(data, s + ("arm_state",), where, body.arms.size)
    raw["leg_state"] = _field(data, s + ("leg_state",), where, body.legs_waist.size)
    raw["hand_state"] = _field(data, s + ("hand_state",), where, hand.stored_size)
    raw["imu.rpy"] = _field(data, s + ("imu", "rpy"), where, 3)
    for key, dim in (("quaternion", 4), ("accelerometer", 3), ("gyroscope", 3)):
        raw[f"imu.{key}"] = _field(data, s + ("imu", key), where, dim, optional=True)
    for key, dim in (("position", 3), ("velocity", 3), ("rpy", 3), ("quat", 4)):
        raw[f"odometry.{key}"] = _field(data, s + ("odometry", key), where, dim, optional=True)
    a = ("actions",)
    sol_q = _field(data, a + ("sol_q",), where, (body.arms.size, SOL_Q_BODY.size), optional=True)
    if sol_q is not None:
        arms = SOL_Q_BODY.slices["arms"]
        suffix = f"[{arms[0]}:{arms[1]}]" if sol_q.shape[1] == SOL_Q_BODY.size else ""
        raw["arm_command"], raw["arm_command_source"] = sol_q[:, -body.arms.size:], f"actions.sol_q{suffix}"
    else:
        left = _field(data, a + ("left_angles",), where, body.arm_dof)
        right = _field(data, a + ("right_angles",), where, body.arm_dof)
        raw["arm_command"], raw["arm_command_source"] = np.concatenate([left, right], 1), "actions.left/right_angles"
    return raw


def hands_to_psi0(embodiment: str | Embodiment, hand_state: np.ndarray) -> np.ndarray:
    """Stored `hand_state` (N, hand.stored_size) -> the Ψ₀ hands block (N, 14: left 7, right 7), by the
    embodiment's hand table: Dex3-1 as is; Inspire closures (right 6 + left 6, hardware order pinky..thumb
    rotation, 1 = open) -> angles, each side thumb -> little + one zero pad."""
    return embodiments.get(embodiment).stored_hands_to_slots(hand_state)


def head_camera_pose(position: np.ndarray | None, rpy: np.ndarray | None, n: int) -> np.ndarray:
    """(n, 16) camera-to-world of the head camera (`Calibration.camera_in_torso`) riding on the odometry base
    pose (the torso taken as the base, the waist's motion aside); a still base when there is no odometry."""
    base = np.tile(np.eye(4), (n, 1, 1))
    if position is not None and rpy is not None:
        base = hand48.pose_matrix(position, rpy)
    return (base @ Calibration().camera_in_torso()).reshape(n, 16)


def derive_lower_body(raw: dict[str, Any], t: np.ndarray) -> LowerBody:
    """The 8-DoF lower-body command (LOWER_BODY_COMMAND order) with AMO's meaning, a validity mask and a
    "how" per dim (`converters.lower_body`: HE records no lower-body command)."""
    emb = embodiments.get(raw["embodiment"])
    odometry = {k: raw[f"odometry.{k}"] for k in ("position", "velocity", "rpy")}
    return derive_command(emb, t, raw["leg_state"], raw["imu.rpy"], odometry)


def _episode(ref: SourceRef, raw: dict[str, Any], video: VideoRef, depth: dict | None, lidar: dict | None) -> Episode:
    t = raw["time"] - raw["time"][0]
    check_timestamps(t, FPS)
    n = len(t)
    emb = embodiments.get(raw["embodiment"])
    hands = hands_to_psi0(emb, raw["hand_state"])
    lower_body = derive_lower_body(raw, t)
    lower = lower_body.command.astype(np.float32)
    derived = {f"action.lower_body.{k}": v for k, v in lower_body.how.items()}
    torso = PSI0_STATE.slice("torso")
    prev = np.empty((n, torso.stop - torso.start), np.float32)
    prev[0] = (0.0, 0.0, 0.0, NOMINAL_TORSO_HEIGHT)
    prev[1:] = lower[:-1, LOWER_BODY_COMMAND.slice("torso_rpy").start:LOWER_BODY_COMMAND.slice("torso_height").stop]
    state = np.zeros((n, PSI0_STATE.size), np.float32)
    state[:, PSI0_STATE.slice("hands")], state[:, PSI0_STATE.slice("arms")], state[:, torso] = \
        hands, raw["arm_state"], prev
    action = np.zeros((n, PSI0_ACTION.size))
    action[:, PSI0_ACTION.slice("hands")] = hands
    action[:, PSI0_ACTION.slice("arms")] = raw["arm_command"]
    action[:, PSI0_ACTION.slice("lower_body")] = lower
    mask = np.ones((n, PSI0_ACTION.size), np.float32)
    mask[:, PSI0_ACTION.slice("lower_body")] = lower_body.valid
    derived["action.mask"] = "1 where a dim of `action` is a label; 0 where it cannot be derived (converters.lower_body)"
    derived["action.hand48"] = (f"HUMAN_ACTION_48 of the action's arm and hand joints ({emb.name} "
                                "forward kinematics, head camera: converters.retarget.robot_hand48)")
    derived["observation.head_camera.pose"] = ("camera-to-world of the torso-fixed head camera (retargeting "
                                               "Calibration) on the odometry pose (identity without odometry)")
    derived["action.hands"] = "no hand command in HE: measured states.hand_state" + (
        f" ({emb.hand.conversion})" if emb.hand.conversion else "")
    derived["action.arms"] = raw["arm_command_source"]
    derived["observation.state.torso"] = "previous frame's derived action.lower_body rpy/height (0, 0, 0, 0.75 at t=0)"

    def opt(key: str, dim: int) -> np.ndarray:
        value = raw[key]
        if value is None:
            derived[f"observation.{key}"] = "absent in data.json: zeros"
            return np.zeros((n, dim))
        return value

    columns = {
        "observation.state": state, "action": action, "action.lower_body": lower, "action.mask": mask,
        "action.hand48": hand48_from_action(emb, action),
        "observation.head_camera.pose": head_camera_pose(raw["odometry.position"], raw["odometry.rpy"], n),
        "observation.arm_state": raw["arm_state"],
        "observation.leg_state": _pad(raw["leg_state"], FEATURES["observation.leg_state"].shape[0]),
        "observation.hand_state_raw": _pad(raw["hand_state"], FEATURES["observation.hand_state_raw"].shape[0]),
        "observation.imu.rpy": raw["imu.rpy"],
        "observation.imu.quaternion": opt("imu.quaternion", 4),
        "observation.imu.accelerometer": opt("imu.accelerometer", 3),
        "observation.imu.gyroscope": opt("imu.gyroscope", 3),
        "observation.odometry.position": opt("odometry.position", 3),
        "observation.odometry.velocity": opt("odometry.velocity", 3),
        "observation.odometry.rpy": opt("odometry.rpy", 3),
        "observation.odometry.quat": opt("odometry.quat", 4),
    }
    frames = build_frames(t, columns)
    task_dir = ref.get("task_dir")
    task, how = task_text(task_dir, ref.get("descriptions"))
    if how:
        derived["task"] = how
    extra: dict[str, Any] = {
        "robot_type": raw["robot_type"], "time_start": float(raw["time"][0]),
        "archive": os.path.basename(ref.uri) if ref.get("kind") == "zip" else "",
        "color_intrinsics": emb.body.color_intrinsics,
    }
    names = raw_names(emb)
    if names:
        extra["names"] = names
    if depth is not None:
        extra["depth"] = depth
    if lidar is not None:
        extra["lidar"] = lidar
    meta = EpisodeMeta(source=SOURCE, source_id=ref.source_id, embodiment=raw["embodiment"], fps=FPS, task=task,
                       task_name=task_key(task_dir), task_category=ref.get("category"), derived=derived, extra=extra,
                       quality=describe_mask(lower_body.valid))
    return Episode(meta, frames, dict(FEATURES), {video.key: video})


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, size - x.shape[1])))


@lru_cache(maxsize=8)
def _descriptions(path: str) -> dict[str, str]:
    try:
        if remote.is_url(path):
            value = json.loads(remote.read_bytes(path))
        else:
            with open(path, encoding="utf-8") as f:
                value = json.load(f)
        return {task_key(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def task_text(task_dir: str, descriptions: str = "") -> tuple[str, str]:
    """(instruction, how): the dataset's task_description_dict entry, else the folder/zip name
    with underscores as spaces in sentence case."""
    if descriptions:
        text = _descriptions(descriptions).get(task_key(task_dir))
        if text:
            return text, ""
    return task_sentence(task_dir), "task folder / archive name (underscores -> spaces, sentence case)"


# ------------------------------------------------------------------------------------------ images / sidecars
def _rel_paths(data: list[dict], key: str, where: str) -> list[str]:
    try:
        paths = [frame[key] for frame in data]
    except (KeyError, TypeError):
        raise EpisodeError(RejectReason.MISSING_VIDEO if key == "image" else RejectReason.MISSING_KEY,
                           f"{where}: a frame has no '{key}' path", key=key) from None
    if not all(isinstance(p, str) and p for p in paths):
        raise EpisodeError(RejectReason.MISSING_VIDEO, f"{where}: empty '{key}' path", key=key)
    return paths


def _image_stream(files: EpisodeFiles, data: list[dict], ref: SourceRef) -> VideoRef:
    where = _where(ref)
    stored = _rel_paths(data, "image", where)
    resolved = [files.resolve(r) for r in stored]
    missing = [s for s, r in zip(stored, resolved) if r is None]
    if missing:
        outside = [m for m in missing if files.escapes(m)]
        note = (f"; {len(outside)} of them point outside the episode folder (e.g. {outside[0]}), which is never "
                "followed" if outside else "")
        raise EpisodeError(RejectReason.MISSING_VIDEO, f"{where}: {len(missing)} of {len(stored)} image files missing "
                           f"(first {missing[0]}){note}", missing=len(missing), first=missing[0],
                           **({"outside": len(outside)} if outside else {}))
    from PIL import Image, UnidentifiedImageError

    rels = [r for r in resolved if r is not None]
    try:
        with Image.open(io.BytesIO(files.read(rels[0]))) as img:
            width, height, fmt = img.width, img.height, img.format
    except (UnidentifiedImageError, OSError) as exc:
        raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"{where}: {rels[0]} is not an image ({exc})") from None
    return VideoRef(camera=CAMERA, kind="images", uri=ref.uri, frame_count=len(rels), fps=FPS, width=width,
                    height=height, codec=(fmt or "").lower() or None, frames=tuple(files.path(r) for r in rels),
                    member_of_zip=files.in_zip)


_PCD_TS = re.compile(r"(\d+)\.(\d{1,5})(\.pcd)$")


def _sidecar_refs(files: EpisodeFiles, data: list[dict], ref: SourceRef, key: str) -> dict[str, Any]:
    """Per-frame file references for depth (`.lzma` raw uint16) or lidar (`.pcd`)."""
    where = _where(ref)
    rels = _rel_paths(data, key, where)
    resolved = []
    for stored in rels:
        rel = files.resolve(stored)
        if rel is None and key == "lidar":
            # Lidar names carry a timestamp whose decimals were written unpadded; try 6 digits.
            rel = files.resolve(_PCD_TS.sub(lambda m: f"{m.group(1)}.{m.group(2).ljust(6, '0')}{m.group(3)}", stored))
        if rel is None:
            raise EpisodeError(RejectReason.MISSING_KEY, f"{where}: {key} file {stored} missing", key=key)
        resolved.append(files.path(rel) if files.in_zip else os.path.join(ref.uri, files.path(rel)))
    info: dict[str, Any] = {"uri": ref.uri, "member_of_zip": files.in_zip, "frames": resolved}
    if key == "depth":
        info.update(encoding="lzma raw uint16 (or .npy)", units="mm", intrinsics=DEPTH_INTRINSICS)
    else:
        info.update(encoding="pcd", units="m")
    return info


def _inflate_depth(blob: bytes) -> bytes:
    """LZMA-decompress one depth frame, refusing to produce more than MAX_DEPTH_BYTES."""
    decomp, parts, size = lzma.LZMADecompressor(), [], 0
    try:
        piece = decomp.decompress(blob, max_length=1 << 20)
        while True:
            parts.append(piece)
            size += len(piece)
            if size > MAX_DEPTH_BYTES:
                raise EpisodeError(RejectReason.OUT_OF_RANGE,
                                   f"depth frame inflates beyond {MAX_DEPTH_BYTES >> 20} MiB")
            if decomp.eof or decomp.needs_input:
                break
            piece = decomp.decompress(b"", max_length=1 << 20)
    except lzma.LZMAError as exc:
        raise EpisodeError(RejectReason.UNREADABLE, f"depth frame is not LZMA data ({exc})") from None
    raw = b"".join(parts)
    if not decomp.eof:
        raise EpisodeError(RejectReason.UNREADABLE, "depth frame is cut short (no LZMA end-of-stream marker)")
    return raw


def _depth_shape(blob: bytes, video: VideoRef) -> tuple[int, int]:
    raw = _inflate_depth(blob)
    if raw[:6] == b"\x93NUMPY":
        return tuple(np.load(io.BytesIO(raw)).shape[:2])   # type: ignore[return-value]
    pixels = len(raw) // 2
    for shape in ((480, 640), (video.height, video.width)):
        if shape[0] * shape[1] == pixels:
            return shape
    raise EpisodeError(RejectReason.SHAPE_MISMATCH, f"depth frame has {pixels} pixels: not 480x640 nor the image size")


def _read_member(info: dict[str, Any], i: int) -> bytes:
    name = info["frames"][i]
    if info["member_of_zip"]:
        zf = open_zip(info["uri"])[0]
        size = zf.getinfo(name).file_size
    elif remote.is_url(name):
        found = remote.info(name)
        size = int(found.get("size") or 0) if found else 0
    else:
        size = os.path.getsize(name)
    if size > MAX_FILE_BYTES:
        raise EpisodeError(RejectReason.OUT_OF_RANGE, f"{name}: {size >> 20} MiB uncompressed, above the "
                           f"{MAX_FILE_BYTES >> 20} MiB a file of an episode may take", path=name, size=size)
    if info["member_of_zip"]:
        return zf.read(name)
    if remote.is_url(name):
        return remote.read_bytes(name)
    with open(name, "rb") as f:
        return f.read()


def load_depth(episode_or_info: Episode | dict[str, Any], i: int) -> np.ndarray:
    """Depth frame `i` as uint16 (H, W) millimetres, from `meta.extra["depth"]` (read with_depth=True)."""
    info = episode_or_info.meta.extra["depth"] if isinstance(episode_or_info, Episode) else episode_or_info
    raw = _inflate_depth(_read_member(info, i))
    if raw[:6] == b"\x93NUMPY":
        return np.load(io.BytesIO(raw)).astype(np.uint16)
    h, w = info["shape"]
    return np.frombuffer(raw, dtype="<u2").reshape(h, w)


def load_lidar(episode_or_info: Episode | dict[str, Any], i: int) -> np.ndarray:
    """Lidar frame `i` as float32 (M, 3) xyz, all-zero rows dropped (as the public converter does)."""
    info = episode_or_info.meta.extra["lidar"] if isinstance(episode_or_info, Episode) else episode_or_info
    pts = parse_pcd(_read_member(info, i))
    return pts[~np.all(pts == 0, axis=1)]


_PCD_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4",
              ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4"}


def parse_pcd(blob: bytes) -> np.ndarray:
    """xyz (M, 3) float32 from a PCD v0.7 file with DATA ascii or binary."""
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = blob.index(b"\n", pos)
        line = blob[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            break
    fields = header["FIELDS"]
    sizes = [int(s) for s in header["SIZE"]]
    types = header["TYPE"]
    counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
    points = int(header["POINTS"][0])
    kind = header["DATA"][0].lower()
    if kind == "ascii":
        table = np.loadtxt(io.BytesIO(blob[pos:]), dtype=np.float64, ndmin=2)
        cols = np.cumsum([0] + counts)
        xyz = np.stack([table[:, cols[fields.index(a)]] for a in "xyz"], 1)
    elif kind == "binary":
        dtype = np.dtype([(f, _PCD_TYPES[(t, s)], (c,)) if c > 1 else (f, _PCD_TYPES[(t, s)])
                          for f, s, t, c in zip(fields, sizes, types, counts)])
        rec = np.frombuffer(blob, dtype=dtype, count=points, offset=pos)
        xyz = np.stack([rec[a] for a in "xyz"], 1)
    else:
        raise ValueError(f"PCD DATA {kind} not supported")
    return xyz.astype(np.float32)


# ------------------------------------------------------------------------------------------ the Source
EMBODIMENTS = ("g1_dex3", "h1_inspire")
"""What `read` can tag an episode with (`robot_embodiment`)."""
TOKEN_INPUTS = {"hand48": "action.hand48", "camera_pose": "observation.head_camera.pose"}
"""The stage-1 chunks: deltas of action.hand48, in the torso-fixed head camera the odometry poses."""


@dataclass(frozen=True)
class HumanoidEveryday(Hand48Tokens):
    """Humanoid Everyday: Unitree G1 / H1 teleoperation episodes (states, arm commands, camera, depth, lidar)."""

    name: str = SOURCE
    token_column: str | None = None          # tokens: 10 Hz deltas of action.hand48 (the stage-1 space)
    token_space: str = hand48.SPACE
    defaults: JobDefaults = JobDefaults(token_horizon=1, episodes_per_shard=32)

    @property
    def token_inputs(self) -> dict[str, str]:
        return dict(TOKEN_INPUTS)

    def discover(self, root: str) -> list[SourceRef]:
        return discover(root)

    def read(self, ref: SourceRef) -> Episode:
        return read(ref)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "summary": "Humanoid Everyday (task zips or folders): Unitree G1/H1 episodes, "
                                         f"{PSI0_ACTION.size}-D Psi0 actions",
            "layout": "<task>.zip or [<category>/]<task>/episode_<k>/data.json + frames (read in place)",
            "fps": FPS, "embodiments": list(embodiments.names()), "features": features_summary(FEATURES),
            "derived": {
                "action.lower_body": "no lower-body command is recorded: derived with AMO's meaning from the waist "
                                     "and leg joints, IMU and odometry, or masked (action.mask)",
                "action.hand48": "the action's arms and hands by forward kinematics, head camera frame",
                "action.hands": "no hand command is recorded: the measured hand state",
                "observation.state.torso": "the previous frame's derived torso rpy / height",
                "task": "task_description_dict entry, else the task folder / archive name",
            },
            "tokens": f"{hand48.RATE:g} Hz deltas of action.hand48 (HUMAN_ACTION_48_DELTA), odometry-posed camera",
            "hand_qa": None,
            "defaults": asdict(self.defaults),
        }


HUMANOID_EVERYDAY = HumanoidEveryday()
