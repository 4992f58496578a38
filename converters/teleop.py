"""Teleop recordings (`teleop record` sessions) -> Episodes at the dataset rate (30 fps).

Layout: see `teleop.recording` (`<session>/session.json`, `<session>/episode_<k>/<stream>/*.arrows`).

What `read` produces (one feature set for every robot; the embodiment is in the metadata):
- timeline: a 30 Hz grid from the first instant every needed stream has data to the last one.
- `action` (PSI0_ACTION 36) = the command in effect at each grid time (zero-order hold of the 50 Hz
  `commands` stream: what the robot was actually told), i.e. hands 14 + arms 14 + 8-DoF lower body.
- `observation.state` (PSI0_STATE 36) = measured hands 14 + measured arms 14 (robot_state, linearly
  interpolated) + the previous frame's commanded torso rpy/height (0, 0, 0, 0.75 at frame 0), as the
  reference converter builds it, padded to 36.
- full robot state as extra features: `observation.body_q` / `observation.body_dq` (29, legs and
  waist included), `observation.hand_q` (14), `observation.base` (imu roll/pitch/yaw + base height; a
  separate (1,) feature would be read back by LeRobot as a scalar and fail to load).
- `observation.images.egocentric`: the frame nearest each grid time, as a `VideoRef(kind="images")`
  over JPEGs extracted (bytes as recorded, no re-encode) to a per-episode cache directory.
- quality: fractions of frames whose command was held / had a tracker lost / was under e-stop, and
  the loop's p99 period jitter. Episodes the operator discarded are not listed by `discover`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from schemas import NOMINAL_TORSO_HEIGHT, PSI0_ACTION, PSI0_STATE, Episode, EpisodeError, EpisodeMeta, FeatureSpec, \
    RejectReason, SourceRef, VideoRef
from schemas.actions import PSI0_HANDS
from schemas.embodiments import G1_BODY
from schemas.episode import build_frames

log = logging.getLogger("psi0.converters.teleop")

SOURCE = "teleop"
FPS = 30.0
CAMERA = "egocentric"
MIN_SECONDS = 0.2
CACHE_ENV = "PSI0_TELEOP_FRAME_CACHE"

FEATURES: dict[str, FeatureSpec] = {
    spec.key: spec for spec in (
        FeatureSpec("observation.state", "float32", (36,), PSI0_STATE.dims),
        FeatureSpec("action", "float32", (36,), PSI0_ACTION.dims),
        FeatureSpec("observation.body_q", "float32", (29,), G1_BODY.dims),
        FeatureSpec("observation.body_dq", "float32", (29,), G1_BODY.dims),
        FeatureSpec("observation.hand_q", "float32", (14,), PSI0_HANDS.dims),
        FeatureSpec("observation.base", "float32", (4,), ("imu_roll", "imu_pitch", "imu_yaw", "base_height")),
        FeatureSpec(f"observation.images.{CAMERA}", "video", (120, 160, 3)),
    )
}
"""The video shape is the sim camera's; the shard writer re-encodes at the job's --video-size."""

EMBODIMENTS = {"g1-dex3": "g1_dex3", "h1-inspire": "h1_inspire"}


# ------------------------------------------------------------------------------------------ discover
def task_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


def discover(root: str) -> list[SourceRef]:
    """Every recorded episode under `root` except those the operator discarded, sorted by id.

    Sessions with an unreadable session.json are listed (one ref each) so `read` rejects them."""
    from teleop.recording import episode_dirs, episode_info, find_sessions, load_session  # noqa: PLC0415
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


def _stream(episode: Path, name: str) -> pa.Table:
    from teleop.recording import read_stream, segments  # noqa: PLC0415
    directory = episode / name
    if not directory.is_dir() or not segments(directory):
        raise EpisodeError(RejectReason.MISSING_KEY, f"{episode}: no '{name}' stream", key=name)
    return read_stream(directory)


def _read(ref: SourceRef) -> Episode:
    from teleop.recording import episode_info, fixed_column, load_session  # noqa: PLC0415
    episode = Path(ref.uri)
    session = load_session(ref.get("session") or episode.parent)
    info = episode_info(episode)
    commands = _stream(episode, "commands")
    states = _stream(episode, "robot_state")
    camera = _stream(episode, f"camera_{CAMERA}")
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
    action = fixed_column(commands, "action", 36)[ci].astype(np.float64)
    flags = commands.column("flags").to_pylist()
    held = [flags[i] for i in ci]
    # state: linear interpolation of the 50 Hz robot state
    def interp(values: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(grid, ts, values[:, j]) for j in range(values.shape[1])], axis=1)

    body_q = interp(fixed_column(states, "body_q", 29))
    body_dq = interp(fixed_column(states, "body_dq", 29))
    hand_q = interp(fixed_column(states, "hand_q", 14))
    imu = interp(fixed_column(states, "imu_rpy", 3))
    height = interp(states.column("base_height").to_numpy()[:, None])
    for name, arr in (("action", action), ("body_q", body_q), ("hand_q", hand_q), ("imu_rpy", imu)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise EpisodeError(RejectReason.NON_FINITE, f"{episode}: {name} has {int(bad.sum())} non-finite values",
                               field=name)
    lower = action[:, PSI0_ACTION.slice("lower_body")]
    prev = np.empty((n, 4))
    prev[0] = (0.0, 0.0, 0.0, NOMINAL_TORSO_HEIGHT)
    prev[1:] = lower[:-1, 0:4]
    state = np.zeros((n, 36))
    state[:, 0:14], state[:, 14:28], state[:, 28:32] = hand_q, body_q[:, 15:29], prev

    video = _frames(episode, camera, tv, grid)
    t = grid - grid[0]
    frames = build_frames(t, {"observation.state": state, "action": action, "observation.body_q": body_q,
                              "observation.body_dq": body_dq, "observation.hand_q": hand_q,
                              "observation.base": np.concatenate([imu, height], axis=1)})
    quality = {
        "hold_fraction": float(np.mean(["hold" in f.split("|") for f in held])),
        "tracker_lost_fraction": float(np.mean([any(x.endswith("_lost") for x in f.split("|")) for f in held])),
        "estop_fraction": float(np.mean(["estop" in f.split("|") for f in held])),
    }
    if (episode / "loop").is_dir():
        loop = _stream(episode, "loop")
        period = loop.column("period").to_numpy()
        period = period[np.isfinite(period)]
        if period.size:
            nominal = 1.0 / float(session.get("control_rate_hz", 50.0))
            quality["loop_jitter_p99_ms"] = float(np.percentile(np.abs(period - nominal), 99) * 1e3)
    robot = str(session.get("robot", "g1-dex3"))
    task = str(session.get("task", ""))
    derived = {
        "action": "recorded 50 Hz commands, zero-order hold at 30 fps (the command in effect)",
        "observation.state.torso": "previous frame's commanded torso rpy/height (0, 0, 0, 0.75 at t=0)",
        "observation.*": "recorded robot state, linear interpolation at 30 fps",
        f"observation.images.{CAMERA}": "recorded frame nearest each 30 fps grid time",
        "task": "session task name (underscores -> spaces, sentence case)",
    }
    words = re.sub(r"[_\s]+", " ", task).strip()
    extra = {"outcome": info.get("outcome", ""), "robot": robot, "operator": session.get("operator", ""),
             "device": session.get("device", {}).get("kind", ""), "session": Path(ref.get("session")).name,
             "episode": episode.name, "calibration": session.get("calibration", {}),
             "software": session.get("software", {}), "t_start_monotonic": float(grid[0])}
    meta = EpisodeMeta(source=SOURCE, source_id=ref.source_id, embodiment=EMBODIMENTS.get(robot, robot), fps=FPS,
                       task=words[:1].upper() + words[1:], task_name=task_key(task), quality=quality, derived=derived,
                       extra=extra)
    return Episode(meta, frames, dict(FEATURES), {video.key: video})


def _frames(episode: Path, camera: pa.Table, tv: np.ndarray, grid: np.ndarray) -> VideoRef:
    """Nearest recorded frame per grid time, written once as JPEG/PNG files in a cache dir."""
    from teleop.recording import decode_image  # noqa: PLC0415
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
    cache = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "psi0-teleop-frames") / digest.hexdigest()[:24]
    if not (cache / "done").is_file():
        tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(pick):
            blob = data[int(i)].as_py()
            if encodings[i] == "jpeg":
                name = f"{k:06d}.jpg"
            else:
                import cv2  # noqa: PLC0415
                rgb = decode_image(blob, encodings[i], int(widths[i]), int(heights[i]))
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
        decode_image(data[int(pick[0])].as_py(), encodings[int(pick[0])], int(widths[pick[0]]), int(heights[pick[0]]))
    except ValueError as exc:
        raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"{episode}: camera frame undecodable ({exc})") from None
    return VideoRef(camera=CAMERA, kind="images", uri=str(cache), frame_count=len(pick), fps=FPS,
                    width=int(widths[pick[0]]), height=int(heights[pick[0]]),
                    codec="mjpeg" if ext == ".jpg" else "png", frames=tuple(names))
