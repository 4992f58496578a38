"""Teleop recordings (`teleop record` sessions) -> Episodes at the dataset rate (30 fps).

Layout: the recording format contract, `schemas.recording` (`<session>/session.json`,
`<session>/episode_<k>/<stream>/*.arrows`); this reader never imports the recorder (`teleop/`).

What `read` produces (one feature set for every robot; the embodiment is in the metadata):
- timeline: a 30 Hz grid from the first instant every needed stream has data to the last one.
- `action` (PSI0_ACTION) = the command in effect at each grid time (zero-order hold of the 50 Hz
  `commands` stream: what the robot was actually told), i.e. hands + arms + 8-DoF lower body;
  `action.hand48` its arms and hands by forward kinematics (HUMAN_ACTION_48, the stage-1 token space).
- `observation.state` (PSI0_STATE) = measured hands + measured arms (robot_state, linearly
  interpolated) + the previous frame's commanded torso rpy/height (0, 0, 0, 0.75 at frame 0), as the
  reference converter builds it, zero-padded.
- full robot state as extra features: `observation.body_q` / `observation.body_dq` (G1_BODY, legs and
  waist included), `observation.hand_q` (PSI0_HANDS), `observation.base` (imu roll/pitch/yaw + base height; a
  separate (1,) feature would be read back by LeRobot as a scalar and fail to load).
- `observation.images.egocentric`: the frame nearest each grid time, as a `VideoRef(kind="images")`
  over JPEGs extracted (bytes as recorded, no re-encode) to a per-episode cache directory.
- quality: fractions of frames whose command was held / had a tracker lost / was under e-stop, and
  the loop's p99 period jitter. Episodes the operator discarded are not listed by `discover`.
- integrity (`meta.extra["recording"]`): the session format, whether every batch's checksum was verified
  (format 2) or the contents are unverified (format 1), streams cut by a crash (`truncated`), the repairs
  `teleop check --repair` made (`repairs`), and whether values were checked against the embodiment's
  limits. A batch whose checksum is wrong rejects the episode (`teleop check --repair` drops the batch;
  the repaired episode then ingests with the repair listed). Every command must lie within the
  embodiment's action limits and every measured joint within its joint limits (+ STATE_MARGIN), else
  the episode is rejected naming the stream, row, time, dimension and limit.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from converters.retarget.robot_hand48 import hand48_from_action
from converters.source import Hand48Tokens, JobDefaults, features_summary, task_key, task_sentence
from converters.tokenize import hand48
from schemas import HUMAN_ACTION_48, NOMINAL_TORSO_HEIGHT, PSI0_ACTION, PSI0_STATE, Episode, EpisodeError, \
    EpisodeMeta, FeatureSpec, RejectReason, SourceRef, VideoRef
from schemas.actions import PSI0_HANDS
from schemas import embodiments
from schemas.embodiments import G1_BODY, G1_LEGS_WAIST
from schemas.episode import build_frames
from schemas.names import STATE_PRIVILEGED
from schemas.recording import (FORMAT_V1, IMU_RPY, SegmentScan, checksums_required, episode_dirs, episode_info,
                               find_sessions, fixed_column, load_session, scan_stream, segments)

log = logging.getLogger("psi0.converters.teleop")

SOURCE = "teleop"
FPS = 30.0
CAMERA = "egocentric"
MIN_SECONDS = 0.2
CACHE_ENV = "PSI0_TELEOP_FRAME_CACHE"
ACTION_TOLERANCE = 1e-4
"""Commands are clamped to the limits by the recorder's mapper; this absorbs float32 rounding only."""
STATE_MARGIN = 0.1
"""Measured joint positions may overshoot a limit slightly (rad); beyond this margin a value is not a measurement."""

BASE_DIMS = tuple(f"imu_{a}" for a in IMU_RPY) + ("base_height",)

FEATURES: dict[str, FeatureSpec] = {
    spec.key: spec for spec in (
        FeatureSpec("observation.state", "float32", (PSI0_STATE.size,), PSI0_STATE.dims),
        FeatureSpec("action", "float32", (PSI0_ACTION.size,), PSI0_ACTION.dims),
        FeatureSpec("action.hand48", "float32", (HUMAN_ACTION_48.size,), HUMAN_ACTION_48.dims),
        FeatureSpec("observation.body_q", "float32", (G1_BODY.size,), G1_BODY.dims),
        FeatureSpec("observation.body_dq", "float32", (G1_BODY.size,), G1_BODY.dims),
        FeatureSpec("observation.hand_q", "float32", (PSI0_HANDS.size,), PSI0_HANDS.dims),
        FeatureSpec("observation.base", "float32", (len(BASE_DIMS),), BASE_DIMS),
        FeatureSpec(f"observation.images.{CAMERA}", "video", (120, 160, 3)),
    )
}
"""The video shape is the sim camera's; the shard writer re-encodes at the job's --video-size."""



def _embodiment_name(robot: str) -> str:
    """A session's `robot` (any accepted spelling, e.g. old recordings' `g1-dex3`) -> the canonical name
    written into shards; an unknown name is kept as recorded rather than guessed."""
    try:
        return embodiments.canonical(robot)
    except ValueError:
        return robot


ARMS_IN_BODY = slice(len(G1_LEGS_WAIST.dims), G1_BODY.size)
"""The arm joints inside the recorded body state (G1_BODY: legs + waist, then both arms)."""


# ------------------------------------------------------------------------------------------ discover
def discover(root: str) -> list[SourceRef]:
    """Every recorded episode under `root` except those the operator discarded, sorted by id.

    Sessions with an unreadable session.json are listed (one ref each) so `read` rejects them."""
    refs: list[SourceRef] = []
    discarded = 0
    for session in find_sessions(root):
        try:
            meta = load_session(session)
            task = task_key(str(meta.get("task", "")) or "unknown")
        except (OSError, ValueError) as exc:
            refs.append(SourceRef(f"{SOURCE}/unknown/{session.name}", SOURCE, str(session), "",
                                  (("error", f"session.json unreadable: {exc}"),)))
            continue
        for episode in episode_dirs(session):
            try:
                outcome = str(episode_info(episode).get("outcome", ""))
            except Exception as exc:  # noqa: BLE001 - a broken episode is listed and rejected by read
                outcome = f"unreadable: {type(exc).__name__}: {exc}"
            if outcome == "discarded":
                discarded += 1
                continue
            refs.append(SourceRef(f"{SOURCE}/{task}/{session.name}/{episode.name}", SOURCE, str(episode), "",
                                  (("session", str(session)), ("outcome", outcome))))
    if discarded:
        log.info("teleop: %d episode(s) discarded by the operator were not listed", discarded)
    return sorted(refs)


# ------------------------------------------------------------------------------------------ read
def read(ref: SourceRef, **options: Any) -> Episode:
    """One recorded episode -> Episode at 30 fps; raises EpisodeError on anything unusable."""
    if ref.get("error"):
        raise EpisodeError(RejectReason.BAD_METADATA, f"{ref.uri}: {ref.get('error')}")
    try:
        return _read(ref)
    except EpisodeError:
        raise
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        raise EpisodeError(RejectReason.UNREADABLE, f"{ref.uri}: {type(exc).__name__}: {exc}") from None


def _stream(episode: Path, name: str, require_checksums: bool = False,
            integrity: dict[str, Any] | None = None) -> pa.Table:
    """A stream's good rows; a batch whose checksum is wrong rejects the episode, a truncated tail is noted
    in `integrity` (what ingest carries into the episode's metadata)."""
    directory = episode / name
    if not directory.is_dir() or not segments(directory):
        raise EpisodeError(RejectReason.MISSING_KEY, f"{episode}: no '{name}' stream", key=name)
    table, scans = scan_stream(directory, require_checksums)
    for scan in scans:
        if scan.corrupt:
            bad = scan.corrupt[0]
            raise EpisodeError(RejectReason.UNREADABLE,
                               f"{scan.path}: record batch {bad['batch']} (byte {bad['byte']}, {bad['rows']} rows) fails "
                               f"its checksum ({bad['problem']}): the bytes changed after recording; `teleop check "
                               "--repair` drops it and the episode then ingests with the repair noted",
                               stream=name, segment=scan.path.name, batch=bad["batch"])
    if integrity is not None:
        _note_scans(integrity, name, scans)
    return table


def _note_scans(integrity: dict[str, Any], name: str, scans: list[SegmentScan]) -> None:
    integrity["batches_verified"] = integrity.get("batches_verified", 0) + sum(s.checked for s in scans)
    integrity["batches_unverified"] = integrity.get("batches_unverified", 0) + sum(s.unchecked for s in scans)
    cut = [s for s in scans if s.good_bytes < s.size]
    if cut:
        integrity.setdefault("truncated", {})[name] = {
            "segments": [s.path.name for s in cut], "bytes_cut": sum(s.size - s.good_bytes for s in cut),
            "last_t": cut[-1].last_t}


def _check_limits(episode: Path, stream: str, column: str, t: np.ndarray, values: np.ndarray, low: np.ndarray,
                  high: np.ndarray, names: tuple[str, ...], margin: float, what: str) -> None:
    """Every value within [low - margin, high + margin] (dims without a limit: finite), else reject naming
    the stream, row, time, dimension, value and limit."""
    lo = np.where(np.isfinite(low), low - margin, -np.inf)
    hi = np.where(np.isfinite(high), high + margin, np.inf)
    bad = ~np.isfinite(values) | (values < lo) | (values > hi)
    if bad.any():
        row, dim = (int(i) for i in np.argwhere(bad)[0])
        raise EpisodeError(RejectReason.OUT_OF_RANGE,
                           f"{episode}: {stream} row {row} (t={float(t[row]):.3f}) {column}.{names[dim]} = "
                           f"{float(values[row, dim]):.6g} is outside [{float(low[dim]):.4g}, {float(high[dim]):.4g}] "
                           f"({what}); {int(bad.any(axis=1).sum())} row(s) out of range",
                           stream=stream, field=f"{column}.{names[dim]}", row=row, value=float(values[row, dim]))


def _read(ref: SourceRef) -> Episode:
    episode = Path(ref.uri)
    session = load_session(ref.get("session") or episode.parent)
    info = episode_info(episode)
    required = checksums_required(session.get("format"))
    integrity: dict[str, Any] = {"format": session.get("format")}
    commands = _stream(episode, "commands", required, integrity)
    states = _stream(episode, "robot_state", required, integrity)
    camera = _stream(episode, f"camera_{CAMERA}", required, integrity)
    robot = str(session.get("robot", "g1-dex3"))
    integrity["limits"] = _check_values(episode, robot, commands, states)
    tc, ts, tv = (tab.column("t").to_numpy() for tab in (commands, states, camera))
    for name, t in (("commands", tc), ("robot_state", ts), (f"camera_{CAMERA}", tv)):
        if len(t) < 2:
            raise EpisodeError(RejectReason.EMPTY_EPISODE, f"{episode}: {name} has {len(t)} samples", stream=name)
        if not np.all(np.diff(t) > 0):
            raise EpisodeError(RejectReason.NON_MONOTONIC_TIME, f"{episode}: {name} timestamps not increasing",
                               stream=name)
    start, stop = max(tc[0], ts[0], tv[0]), min(tc[-1], ts[-1], tv[-1])
    if stop - start < MIN_SECONDS:
        raise EpisodeError(RejectReason.EMPTY_EPISODE, f"{episode}: streams overlap for {stop - start:.3f} s "
                           f"(< {MIN_SECONDS} s)", seconds=float(stop - start))
    n = int(np.floor((stop - start) * FPS + 1e-9)) + 1
    grid = start + np.arange(n) / FPS

    # action: zero-order hold of the commands (the command in effect at each grid time)
    ci = np.searchsorted(tc, grid + 1e-9, side="right") - 1
    action = fixed_column(commands, "action")[ci].astype(np.float64)
    flags = commands.column("flags").to_pylist()
    held = [flags[i] for i in ci]
    # state: linear interpolation of the 50 Hz robot state
    def interp(values: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(grid, ts, values[:, j]) for j in range(values.shape[1])], axis=1)

    body_q = interp(fixed_column(states, "body_q"))
    body_dq = interp(fixed_column(states, "body_dq"))
    hand_q = interp(fixed_column(states, "hand_q"))
    imu = interp(fixed_column(states, "imu_rpy"))
    height = interp(states.column("base_height").to_numpy()[:, None])
    for name, arr in (("action", action), ("body_q", body_q), ("hand_q", hand_q), ("imu_rpy", imu)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise EpisodeError(RejectReason.NON_FINITE, f"{episode}: {name} has {int(bad.sum())} non-finite values",
                               field=name)
    lower = action[:, PSI0_ACTION.slice("lower_body")]
    torso = PSI0_STATE.slice("torso")
    prev = np.empty((n, torso.stop - torso.start))
    prev[0] = (0.0, 0.0, 0.0, NOMINAL_TORSO_HEIGHT)
    prev[1:] = lower[:-1, :prev.shape[1]]                   # commanded torso rpy + height lead the lower body
    state = np.zeros((n, PSI0_STATE.size))
    state[:, PSI0_STATE.slice("hands")] = hand_q
    state[:, PSI0_STATE.slice("arms")] = body_q[:, ARMS_IN_BODY]
    state[:, torso] = prev

    video = _frames(episode, camera, tv, grid)
    t = grid - grid[0]
    robot = str(session.get("robot", "g1-dex3"))
    emb = embodiments.get(_embodiment_name(robot)) if _embodiment_name(robot) in embodiments.names() else None
    if emb is None or emb.arm_chains is None:
        raise EpisodeError(RejectReason.BAD_METADATA, f"{episode}: robot {robot!r} has no arm kinematics for "
                           "the 48-D hand action")
    columns = {"observation.state": state, "action": action, "action.hand48": hand48_from_action(emb, action),
               "observation.body_q": body_q, "observation.body_dq": body_dq, "observation.hand_q": hand_q,
               "observation.base": np.concatenate([imu, height], axis=1)}
    features = dict(FEATURES)
    privileged = _privileged_state(session, states, ts, grid, state)
    if privileged is not None:
        features[STATE_PRIVILEGED], columns[STATE_PRIVILEGED] = privileged
    frames = build_frames(t, columns)
    quality = {
        "hold_fraction": float(np.mean(["hold" in f.split("|") for f in held])),
        "tracker_lost_fraction": float(np.mean([any(x.endswith("_lost") for x in f.split("|")) for f in held])),
        "estop_fraction": float(np.mean(["estop" in f.split("|") for f in held])),
    }
    if (episode / "loop").is_dir():
        loop = _stream(episode, "loop", required)
        period = loop.column("period").to_numpy()
        period = period[np.isfinite(period)]
        if period.size:
            nominal = 1.0 / float(session.get("control_rate_hz", 50.0))
            quality["loop_jitter_p99_ms"] = float(np.percentile(np.abs(period - nominal), 99) * 1e3)
    task = str(session.get("task", ""))
    derived = {
        "action.hand48": f"HUMAN_ACTION_48 of the commanded arms and hands ({emb.name} forward kinematics, head "
                         "camera: converters.retarget.robot_hand48)",
        "action": "recorded 50 Hz commands, zero-order hold at 30 fps (the command in effect)",
        "observation.state.torso": "previous frame's commanded torso rpy/height (0, 0, 0, 0.75 at t=0)",
        "observation.*": "recorded robot state, linear interpolation at 30 fps",
        f"observation.images.{CAMERA}": "recorded frame nearest each 30 fps grid time",
        "task": "session task name (underscores -> spaces, sentence case)",
    }
    extra = {"outcome": info.get("outcome", ""), "robot": robot, "operator": session.get("operator", ""),
             "device": session.get("device", {}).get("kind", ""), "session": Path(ref.get("session")).name,
             "episode": episode.name, "calibration": session.get("calibration", {}),
             "software": session.get("software", {}), "t_start_monotonic": float(grid[0]),
             "recording": _integrity_summary(integrity, info)}
    meta = EpisodeMeta(source=SOURCE, source_id=ref.source_id, embodiment=_embodiment_name(robot), fps=FPS,
                       task=task_sentence(task), task_name=task_key(task), quality=quality, derived=derived,
                       extra=extra)
    return Episode(meta, frames, features, {video.key: video})


def _privileged_state(session: dict[str, Any], states: pa.Table, ts: np.ndarray, grid: np.ndarray,
                      state: np.ndarray) -> tuple[FeatureSpec, np.ndarray] | None:
    """Simulator sessions only (session extra `sim.privileged_dims`): `observation.state_privileged` =
    PSI0_STATE then the recorded privileged vector (object poses, target, held flags, progress), each
    grid time taking the latest robot-state sample (flags must not be interpolated)."""
    dims = ((session.get("extra") or {}).get("sim") or {}).get("privileged_dims")
    if not dims:
        return None
    extras = [json.loads(x) for x in states.column("extra").to_pylist()]
    keys = [f"privileged.{d}" for d in dims]
    if any(k not in extras[0] for k in keys):
        raise EpisodeError(RejectReason.MISSING_KEY, "session declares privileged_dims but robot_state.extra "
                           "lacks them", key=keys[0])
    values = np.array([[e[k] for k in keys] for e in extras], np.float64)
    pick = np.clip(np.searchsorted(ts, grid + 1e-9, side="right") - 1, 0, len(ts) - 1)
    names = PSI0_STATE.dims + tuple(keys)
    spec = FeatureSpec(STATE_PRIVILEGED, "float32", (len(names),), names)
    return spec, np.concatenate([state, values[pick]], axis=1)


def _check_values(episode: Path, robot: str, commands: pa.Table, states: pa.Table) -> str:
    """Commands within the embodiment's action limits, measured joints within its joint limits (+ margin);
    returns how the values were checked (for the metadata)."""
    try:
        emb = embodiments.get(embodiments.canonical(robot))
    except (ValueError, KeyError):
        return f"not checked: {robot!r} is not a registered embodiment (finite values only)"
    low, high = emb.action_space().bounds()
    _check_limits(episode, "commands", "action", commands.column("t").to_numpy(), fixed_column(commands, "action"),
                  low, high, PSI0_ACTION.dims, ACTION_TOLERANCE, f"{emb.name} action limits")
    t = states.column("t").to_numpy()
    low, high = G1_BODY.bounds()
    _check_limits(episode, "robot_state", "body_q", t, fixed_column(states, "body_q"), low, high, G1_BODY.dims,
                  STATE_MARGIN, f"{G1_BODY.name} joint limits + {STATE_MARGIN} rad")
    hands = PSI0_STATE.slice("hands")
    slow, shigh = emb.state_space().bounds()
    _check_limits(episode, "robot_state", "hand_q", t, fixed_column(states, "hand_q"), slow[hands], shigh[hands],
                  PSI0_HANDS.dims, STATE_MARGIN, f"{emb.name} hand joint limits + {STATE_MARGIN} rad")
    return f"{emb.name}: commands within action limits, joints within limits + {STATE_MARGIN} rad"


def _integrity_summary(integrity: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """What ingest knows about the recording's integrity, as the episode's metadata carries it."""
    verified, unverified = integrity.get("batches_verified", 0), integrity.get("batches_unverified", 0)
    if unverified == 0 and verified:
        checksums = f"verified ({verified} batches)"
    elif integrity.get("format") == FORMAT_V1:
        checksums = "none: format 1 recording, contents unverified"
    else:
        checksums = f"{verified} batches verified, {unverified} without a checksum"
    out: dict[str, Any] = {"format": integrity.get("format"), "checksums": checksums,
                           "limits": integrity.get("limits", "")}
    if integrity.get("truncated"):
        out["truncated"] = integrity["truncated"]
    if info.get("repairs"):
        out["repairs"] = info["repairs"]
    if info.get("write_error"):
        out["write_error"] = info.get("lost") or info["write_error"]
    return out


def decode_frame(data: bytes, encoding: str, width: int, height: int) -> np.ndarray:
    """One recorded camera frame (`schemas.recording.CAMERA_ENCODINGS`) -> RGB uint8 (H, W, 3)."""
    if encoding == "raw":
        return np.frombuffer(data, np.uint8).reshape(height, width, 3)
    import cv2  # noqa: PLC0415
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable JPEG")
    return bgr[..., ::-1].copy()


def _frames(episode: Path, camera: pa.Table, tv: np.ndarray, grid: np.ndarray) -> VideoRef:
    """Nearest recorded frame per grid time, written once as JPEG/PNG files in a cache dir."""
    right = np.clip(np.searchsorted(tv, grid), 1, len(tv) - 1)
    left = right - 1
    pick = np.where(np.abs(tv[left] - grid) <= np.abs(tv[right] - grid), left, right)
    encodings = camera.column("encoding").to_pylist()
    widths = camera.column("width").to_numpy()
    heights = camera.column("height").to_numpy()
    data = camera.column("data")
    digest = hashlib.sha256()
    for seg in sorted((episode / f"camera_{CAMERA}").glob("*.arrows")):
        digest.update(f"{seg.resolve()}:{seg.stat().st_size}:{seg.stat().st_mtime_ns}".encode())
    digest.update(pick.tobytes())
    root = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "psi0-teleop-frames")
    cache = root / digest.hexdigest()[:24]
    if not (cache / "done").is_file():
        tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(pick):
            blob = data[int(i)].as_py()
            if encodings[i] == "jpeg":
                name = f"{k:06d}.jpg"
            else:
                import cv2  # noqa: PLC0415
                rgb = decode_frame(blob, encodings[i], int(widths[i]), int(heights[i]))
                blob = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
                name = f"{k:06d}.png"
            (tmp / name).write_bytes(blob)
        (tmp / "done").write_text(json.dumps({"frames": len(pick)}))
        try:
            os.replace(tmp, cache)
        except OSError:                      # another worker won the race: use its copy
            import shutil  # noqa: PLC0415
            shutil.rmtree(tmp, ignore_errors=True)
    ext = ".jpg" if encodings[int(pick[0])] == "jpeg" else ".png"
    names = [f"{k:06d}{ext}" for k in range(len(pick))]
    try:
        decode_frame(data[int(pick[0])].as_py(), encodings[int(pick[0])], int(widths[pick[0]]), int(heights[pick[0]]))
    except ValueError as exc:
        raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"{episode}: camera frame undecodable ({exc})") from None
    return VideoRef(camera=CAMERA, kind="images", uri=str(cache), frame_count=len(pick), fps=FPS,
                    width=int(widths[pick[0]]), height=int(heights[pick[0]]),
                    codec="mjpeg" if ext == ".jpg" else "png", frames=tuple(names))


# ------------------------------------------------------------------------------------------ the Source
@dataclass(frozen=True)
class Teleop(Hand48Tokens):
    """psi0's own teleop recordings (`teleop record`): commands, full robot state and camera at the control rate."""

    name: str = SOURCE
    token_column: str | None = None          # tokens: 10 Hz deltas of action.hand48 (the stage-1 space)
    token_space: str = hand48.SPACE
    defaults: JobDefaults = JobDefaults(token_horizon=1, episodes_per_shard=32)

    @property
    def token_inputs(self) -> dict[str, str]:
        """The camera rides on the base, whose planar pose is not in the episode: it is held still."""
        return {"hand48": "action.hand48"}

    def discover(self, root: str) -> list[SourceRef]:
        return discover(root)

    def read(self, ref: SourceRef) -> Episode:
        return read(ref)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "summary": f"teleop recordings (`teleop record` sessions) at {FPS:g} fps, "
                                         f"{PSI0_ACTION.size}-D Psi0 actions",
            "layout": "<session>/session.json + episode_<k>/<stream>/*.arrows (schemas.recording), local paths",
            "fps": FPS, "embodiments": list(embodiments.names()), "features": features_summary(FEATURES),
            "derived": {
                "action": "recorded commands, zero-order hold at the dataset rate (the command in effect)",
                "observation.*": "recorded robot state, linear interpolation at the dataset rate",
                "observation.state.torso": "the previous frame's commanded torso rpy / height",
                f"observation.images.{CAMERA}": "the recorded frame nearest each grid time",
            },
            "tokens": f"{hand48.RATE:g} Hz deltas of action.hand48 (HUMAN_ACTION_48_DELTA)",
            "hand_qa": None,
            "defaults": asdict(self.defaults),
        }


TELEOP = Teleop()
