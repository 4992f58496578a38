"""The crash-safe teleop recording format: append-only Arrow IPC stream segments, fsynced often.

Layout of one session (one `teleop record` run)::

    <session>/session.json                 task, operator, robot, calibration, software, stream schemas
    <session>/events/000000.arrows          session-level events (keys between episodes, e-stop, quit)
    <session>/episode_000000/episode.json   outcome + times; written when the episode ends (atomic)
    <session>/episode_000000/<stream>/000000.arrows, 000001.arrows, ...

Streams: `inputs` (OperatorInput), `commands` (RobotCommand), `robot_state` (RobotState),
`camera_<name>` (JPEG or raw frames), `events`, `loop` (per-tick timing). Every row has `t`,
seconds on the recorder's one monotonic clock.

Why Arrow IPC *streams*: every record batch is a self-delimiting message, so a file cut anywhere
(SIGKILL, power loss) still reads up to its last complete batch, with no index to rebuild. The
writer thread turns rows buffered by the control loop into one batch per stream every
`flush_interval` (40 ms, on fixed deadlines) and fsyncs each file it touched, so at most ~flush_interval + one fsync
of data is ever at risk; `Recorder.stats()["max_at_risk_s"]` measures it. Segments roll by size.
`teleop.check` verifies and repairs; `read_stream` tolerates a truncated tail.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa

from schemas.durable import fsync_dir, write_json_atomic
from teleop.streams import BODY_SITES, HAND_SIDES, CameraFrame, OperatorInput, RobotCommand, RobotState

FORMAT = "psi0.teleop-recording/1"
SUFFIX = ".arrows"
SESSION_FILE = "session.json"
EPISODE_FILE = "episode.json"
EPISODE_PREFIX = "episode_"
FLUSH_INTERVAL = 0.04
SEGMENT_BYTES = 64 << 20
OUTCOMES = ("success", "failure", "discarded", "unlabeled", "interrupted")
"""Episode outcomes: marked by the operator (s/f/d), stopped without a mark, or cut by a crash."""

_F64, _F32 = pa.float64(), pa.float32()


def _vec(dtype: pa.DataType, n: int) -> pa.DataType:
    return pa.list_(dtype, n)


SCHEMAS: dict[str, pa.Schema] = {
    "inputs": pa.schema([
        ("t", _F64),
        ("poses", _vec(_F64, len(BODY_SITES) * 16)),          # BODY_SITES order, row-major 4x4 each
        ("pose_valid", _vec(pa.bool_(), len(BODY_SITES))),
        ("hand_keypoints", _vec(_F64, len(HAND_SIDES) * 63)),  # HAND_SIDES order, (21, 3) each
        ("hand_valid", _vec(pa.bool_(), len(HAND_SIDES))),
        ("axes", _vec(_F64, 4)),
        ("buttons", pa.string()),                               # sorted, "|"-joined
    ], metadata={"sites": "|".join(BODY_SITES), "hands": "|".join(HAND_SIDES)}),
    "commands": pa.schema([("t", _F64), ("action", _vec(_F32, 36)), ("flags", pa.string())]),
    "robot_state": pa.schema([
        ("t", _F64), ("body_q", _vec(_F64, 29)), ("body_dq", _vec(_F64, 29)), ("hand_q", _vec(_F64, 14)),
        ("imu_rpy", _vec(_F64, 3)), ("base_height", _F64), ("extra", pa.string()),   # extra: canonical JSON
    ]),
    "camera": pa.schema([("t", _F64), ("encoding", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
                         ("data", pa.binary())]),
    "events": pa.schema([("t", _F64), ("kind", pa.string()), ("detail", pa.string())]),
    "loop": pa.schema([("t", _F64), ("deadline", _F64), ("period", _F64), ("work", _F64), ("overruns", pa.int32())]),
}
"""Stream name (camera streams: "camera") -> Arrow schema. Kept in session.json too."""

EPISODE_STREAMS = ("inputs", "commands", "robot_state", "events", "loop")
"""Streams every episode has (created at its start); `camera_<name>` for each camera in the session meta."""
EVENT_KINDS = ("episode_start", "episode_stop", "mark", "key", "estop", "estop_release", "quit", "note")


def schema_for(stream: str) -> pa.Schema:
    return SCHEMAS["camera" if stream.startswith("camera_") else stream]


# ------------------------------------------------------------------------------------------ rows <-> batches
def _stack(rows: list[np.ndarray], dtype: Any, width: int) -> pa.Array:
    flat = np.ascontiguousarray(np.stack(rows).reshape(len(rows), width), dtype=dtype)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), width)


def inputs_batch(items: list[OperatorInput]) -> pa.RecordBatch:
    eye = np.eye(4)
    zeros = np.zeros((21, 3))
    return pa.record_batch([
        pa.array([x.t for x in items], _F64),
        _stack([np.stack([np.asarray(x.poses.get(s, eye), np.float64) for s in BODY_SITES]) for x in items],
               np.float64, len(BODY_SITES) * 16),
        pa.FixedSizeListArray.from_arrays(pa.array([bool(x.pose_valid.get(s, False)) for x in items for s in BODY_SITES]),
                                          len(BODY_SITES)),
        _stack([np.stack([np.asarray(x.hand_keypoints.get(h, zeros), np.float64) for h in HAND_SIDES]) for x in items],
               np.float64, len(HAND_SIDES) * 63),
        pa.FixedSizeListArray.from_arrays(pa.array([bool(x.hand_valid.get(h, False)) for x in items for h in HAND_SIDES]),
                                          len(HAND_SIDES)),
        _stack([np.asarray(x.axes, np.float64) for x in items], np.float64, 4),
        pa.array(["|".join(sorted(x.buttons)) for x in items], pa.string()),
    ], schema=SCHEMAS["inputs"])


def commands_batch(items: list[RobotCommand]) -> pa.RecordBatch:
    return pa.record_batch([
        pa.array([x.t for x in items], _F64),
        _stack([np.asarray(x.action, np.float32) for x in items], np.float32, 36),
        pa.array(["|".join(sorted(x.flags)) for x in items], pa.string()),
    ], schema=SCHEMAS["commands"])


def states_batch(items: list[RobotState]) -> pa.RecordBatch:
    return pa.record_batch([
        pa.array([x.t for x in items], _F64),
        _stack([np.asarray(x.body_q, np.float64) for x in items], np.float64, 29),
        _stack([np.asarray(x.body_dq, np.float64) for x in items], np.float64, 29),
        _stack([np.asarray(x.hand_q, np.float64) for x in items], np.float64, 14),
        _stack([np.asarray(x.imu_rpy, np.float64) for x in items], np.float64, 3),
        pa.array([float(x.base_height) for x in items], _F64),
        pa.array([json.dumps(x.extra, sort_keys=True) for x in items], pa.string()),
    ], schema=SCHEMAS["robot_state"])


def encode_image(image: np.ndarray, encoding: str, quality: int = 90) -> bytes:
    """RGB uint8 (H, W, 3) -> bytes: "jpeg" (OpenCV) or "raw" (row-major RGB)."""
    if encoding == "raw":
        return np.ascontiguousarray(image, np.uint8).tobytes()
    import cv2  # noqa: PLC0415
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def decode_image(data: bytes, encoding: str, width: int, height: int) -> np.ndarray:
    if encoding == "raw":
        return np.frombuffer(data, np.uint8).reshape(height, width, 3)
    import cv2  # noqa: PLC0415
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable JPEG")
    return bgr[..., ::-1].copy()


def camera_batch(items: list[CameraFrame], encoding: str) -> pa.RecordBatch:
    return pa.record_batch([
        pa.array([x.t for x in items], _F64),
        pa.array([encoding] * len(items), pa.string()),
        pa.array([x.image.shape[1] for x in items], pa.int32()),
        pa.array([x.image.shape[0] for x in items], pa.int32()),
        pa.array([encode_image(x.image, encoding) for x in items], pa.binary()),
    ], schema=SCHEMAS["camera"])


def rows_batch(stream: str, rows: list[tuple]) -> pa.RecordBatch:
    """events / loop rows (plain tuples in schema order)."""
    schema = SCHEMAS[stream]
    cols = list(zip(*rows))
    return pa.record_batch([pa.array(list(c), f.type) for c, f in zip(cols, schema)], schema=schema)


def table_to_inputs(table: pa.Table) -> list[OperatorInput]:
    t = table.column("t").to_numpy()
    poses = _fixed(table, "poses").reshape(-1, len(BODY_SITES), 4, 4)
    valid = _fixed(table, "pose_valid").reshape(-1, len(BODY_SITES))
    hands = _fixed(table, "hand_keypoints").reshape(-1, len(HAND_SIDES), 21, 3)
    hvalid = _fixed(table, "hand_valid").reshape(-1, len(HAND_SIDES))
    axes = _fixed(table, "axes").reshape(-1, 4)
    buttons = table.column("buttons").to_pylist()
    return [OperatorInput(t=float(t[i]), poses={s: poses[i, j] for j, s in enumerate(BODY_SITES)},
                          pose_valid={s: bool(valid[i, j]) for j, s in enumerate(BODY_SITES)},
                          hand_keypoints={h: hands[i, j] for j, h in enumerate(HAND_SIDES)},
                          hand_valid={h: bool(hvalid[i, j]) for j, h in enumerate(HAND_SIDES)},
                          axes=axes[i], buttons=frozenset(b for b in buttons[i].split("|") if b))
            for i in range(len(t))]


def table_to_commands(table: pa.Table) -> list[RobotCommand]:
    t = table.column("t").to_numpy()
    action = _fixed(table, "action").reshape(-1, 36)
    flags = table.column("flags").to_pylist()
    return [RobotCommand(float(t[i]), action[i], frozenset(f for f in flags[i].split("|") if f)) for i in range(len(t))]


def _fixed(table: pa.Table, key: str) -> np.ndarray:
    col = table.column(key).combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False)


def fixed_column(table: pa.Table, key: str, width: int) -> np.ndarray:
    """A fixed_size_list column as a dense (N, width) array (empty-safe)."""
    if table.num_rows == 0:
        return np.zeros((0, width))
    return _fixed(table, key).reshape(-1, width)


# ------------------------------------------------------------------------------------------ segment writing
class SegmentedStream:
    """One stream's append-only segments `<dir>/<seq:06d>.arrows`, rolled after `segment_bytes`.

    `write` (writer thread) hands bytes to the OS; `sync` (syncer thread) makes them durable. They run
    concurrently so a slow disk flush never delays the next write; `_sync_lock` keeps a sync off a
    file that is being closed."""

    def __init__(self, directory: Path, schema: pa.Schema, segment_bytes: int = SEGMENT_BYTES):
        self.dir = directory
        self.schema = schema
        self.segment_bytes = segment_bytes
        self.seq = -1
        self._file: Any = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._sync_lock = threading.Lock()
        self.rows = 0
        self.dirty = False

    def open(self) -> None:
        if self._writer is None:
            self._open_next()

    def _open_next(self) -> None:
        self.seq += 1
        new_dir = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        f = open(self.dir / f"{self.seq:06d}{SUFFIX}", "wb")
        writer = pa.ipc.new_stream(f, self.schema)
        f.flush()
        os.fsync(f.fileno())
        fsync_dir(self.dir)
        if new_dir:
            fsync_dir(self.dir.parent)
        with self._sync_lock:
            self._file, self._writer = f, writer

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None or self._file.tell() >= self.segment_bytes:
            self._roll()
        self._writer.write_batch(batch)
        self._file.flush()                        # in the OS page cache: survives a crash of this process
        self.rows += batch.num_rows
        self.dirty = True

    def sync(self) -> None:
        """fdatasync the open segment (data + the size needed to read it back): survives power loss."""
        with self._sync_lock:
            if self.dirty and self._file is not None:
                self.dirty = False
                os.fdatasync(self._file.fileno())

    def _roll(self) -> None:
        self.close()
        self._open_next()

    def close(self) -> None:
        with self._sync_lock:
            if self._writer is not None:
                self._writer.close()                 # end-of-stream marker
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._writer = None
                self._file = None
                self.dirty = False


# ------------------------------------------------------------------------------------------ recorder
def software_version() -> dict[str, str]:
    """psi0 version + git commit of the checkout (when it is one): what produced these bytes."""
    out = {"psi0": "0.1.0", "pyarrow": pa.__version__, "numpy": np.__version__}
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip()
        if commit:
            out["git_commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    return out


@dataclass
class SessionMeta:
    task: str
    robot: str
    operator: str = ""
    device: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    control_rate_hz: float = 50.0
    camera_encoding: str = "jpeg"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, start_monotonic: float, start_wall: float) -> dict[str, Any]:
        return {
            "format": FORMAT, "task": self.task, "operator": self.operator, "robot": self.robot,
            "device": self.device, "cameras": self.cameras, "calibration": _jsonable(self.calibration),
            "control_rate_hz": self.control_rate_hz, "camera_encoding": self.camera_encoding,
            "software": software_version(),
            "clock": {"kind": "time.monotonic", "start_monotonic": start_monotonic,
                      "start_wall_unix": start_wall, "note": "wall time is informational; all t are monotonic"},
            "streams": {name: schema.to_string(show_schema_metadata=False) for name, schema in SCHEMAS.items()},
            "flush_interval_s": FLUSH_INTERVAL, "extra": _jsonable(self.extra),
        }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


class Recorder:
    """Thread-safe, append-only session writer. The control loop calls `record_*` (cheap: a list
    append under a lock); a background thread encodes, writes and fsyncs every `flush_interval`."""

    def __init__(self, session_dir: str | Path, meta: SessionMeta, *, flush_interval: float = FLUSH_INTERVAL,
                 segment_bytes: int = SEGMENT_BYTES, clock: Any = time.monotonic):
        self.dir = Path(session_dir)
        if (self.dir / SESSION_FILE).exists():
            raise FileExistsError(f"{self.dir} already holds a recording session")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.flush_interval = float(flush_interval)
        self.segment_bytes = int(segment_bytes)
        self.clock = clock
        self.encoding = meta.camera_encoding
        self.start = clock()
        warm_up(self.encoding)
        write_json_atomic(self.dir / SESSION_FILE, meta.to_json(self.start, time.time()))
        self._lock = threading.Lock()              # guards _pending (held for list appends only)
        self._io = threading.Lock()                # serializes swap + write + fsync; the loop never waits on it
        self._accepting = False
        self._pending: dict[str, list] = {}
        self._oldest: float | None = None           # arrival time of the oldest row not yet durable
        self._session_streams: dict[str, SegmentedStream] = {}
        self._episode_streams: dict[str, SegmentedStream] = {}
        self.episode: int | None = None             # index of the episode being recorded
        self.episode_dir: Path | None = None
        self._episode_info: dict[str, Any] = {}
        self.episodes: list[dict[str, Any]] = []    # finished episodes (episode.json contents)
        self.max_at_risk = 0.0                     # arrival -> fsynced (power loss)
        self.max_unwritten = 0.0                   # arrival -> written to the OS (process crash)
        self.max_sync = 0.0                        # longest fdatasync round
        self.flushes = 0
        self.bytes_written = 0
        self.write_errors: list[str] = []
        self._unsynced: list[float] = []         # arrival time of the oldest row of each write not yet synced
        self._sync_wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder-write", daemon=True)
        self._syncer = threading.Thread(target=self._run_sync, name="recorder-sync", daemon=True)
        self._thread.start()
        self._syncer.start()

    # -- producer side (control loop)
    def _put(self, stream: str, item: Any) -> None:
        now = self.clock()
        with self._lock:
            self._pending.setdefault(stream, []).append(item)
            if self._oldest is None:
                self._oldest = now

    @property
    def recording(self) -> bool:
        """True while an episode is open: samples are kept only then."""
        return self._accepting

    def record_input(self, x: OperatorInput) -> None:
        if self.recording:
            self._put("inputs", x)

    def record_command(self, x: RobotCommand) -> None:
        if self.recording:
            self._put("commands", x)

    def record_state(self, x: RobotState) -> None:
        if self.recording:
            self._put("robot_state", x)

    def record_camera(self, x: CameraFrame) -> None:
        if self.recording:
            self._put(f"camera_{x.camera}", x)

    def record_tick(self, t: float, deadline: float, period: float, work: float, overruns: int) -> None:
        if self.recording:
            self._put("loop", (t, deadline, period, work, overruns))

    def event(self, t: float, kind: str, detail: str | dict = "") -> None:
        """An event in the current episode's stream, or the session's between episodes."""
        if isinstance(detail, dict):
            detail = json.dumps(_jsonable(detail), sort_keys=True)
        target = "events" if self.recording else "session_events"
        self._put(target, (float(t), kind, detail))

    def start_episode(self, t: float) -> int:
        """Begin episode `episode_<k>` (k = next free index). The known streams' first segments are
        created (and their directories fsynced) now, so the first writes do not wait on metadata."""
        if self.recording:
            raise RuntimeError("an episode is already being recorded")
        self.flush()
        index = next_episode_index(self.dir)
        with self._io:
            self.episode_dir = self.dir / f"{EPISODE_PREFIX}{index:06d}"
            self.episode_dir.mkdir()
            fsync_dir(self.dir)
            for name in EPISODE_STREAMS + tuple(f"camera_{c}" for c in sorted(self.meta.cameras)):
                self._stream(name).open()
        self.episode = index
        self._episode_info = {"index": index, "start_t": float(t), "task": self.meta.task, "outcome": "unlabeled"}
        self._accepting = True
        self.event(t, "episode_start", {"index": index})
        return index

    def stop_episode(self, t: float, outcome: str | None = None) -> dict[str, Any]:
        """End the episode: flush + close its streams, write episode.json (atomic). `outcome` None
        takes the operator's mark made during the episode, else `unlabeled`."""
        if not self.recording:
            raise RuntimeError("no episode is being recorded")
        outcome = outcome or self._episode_info.get("outcome_mark") or "unlabeled"
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        with self._lock:                           # last row of the episode, then stop accepting
            self._pending.setdefault("events", []).append((float(t), "episode_stop",
                                                           json.dumps({"outcome": outcome})))
            self._accepting = False
            if self._oldest is None:
                self._oldest = self.clock()
        self.flush()
        with self._io:
            for s in self._episode_streams.values():
                s.close()
            rows = {name: s.rows for name, s in sorted(self._episode_streams.items())}
            self._episode_streams = {}
            info = dict(self._episode_info, stop_t=float(t), outcome=outcome, rows=rows)
            info.pop("outcome_mark", None)
            write_json_atomic(self.episode_dir / EPISODE_FILE, info)
            self.episodes.append(info)
            self.episode = None
            self.episode_dir = None
        return info

    def mark(self, t: float, outcome: str) -> dict[str, Any] | None:
        """Label the running episode (applied when it stops) or the last finished one (rewritten now)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        if self.recording:
            self.event(t, "mark", {"outcome": outcome})
            self._episode_info["outcome_mark"] = outcome
            return None
        if not self.episodes:
            return None
        info = self.episodes[-1]
        info["outcome"] = outcome
        self.event(t, "mark", {"outcome": outcome, "index": info["index"]})
        with self._io:
            write_json_atomic(self.dir / f"{EPISODE_PREFIX}{info['index']:06d}" / EPISODE_FILE, info)
        return info

    @property
    def pending_mark(self) -> str | None:
        return self._episode_info.get("outcome_mark") if self.recording else None

    # -- writer side
    def _run(self) -> None:
        # fixed deadlines (not "sleep after each flush"): a slow flush does not stretch the window
        next_flush = time.monotonic() + self.flush_interval
        while not self._stop.wait(max(0.0, next_flush - time.monotonic())):
            next_flush = max(next_flush + self.flush_interval, time.monotonic())
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - keep the loop alive; surfaced in stats and status line
                self.write_errors.append(f"{type(exc).__name__}: {exc}")

    def flush(self) -> None:
        """Write everything buffered as one batch per stream (the writer thread does this every
        `flush_interval`). Written rows survive a crash of this process; the syncer thread then
        fdatasyncs them (power loss). Ages measured: `max_unwritten_s` (arrival -> written, what a
        SIGKILL can lose) and `max_at_risk_s` (arrival -> synced)."""
        with self._io:
            with self._lock:
                pending, self._pending = self._pending, {}
                oldest, self._oldest = self._oldest, None
            wrote = False
            for name, items in sorted(pending.items()):
                if not items:
                    continue
                batch = self._batch(name, items)
                self._stream(name).write(batch)
                self.bytes_written += batch.nbytes
                wrote = True
            if wrote:
                self.flushes += 1
            if oldest is not None:
                self.max_unwritten = max(self.max_unwritten, self.clock() - oldest)
                with self._lock:
                    self._unsynced.append(oldest)
                self._sync_wake.set()

    def sync(self) -> None:
        """fdatasync every stream written since the last sync."""
        with self._lock:
            unsynced, self._unsynced = self._unsynced, []
            streams = list(self._session_streams.values()) + list(self._episode_streams.values())
        start = self.clock()
        for stream in streams:
            stream.sync()
        if unsynced:
            end = self.clock()
            self.max_sync = max(self.max_sync, end - start)
            self.max_at_risk = max(self.max_at_risk, end - min(unsynced))

    def _run_sync(self) -> None:
        while not self._stop.is_set():
            self._sync_wake.wait()
            self._sync_wake.clear()
            try:
                self.sync()
            except Exception as exc:  # noqa: BLE001 - surfaced in stats and the status line
                self.write_errors.append(f"sync: {type(exc).__name__}: {exc}")

    def _stream(self, name: str) -> SegmentedStream:
        """The stream a pending row list goes to, created on first use (insertions under `_lock`:
        the syncer thread iterates these dicts)."""
        if name == "session_events":
            if "events" not in self._session_streams:
                stream = SegmentedStream(self.dir / "events", SCHEMAS["events"], self.segment_bytes)
                with self._lock:
                    self._session_streams["events"] = stream
            return self._session_streams["events"]
        if name not in self._episode_streams:
            assert self.episode_dir is not None
            stream = SegmentedStream(self.episode_dir / name, schema_for(name), self.segment_bytes)
            with self._lock:
                self._episode_streams[name] = stream
        return self._episode_streams[name]

    def _batch(self, name: str, items: list) -> pa.RecordBatch:
        if name == "inputs":
            return inputs_batch(items)
        if name == "commands":
            return commands_batch(items)
        if name == "robot_state":
            return states_batch(items)
        if name.startswith("camera_"):
            return camera_batch(items, self.encoding)
        return rows_batch("events" if name == "session_events" else name, items)

    def stats(self) -> dict[str, Any]:
        return {"flushes": self.flushes, "bytes": self.bytes_written, "max_at_risk_s": self.max_at_risk,
                "max_unwritten_s": self.max_unwritten, "max_sync_s": self.max_sync, "errors": list(self.write_errors)}

    def close(self, t: float | None = None) -> None:
        """A clean end: stop a running episode (keeping its mark), flush, close every segment."""
        if self.recording:
            self.stop_episode(self.clock() if t is None else t)
        self._stop.set()
        self._thread.join()
        self.flush()
        self._sync_wake.set()
        self._syncer.join()
        self.sync()
        with self._io:
            for s in self._session_streams.values():
                s.close()
            self._session_streams = {}


def warm_up(encoding: str = "jpeg") -> None:
    """Build and serialize one batch of every stream type once. The first batch otherwise imports
    modules (pyarrow.compute, codecs) inside the writer thread, which on a busy machine took seconds:
    seconds of data at risk at every session start."""
    x = OperatorInput(0.0, {s: np.eye(4) for s in BODY_SITES}, {s: True for s in BODY_SITES},
                      {h: np.zeros((21, 3)) for h in HAND_SIDES}, {h: True for h in HAND_SIDES}, np.zeros(4))
    batches = {"inputs": inputs_batch([x]), "commands": commands_batch([RobotCommand(0.0, np.zeros(36, np.float32))]),
               "robot_state": states_batch([RobotState(0.0, np.zeros(29), np.zeros(29), np.zeros(14), np.zeros(3), 0.75)]),
               "camera": camera_batch([CameraFrame(0.0, "warm", np.zeros((8, 8, 3), np.uint8))], encoding),
               "events": rows_batch("events", [(0.0, "note", "")]), "loop": rows_batch("loop", [(0.0, 0.0, 0.0, 0.0, 0)])}
    for name, batch in batches.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, SCHEMAS[name]) as writer:
            writer.write_batch(batch)
        pa.ipc.open_stream(sink.getvalue()).read_all()


def next_episode_index(session_dir: Path) -> int:
    existing = [int(p.name[len(EPISODE_PREFIX):]) for p in session_dir.glob(f"{EPISODE_PREFIX}*")
                if p.name[len(EPISODE_PREFIX):].isdigit()]
    return max(existing, default=-1) + 1


# ------------------------------------------------------------------------------------------ reading
@dataclass
class SegmentScan:
    """What a segment holds: byte offset after its last complete message, batches, whether it ended cleanly."""
    path: Path
    size: int
    good_bytes: int
    batches: int
    rows: int
    clean_end: bool
    error: str = ""
    last_t: float | None = None

    @property
    def truncated(self) -> bool:
        return self.good_bytes < self.size or not self.clean_end


_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def scan_segment(path: Path, expected: pa.Schema | None = None) -> tuple[SegmentScan, pa.Schema | None, list[pa.RecordBatch]]:
    """Read messages one by one; stop at the first incomplete or undecodable one."""
    data = path.read_bytes()
    source = pa.BufferReader(data)
    reader = pa.ipc.MessageReader.open_stream(source)
    schema, batches, good, error, clean = None, [], 0, "", False
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            clean = source.tell() == len(data)
            if not clean:
                error = f"{len(data) - source.tell()} bytes after the end-of-stream marker"
            break
        except (OSError, pa.ArrowInvalid) as exc:
            error = str(exc)
            break
        try:
            if schema is None:
                if message.type != "schema":
                    raise pa.ArrowInvalid(f"first message is a {message.type}, not a schema")
                schema = pa.ipc.read_schema(message)
                if expected is not None and not schema.equals(expected):
                    raise pa.ArrowInvalid(f"schema differs from the {path.parent.name} stream schema")
            else:
                batch = pa.ipc.read_record_batch(message, schema)
                batch.validate(full=True)
                batches.append(batch)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            error = f"undecodable {message.type} message: {exc}"
            break
        good = source.tell()
    rows = sum(b.num_rows for b in batches)
    last_t = None
    if rows and "t" in batches[-1].schema.names and batches[-1].num_rows:
        last_t = float(batches[-1].column("t")[-1].as_py())
    if clean:
        good = len(data)
    return SegmentScan(path, len(data), good, len(batches), rows, clean, error, last_t), schema, batches


def segments(stream_dir: Path) -> list[Path]:
    return sorted(p for p in stream_dir.glob(f"*{SUFFIX}") if p.is_file())


def read_stream(stream_dir: str | Path) -> pa.Table:
    """All complete rows of a stream (every segment, in order); a truncated tail is skipped."""
    stream_dir = Path(stream_dir)
    schema = schema_for(stream_dir.name)
    batches = []
    for seg in segments(stream_dir):
        _, _, bs = scan_segment(seg, schema)
        batches.extend(bs)
    return pa.Table.from_batches(batches, schema=schema)


def stream_names(episode_dir: Path) -> list[str]:
    return sorted(p.name for p in episode_dir.iterdir() if p.is_dir() and segments(p))


def episode_dirs(session_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(session_dir).glob(f"{EPISODE_PREFIX}*") if p.is_dir())


def load_session(session_dir: str | Path) -> dict[str, Any]:
    with open(Path(session_dir) / SESSION_FILE, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{session_dir}: not a {FORMAT} session (format={meta.get('format')!r})")
    return meta


def episode_info(episode_dir: Path) -> dict[str, Any]:
    """episode.json, or (episode cut by a crash) what the events stream says, outcome `interrupted`."""
    path = episode_dir / EPISODE_FILE
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    info: dict[str, Any] = {"index": int(episode_dir.name[len(EPISODE_PREFIX):]), "outcome": "interrupted"}
    if (episode_dir / "events").is_dir():
        events = read_stream(episode_dir / "events").to_pylist()
        for e in events:
            if e["kind"] == "episode_start":
                info["start_t"] = e["t"]
            if e["kind"] == "mark":
                info["outcome_mark"] = json.loads(e["detail"]).get("outcome")
    return info


def is_session(path: Path) -> bool:
    return (path / SESSION_FILE).is_file()


def find_sessions(root: str | Path) -> list[Path]:
    """Session dirs at or below `root`, sorted."""
    root = Path(root)
    if is_session(root):
        return [root]
    return sorted(p.parent for p in root.rglob(SESSION_FILE))


def iter_inputs(path: Path) -> Iterator[OperatorInput]:
    """OperatorInputs of a recording: a session (all episodes in order), an episode dir or an inputs dir."""
    path = Path(path)
    if path.name == "inputs":
        yield from table_to_inputs(read_stream(path))
    elif (path / "inputs").is_dir():
        yield from table_to_inputs(read_stream(path / "inputs"))
    else:
        for ep in episode_dirs(path):
            if (ep / "inputs").is_dir():
                yield from table_to_inputs(read_stream(ep / "inputs"))


def _accepts(path: Path) -> bool:
    return path.is_dir() and (is_session(path) or (path / "inputs").is_dir() or path.name == "inputs")


def register_replay_reader() -> None:
    """Teach `teleop.devices.replay.ReplayInput` to read recordings (sessions, episodes, inputs dirs)."""
    from teleop.devices.replay import register_reader  # noqa: PLC0415
    register_reader(_accepts, lambda p: list(iter_inputs(p)))


def write_stream(stream_dir: Path, batches: Iterable[pa.RecordBatch]) -> None:
    """Write a complete stream in one segment (tests, repair)."""
    stream = SegmentedStream(stream_dir, schema_for(stream_dir.name))
    for b in batches:
        stream.write(b)
    stream.close()
