"""The teleop recording format (`psi0.teleop-recording/2`): the contract between the recorder
(`teleop/`) and every reader of recordings (`converters/teleop.py`, `teleop check`, replay).

Layout of one session (one `teleop record` run)::

    <session>/session.json                 task, operator, robot, calibration, software, stream schemas
    <session>/events/000000.arrows          session-level events (keys between episodes, e-stop, quit)
    <session>/episode_000000/episode.json   outcome + times; written when the episode ends (atomic)
    <session>/episode_000000/<stream>/000000.arrows, 000001.arrows, ...

Streams: `inputs` (OperatorInput), `commands` (RobotCommand), `robot_state` (RobotState),
`camera_<name>` (JPEG or raw frames), `events`, `loop` (per-tick timing). Every row has `t`,
seconds on the recorder's one monotonic clock.

Each segment is an Arrow IPC *stream*: every record batch is a self-delimiting message, so a file
cut anywhere (SIGKILL, power loss) still reads up to its last complete batch, with no index to
rebuild. Format 2 adds a checksum per batch: the CRC-32 of the batch's message body, stored as the
batch's IPC custom metadata (`CHECKSUM_KEY`), so bytes changed on disk after writing are found
(`SegmentScan.corrupt`) instead of read as data. Format 1 recordings (no checksums) still read; their
contents are reported as unverified. This module holds what defines the bytes: the record types, the stream schemas, the
codecs between records and batches, and the reader (which tolerates a truncated tail). Writing
(threads, fsync policy, segment rolling) is the recorder's business; image codecs (JPEG) are the
business of whoever encodes or decodes pixels. Vector widths come from the embodiment tables.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from schemas.actions import PSI0_ACTION, PSI0_HANDS
from schemas.embodiments import G1_BODY, MEDIAPIPE_LANDMARKS
from schemas.episode import jsonable

FORMAT = "psi0.teleop-recording/2"
FORMAT_V1 = "psi0.teleop-recording/1"
FORMATS_READ = (FORMAT_V1, FORMAT)
"""Session formats this reader accepts: 1 (no per-batch checksums) and 2."""
CHECKSUM_KEY = "psi0.crc32"
"""Format 2: IPC custom metadata key of every record batch: CRC-32 of its message body, 8 hex digits."""
SUFFIX = ".arrows"
SESSION_FILE = "session.json"
EPISODE_FILE = "episode.json"
EPISODE_PREFIX = "episode_"
OUTCOMES = ("success", "failure", "discarded", "unlabeled", "interrupted")
"""Episode outcomes: marked by the operator (s/f/d), stopped without a mark, or cut by a crash."""
END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"
"""The Arrow IPC end-of-stream marker a cleanly closed segment ends with."""
CAMERA_ENCODINGS = ("jpeg", "raw")
"""`camera_<name>.data`: a JPEG file's bytes, or row-major RGB uint8 (`raw`)."""

# ------------------------------------------------------------------------------------------ records
BODY_SITES: tuple[str, ...] = ("head", "pelvis", "left_wrist", "right_wrist", "left_foot", "right_foot")
"""Named tracker sites. Head, pelvis and both wrists are required; feet are optional."""
HAND_SIDES: tuple[str, ...] = ("left", "right")
GAMEPAD_AXES: tuple[str, ...] = ("left_x", "left_y", "right_x", "right_y")
"""Stick axes in [-1, 1]; +y is stick pushed forward."""
IMU_RPY: tuple[str, ...] = ("roll", "pitch", "yaw")
POSE_SIZE = 4 * 4
"""A pose is a homogeneous 4x4 matrix, stored row-major."""
HAND_KEYPOINTS = len(MEDIAPIPE_LANDMARKS)
"""Operator hand keypoints per hand, MediaPipe order, xyz each."""


@dataclass(frozen=True)
class OperatorInput:
    """Everything the operator's wearables and gamepad say at one control tick."""
    t: float
    poses: dict[str, np.ndarray]            # site -> (4, 4) pose in world
    pose_valid: dict[str, bool]             # site -> tracked this tick (False = dropout)
    hand_keypoints: dict[str, np.ndarray]   # "left"/"right" -> (21, 3) MediaPipe order, world, metres
    hand_valid: dict[str, bool]
    axes: np.ndarray                        # (4,) GAMEPAD_AXES
    buttons: frozenset[str] = frozenset()   # pressed button names, e.g. {"a", "start"}


@dataclass(frozen=True)
class CameraFrame:
    t: float
    camera: str                              # e.g. "egocentric"
    image: np.ndarray                        # (H, W, 3) uint8 RGB


@dataclass(frozen=True)
class RobotCommand:
    """One command to the robot: PSI0_ACTION (hands, arms, 8-DoF lower-body command)."""
    t: float
    action: np.ndarray                       # (PSI0_ACTION.size,) float32, PSI0_ACTION order
    flags: frozenset[str] = frozenset()      # e.g. {"left_wrist_lost", "clamped", "estop", "hold"}

    def __post_init__(self) -> None:
        if self.action.shape != (PSI0_ACTION.size,):
            raise ValueError(f"RobotCommand.action must be ({PSI0_ACTION.size},), got {self.action.shape}")


@dataclass(frozen=True)
class RobotState:
    """The FULL robot state (legs and waist included), not only what the action uses."""
    t: float
    body_q: np.ndarray                       # (G1_BODY.size,) body joints, schemas.embodiments G1 order
    body_dq: np.ndarray                      # (G1_BODY.size,)
    hand_q: np.ndarray                       # (PSI0_HANDS.size,) left then right hand joints, padded
    imu_rpy: np.ndarray                      # (3,) IMU_RPY
    base_height: float
    extra: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ streams
_F64, _F32 = pa.float64(), pa.float32()


def _vec(dtype: pa.DataType, n: int) -> pa.DataType:
    return pa.list_(dtype, n)


SCHEMAS: dict[str, pa.Schema] = {
    "inputs": pa.schema([
        ("t", _F64),
        ("poses", _vec(_F64, len(BODY_SITES) * POSE_SIZE)),                 # BODY_SITES order, row-major 4x4
        ("pose_valid", _vec(pa.bool_(), len(BODY_SITES))),
        ("hand_keypoints", _vec(_F64, len(HAND_SIDES) * HAND_KEYPOINTS * 3)),  # HAND_SIDES order, (21, 3) each
        ("hand_valid", _vec(pa.bool_(), len(HAND_SIDES))),
        ("axes", _vec(_F64, len(GAMEPAD_AXES))),
        ("buttons", pa.string()),                                             # sorted, "|"-joined
    ], metadata={"sites": "|".join(BODY_SITES), "hands": "|".join(HAND_SIDES)}),
    "commands": pa.schema([("t", _F64), ("action", _vec(_F32, PSI0_ACTION.size)), ("flags", pa.string())]),
    "robot_state": pa.schema([
        ("t", _F64), ("body_q", _vec(_F64, G1_BODY.size)), ("body_dq", _vec(_F64, G1_BODY.size)),
        ("hand_q", _vec(_F64, PSI0_HANDS.size)), ("imu_rpy", _vec(_F64, len(IMU_RPY))), ("base_height", _F64),
        ("extra", pa.string()),                                               # extra: canonical JSON
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
    """The schema of a stream directory's name (`camera_<name>` streams share one)."""
    return SCHEMAS["camera" if stream.startswith("camera_") else stream]


# ------------------------------------------------------------------------------------------ session
@dataclass
class SessionMeta:
    """What `session.json` says about a session, besides its clock and software (given when written)."""
    task: str
    robot: str
    operator: str = ""
    device: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    control_rate_hz: float = 50.0
    camera_encoding: str = "jpeg"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, start_monotonic: float, start_wall: float, software: dict[str, str],
                flush_interval_s: float) -> dict[str, Any]:
        return {
            "format": FORMAT, "task": self.task, "operator": self.operator, "robot": self.robot,
            "device": self.device, "cameras": self.cameras, "calibration": jsonable(self.calibration),
            "control_rate_hz": self.control_rate_hz, "camera_encoding": self.camera_encoding,
            "software": software,
            "clock": {"kind": "time.monotonic", "start_monotonic": start_monotonic,
                      "start_wall_unix": start_wall, "note": "wall time is informational; all t are monotonic"},
            "streams": {name: schema.to_string(show_schema_metadata=False) for name, schema in SCHEMAS.items()},
            "flush_interval_s": flush_interval_s, "extra": jsonable(self.extra),
        }


# ------------------------------------------------------------------------------------------ records <-> batches
def _stack(rows: list[np.ndarray], dtype: Any, width: int) -> pa.Array:
    flat = np.ascontiguousarray(np.stack(rows).reshape(len(rows), width), dtype=dtype)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), width)


def _flags(values: list[bool], width: int) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values), width)


def inputs_batch(items: list[OperatorInput]) -> pa.RecordBatch:
    eye = np.eye(4)
    zeros = np.zeros((HAND_KEYPOINTS, 3))
    return pa.record_batch([
        pa.array([x.t for x in items], _F64),
        _stack([np.stack([np.asarray(x.poses.get(s, eye), np.float64) for s in BODY_SITES]) for x in items],
               np.float64, len(BODY_SITES) * POSE_SIZE),
        _flags([bool(x.pose_valid.get(s, False)) for x in items for s in BODY_SITES], len(BODY_SITES)),
        _stack([np.stack([np.asarray(x.hand_keypoints.get(h, zeros), np.float64) for h in HAND_SIDES]) for x in items],
               np.float64, len(HAND_SIDES) * HAND_KEYPOINTS * 3),
        _flags([bool(x.hand_valid.get(h, False)) for x in items for h in HAND_SIDES], len(HAND_SIDES)),
        _stack([np.asarray(x.axes, np.float64) for x in items], np.float64, len(GAMEPAD_AXES)),
        pa.array(["|".join(sorted(x.buttons)) for x in items], pa.string()),
    ], schema=SCHEMAS["inputs"])


def commands_batch(items: list[RobotCommand]) -> pa.RecordBatch:
    return pa.record_batch([
        pa.array([x.t for x in items], _F64),
        _stack([np.asarray(x.action, np.float32) for x in items], np.float32, PSI0_ACTION.size),
        pa.array(["|".join(sorted(x.flags)) for x in items], pa.string()),
    ], schema=SCHEMAS["commands"])


def states_batch(items: list[RobotState]) -> pa.RecordBatch:
    return pa.record_batch([
        pa.array([x.t for x in items], _F64),
        _stack([np.asarray(x.body_q, np.float64) for x in items], np.float64, G1_BODY.size),
        _stack([np.asarray(x.body_dq, np.float64) for x in items], np.float64, G1_BODY.size),
        _stack([np.asarray(x.hand_q, np.float64) for x in items], np.float64, PSI0_HANDS.size),
        _stack([np.asarray(x.imu_rpy, np.float64) for x in items], np.float64, len(IMU_RPY)),
        pa.array([float(x.base_height) for x in items], _F64),
        pa.array([json.dumps(x.extra, sort_keys=True) for x in items], pa.string()),
    ], schema=SCHEMAS["robot_state"])


def camera_batch(items: list[CameraFrame], encoding: str, blobs: list[bytes]) -> pa.RecordBatch:
    """Frames whose pixels are already encoded (`blobs[i]` is `items[i].image` as `encoding`)."""
    if encoding not in CAMERA_ENCODINGS:
        raise ValueError(f"camera encoding must be one of {CAMERA_ENCODINGS}, got {encoding!r}")
    return pa.record_batch([
        pa.array([x.t for x in items], _F64),
        pa.array([encoding] * len(items), pa.string()),
        pa.array([x.image.shape[1] for x in items], pa.int32()),
        pa.array([x.image.shape[0] for x in items], pa.int32()),
        pa.array(blobs, pa.binary()),
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
    hands = _fixed(table, "hand_keypoints").reshape(-1, len(HAND_SIDES), HAND_KEYPOINTS, 3)
    hvalid = _fixed(table, "hand_valid").reshape(-1, len(HAND_SIDES))
    axes = _fixed(table, "axes").reshape(-1, len(GAMEPAD_AXES))
    buttons = table.column("buttons").to_pylist()
    return [OperatorInput(t=float(t[i]), poses={s: poses[i, j] for j, s in enumerate(BODY_SITES)},
                          pose_valid={s: bool(valid[i, j]) for j, s in enumerate(BODY_SITES)},
                          hand_keypoints={h: hands[i, j] for j, h in enumerate(HAND_SIDES)},
                          hand_valid={h: bool(hvalid[i, j]) for j, h in enumerate(HAND_SIDES)},
                          axes=axes[i], buttons=frozenset(b for b in buttons[i].split("|") if b))
            for i in range(len(t))]


def table_to_commands(table: pa.Table) -> list[RobotCommand]:
    t = table.column("t").to_numpy()
    action = _fixed(table, "action").reshape(-1, PSI0_ACTION.size)
    flags = table.column("flags").to_pylist()
    return [RobotCommand(float(t[i]), action[i], frozenset(f for f in flags[i].split("|") if f)) for i in range(len(t))]


def _fixed(table: pa.Table, key: str) -> np.ndarray:
    col = table.column(key).combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False)


def fixed_column(table: pa.Table, key: str, width: int | None = None) -> np.ndarray:
    """A fixed_size_list column as a dense (N, width) array (empty-safe); width defaults to the schema's."""
    if width is None:
        width = table.schema.field(key).type.list_size
    if table.num_rows == 0:
        return np.zeros((0, width))
    return _fixed(table, key).reshape(-1, width)


# ------------------------------------------------------------------------------------------ checksums
def body_checksum(body: Any) -> str:
    """CRC-32 of an IPC message body (a pyarrow Buffer or bytes), as 8 hex digits."""
    return f"{zlib.crc32(memoryview(body)) & 0xffffffff:08x}"


def batch_checksum(batch: pa.RecordBatch) -> dict[str, str]:
    """The custom metadata a format-2 writer attaches to `batch`: the CRC-32 of the message body the
    IPC writer will emit for it (the same bytes `RecordBatch.serialize` lays out)."""
    return {CHECKSUM_KEY: body_checksum(pa.ipc.read_message(batch.serialize()).body)}


def checksums_required(session_format: str | None) -> bool:
    """Batches of a format-2 session must carry checksums; a format-1 session's never do."""
    return session_format == FORMAT


# ------------------------------------------------------------------------------------------ reading
@dataclass
class SegmentScan:
    """What a segment holds: byte offset after its last complete message, batches, whether it ended cleanly,
    and per-batch checksums: verified, absent (format 1), or wrong (`corrupt`: index, byte offset, rows)."""
    path: Path
    size: int
    good_bytes: int
    batches: int
    rows: int
    clean_end: bool
    error: str = ""
    last_t: float | None = None
    checked: int = 0
    unchecked: int = 0
    corrupt: list[dict[str, Any]] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.good_bytes < self.size or not self.clean_end


def _with_custom_metadata(schema_message: bytes, message: Any) -> tuple[pa.RecordBatch, dict[str, str]]:
    """Decode one batch message with its IPC custom metadata (MessageReader does not expose it: the
    message is read back as a two-message stream behind its schema)."""
    stream = pa.ipc.open_stream(pa.py_buffer(schema_message + message.serialize().to_pybytes()))
    found = stream.read_next_batch_with_custom_metadata()
    meta = found.custom_metadata
    return found.batch, ({k.decode(): v.decode() for k, v in meta.items()} if meta else {})


def scan_segment(path: Path, expected: pa.Schema | None = None, require_checksums: bool = False
                 ) -> tuple[SegmentScan, pa.Schema | None, list[pa.RecordBatch]]:
    """Read messages one by one; stop at the first incomplete or undecodable one. A batch whose checksum
    is wrong (or, with `require_checksums`, missing) is left out and listed in `corrupt`; the messages
    after it are still read (each is self-delimiting)."""
    data = path.read_bytes()
    source = pa.BufferReader(data)
    reader = pa.ipc.MessageReader.open_stream(source)
    schema, batches, good, error, clean = None, [], 0, "", False
    schema_message = b""
    checked = unchecked = index = 0
    corrupt: list[dict[str, Any]] = []
    while True:
        start = source.tell()
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
                schema_message = message.serialize().to_pybytes()
                if expected is not None and not schema.equals(expected):
                    raise pa.ArrowInvalid(f"schema differs from the {path.parent.name} stream schema")
            else:
                batch, custom = _with_custom_metadata(schema_message, message)
                recorded = custom.get(CHECKSUM_KEY)
                index += 1
                if recorded is None and require_checksums:
                    corrupt.append({"batch": index - 1, "byte": start, "rows": batch.num_rows,
                                    "problem": "no checksum (every batch of a format-2 recording has one)"})
                elif recorded is not None and recorded != body_checksum(message.body):
                    corrupt.append({"batch": index - 1, "byte": start, "rows": batch.num_rows,
                                    "problem": f"checksum {body_checksum(message.body)} != recorded {recorded}"})
                else:
                    batch.validate(full=True)
                    checked += recorded is not None
                    unchecked += recorded is None
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
    return (SegmentScan(path, len(data), good, len(batches), rows, clean, error, last_t, checked, unchecked, corrupt),
            schema, batches)


def segments(stream_dir: Path) -> list[Path]:
    """A stream's segment files, in order."""
    return sorted(p for p in Path(stream_dir).glob(f"*{SUFFIX}") if p.is_file())


def read_stream(stream_dir: str | Path) -> pa.Table:
    """All complete rows of a stream (every segment, in order); a truncated tail and batches whose
    checksum is wrong are skipped (`scan_stream` says which)."""
    return scan_stream(stream_dir)[0]


def scan_stream(stream_dir: str | Path, require_checksums: bool = False) -> tuple[pa.Table, list[SegmentScan]]:
    """(all good rows of a stream, what each segment held: truncation, checksums, corrupt batches)."""
    stream_dir = Path(stream_dir)
    schema = schema_for(stream_dir.name)
    batches, scans = [], []
    for seg in segments(stream_dir):
        scan, _, bs = scan_segment(seg, schema, require_checksums)
        batches.extend(bs)
        scans.append(scan)
    return pa.Table.from_batches(batches, schema=schema), scans


def stream_names(episode_dir: Path) -> list[str]:
    return sorted(p.name for p in episode_dir.iterdir() if p.is_dir() and segments(p))


def episode_dirs(session_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(session_dir).glob(f"{EPISODE_PREFIX}*") if p.is_dir())


def load_session(session_dir: str | Path) -> dict[str, Any]:
    """session.json; ValueError when it is not a session of this format."""
    with open(Path(session_dir) / SESSION_FILE, encoding="utf-8") as f:
        meta = json.load(f)
    if not isinstance(meta, dict) or meta.get("format") not in FORMATS_READ:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{session_dir}: not a {' or '.join(FORMATS_READ)} session (format={found!r})")
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
