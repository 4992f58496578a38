"""The crash-safe teleop recorder: append-only Arrow IPC stream segments, fsynced often.

The on-disk format (layout, stream schemas, record <-> batch codecs, the reader) is a contract in
`schemas.recording`; this module writes it. The writer thread turns rows buffered by the control
loop into one batch per stream every `flush_interval` (40 ms, on fixed deadlines) and fsyncs each
file it touched, so at most ~flush_interval + one fsync of data is ever at risk;
`Recorder.stats()["max_at_risk_s"]` measures it. Segments roll by size. Every batch carries its
checksum (format 2). `teleop.check` verifies and repairs; `schemas.recording.read_stream` tolerates a
truncated tail.

A write that fails (full disk, I/O error) is not retried into a gap: the recorder stops accepting
samples at once, keeps what is already on disk, and says what was lost (`Recorder.failure`); the
session shows it on the status line and stops the episode cleanly.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from schemas.actions import PSI0_ACTION, PSI0_HANDS
from schemas.durable import fsync_dir, write_json_atomic
from schemas.embodiments import G1_BODY
from schemas.episode import jsonable
from schemas.recording import (BODY_SITES, EPISODE_FILE, EPISODE_PREFIX, EPISODE_STREAMS, GAMEPAD_AXES, HAND_KEYPOINTS,
                               HAND_SIDES, IMU_RPY, OUTCOMES, SCHEMAS, SESSION_FILE, SUFFIX, CameraFrame, OperatorInput,
                               RobotCommand, RobotState, SessionMeta, batch_checksum, camera_batch, commands_batch,
                               episode_dirs, inputs_batch, is_session, read_stream, rows_batch, schema_for,
                               states_batch, table_to_inputs)

FLUSH_INTERVAL = 0.04
SEGMENT_BYTES = 64 << 20
PROBE_BYTES = 1 << 20
"""`check_writable` writes (and removes) this much: a folder that cannot take 1 MiB cannot take an episode."""
LOW_SPACE_BYTES = 1 << 30
"""Below this much free space `check_writable` warns (an episode with camera takes tens of MB per minute)."""
Opener = Callable[[Path, str], BinaryIO]
"""How the recorder opens segment files (`open`; tests inject a file layer that fails like a full disk)."""


class OutputUnwritable(OSError):
    """The recording folder cannot be written (checked before the device check and calibration)."""


def check_writable(out: str | Path) -> str:
    """Create `out` if needed and prove it takes data: write, fsync and delete a 1 MiB probe. Returns a
    warning ("" if none) when free space is low; raises OutputUnwritable naming the folder and the error."""
    out = Path(out)
    probe = out / f".psi0-write-probe-{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OutputUnwritable(exc.errno or errno.EIO, f"output folder {out} is not writable ({exc.strerror or exc})",
                               str(out)) from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    free = shutil.disk_usage(out).free
    if free < LOW_SPACE_BYTES:
        return f"only {free / 2**20:.0f} MiB free in {out}: a long session may fill it"
    return ""


@dataclass
class WriteFailure:
    """A write or sync that failed: when, what, which episode, and the samples that never reached disk."""
    error: str
    t: float                                   # recorder clock when it failed
    episode: int | None
    lost_rows: dict[str, int] = field(default_factory=dict)    # stream -> rows handed to the failed write
    lost_from_t: float | None = None           # earliest sample time among them
    lost_to_t: float | None = None
    episode_start_t: float | None = None       # to say where in the episode the loss begins

    def describe(self) -> str:
        rows = sum(self.lost_rows.values())
        origin = self.episode_start_t or 0.0
        span = (f", {self.lost_from_t - origin:.2f}..{self.lost_to_t - origin:.2f} s into the episode"
                if self.lost_from_t is not None and self.lost_to_t is not None and self.episode_start_t is not None
                else "")
        return (f"{self.error}: {rows} buffered sample(s) lost ({', '.join(f'{k} {v}' for k, v in sorted(self.lost_rows.items()))}"
                f"{span}); nothing after it was recorded") if rows else f"{self.error}: nothing after it was recorded"

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "t": self.t, "episode": self.episode, "lost_rows": dict(self.lost_rows),
                "lost_from_t": self.lost_from_t, "lost_to_t": self.lost_to_t, "episode_start_t": self.episode_start_t}


def encode_image(image: np.ndarray, encoding: str, quality: int = 90) -> bytes:
    """RGB uint8 (H, W, 3) -> bytes: "jpeg" (OpenCV) or "raw" (row-major RGB)."""
    if encoding == "raw":
        return np.ascontiguousarray(image, np.uint8).tobytes()
    import cv2  # noqa: PLC0415
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def encoded_camera_batch(items: list[CameraFrame], encoding: str) -> pa.RecordBatch:
    """A camera stream batch: each frame's pixels encoded here, then the format's codec."""
    return camera_batch(items, encoding, [encode_image(x.image, encoding) for x in items])


# ------------------------------------------------------------------------------------------ segment writing
class SegmentedStream:
    """One stream's append-only segments `<dir>/<seq:06d>.arrows`, rolled after `segment_bytes`.

    `write` (writer thread) hands bytes to the OS; `sync` (syncer thread) makes them durable. They run
    concurrently so a slow disk flush never delays the next write; `_sync_lock` keeps a sync off a
    file that is being closed."""

    def __init__(self, directory: Path, schema: pa.Schema, segment_bytes: int = SEGMENT_BYTES,
                 opener: Opener = open):
        self.dir = directory
        self.schema = schema
        self.segment_bytes = segment_bytes
        self.opener = opener
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
        f = self.opener(self.dir / f"{self.seq:06d}{SUFFIX}", "wb")
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
        self._writer.write_batch(batch, custom_metadata=batch_checksum(batch))
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
        """End-of-stream marker, fsync, close. The handles are released even when the disk refuses the
        marker (the segment then reads up to its last complete batch, as after a crash)."""
        with self._sync_lock:
            if self._writer is not None:
                writer, f = self._writer, self._file
                self._writer = None
                self._file = None
                self.dirty = False
                try:
                    writer.close()                       # end-of-stream marker
                    f.flush()
                    os.fsync(f.fileno())
                finally:
                    try:
                        f.close()
                    except OSError:
                        pass


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


class Recorder:
    """Thread-safe, append-only session writer. The control loop calls `record_*` (cheap: a list
    append under a lock); a background thread encodes, writes and fsyncs every `flush_interval`."""

    def __init__(self, session_dir: str | Path, meta: SessionMeta, *, flush_interval: float = FLUSH_INTERVAL,
                 segment_bytes: int = SEGMENT_BYTES, clock: Any = time.monotonic, opener: Opener = open):
        self.dir = Path(session_dir)
        self.opener = opener
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
        session = meta.to_json(self.start, time.time(), software_version(), FLUSH_INTERVAL)
        write_json_atomic(self.dir / SESSION_FILE, session)
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
        self.failure: WriteFailure | None = None   # the first failed write/sync: nothing is recorded after it
        self._unsynced: list[float] = []         # arrival time of the oldest row of each write not yet synced
        self._sync_wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder-write", daemon=True)
        self._syncer = threading.Thread(target=self._run_sync, name="recorder-sync", daemon=True)
        self._thread.start()
        self._syncer.start()

    # -- producer side (control loop)
    def _put(self, stream: str, item: Any) -> None:
        if self.failure is not None:
            return
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
            detail = json.dumps(jsonable(detail), sort_keys=True)
        target = "events" if self.recording else "session_events"
        self._put(target, (float(t), kind, detail))

    def start_episode(self, t: float) -> int:
        """Begin episode `episode_<k>` (k = next free index). The known streams' first segments are
        created (and their directories fsynced) now, so the first writes do not wait on metadata."""
        if self.episode is not None:
            raise RuntimeError("an episode is already being recorded")
        if self.failure is not None:
            raise OSError(errno.EIO, f"the recorder stopped after a write failure ({self.failure.error})")
        self.flush()
        index = next_episode_index(self.dir)
        with self._io:
            try:
                self.episode_dir = self.dir / f"{EPISODE_PREFIX}{index:06d}"
                self.episode_dir.mkdir()
                fsync_dir(self.dir)
                for name in EPISODE_STREAMS + tuple(f"camera_{c}" for c in sorted(self.meta.cameras)):
                    self._stream(name).open()
            except Exception as exc:  # noqa: BLE001 - the disk refused the new episode's files
                self._fail(exc, {}, "starting an episode")
                for stream in self._episode_streams.values():
                    try:
                        stream.close()
                    except Exception:  # noqa: BLE001
                        pass
                self._episode_streams = {}
                self.episode_dir = None
                raise OSError(errno.EIO, f"cannot start episode {index}: {type(exc).__name__}: {exc}") from None
        self.episode = index
        self._episode_info = {"index": index, "start_t": float(t), "task": self.meta.task, "outcome": "unlabeled"}
        self._accepting = True
        self.event(t, "episode_start", {"index": index})
        return index

    def stop_episode(self, t: float, outcome: str | None = None) -> dict[str, Any]:
        """End the episode: flush + close its streams, write episode.json (atomic). `outcome` None
        takes the operator's mark made during the episode, else `unlabeled`. After a write failure it
        still ends the episode (closing what can be closed) and records the failure in the returned info
        (and in episode.json when the disk takes it; else `teleop check --repair` writes it later)."""
        if self.episode is None:
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
            for name, stream in sorted(self._episode_streams.items()):
                try:
                    stream.close()
                except Exception as exc:  # noqa: BLE001 - the disk refused the end marker: recorded, not raised
                    self._fail(exc, {}, f"closing {name}")
            rows = {name: s.rows for name, s in sorted(self._episode_streams.items())}
            self._episode_streams = {}
            info = dict(self._episode_info, stop_t=float(t), outcome=outcome, rows=rows)
            info.pop("outcome_mark", None)
            if self.failure is not None and self.failure.episode == self.episode:
                info["write_error"] = self.failure.to_json()
                info["lost"] = self.failure.describe()
            try:
                write_json_atomic(self.episode_dir / EPISODE_FILE, info)
            except OSError as exc:
                self._fail(exc, {}, "writing episode.json")
                info["episode_json"] = f"not written ({exc}): `teleop check --repair` reconstructs it"
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
                self._fail(exc, {}, "writing")

    def flush(self) -> None:
        """Write everything buffered as one batch per stream (the writer thread does this every
        `flush_interval`). Written rows survive a crash of this process; the syncer thread then
        fdatasyncs them (power loss). Ages measured: `max_unwritten_s` (arrival -> written, what a
        SIGKILL can lose) and `max_at_risk_s` (arrival -> synced)."""
        with self._io:
            with self._lock:
                pending, self._pending = self._pending, {}
                oldest, self._oldest = self._oldest, None
            if self.failure is not None:             # nothing is written after a failure (no gap-ridden streams)
                return
            wrote = False
            written: set[str] = set()
            try:
                for name, items in sorted(pending.items()):
                    if not items:
                        continue
                    batch = self._batch(name, items)
                    self._stream(name).write(batch)
                    written.add(name)
                    self.bytes_written += batch.nbytes
                    wrote = True
            except Exception as exc:  # noqa: BLE001 - full disk, I/O error, a batch that cannot be built
                self._fail(exc, {k: v for k, v in pending.items() if k not in written and v}, "writing")
                return
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
                self._fail(exc, {}, "syncing")

    def _fail(self, exc: BaseException, unwritten: dict[str, list], doing: str) -> None:
        """Record a failed write: stop accepting samples at once and remember what never reached disk."""
        text = f"{doing}: {type(exc).__name__}: {exc}"
        with self._lock:
            self.write_errors.append(text)
            self._accepting = False
            self._pending = {}
            if self.failure is not None:
                return
            times = [float(item.t if hasattr(item, "t") else item[0]) for items in unwritten.values() for item in items]
            self.failure = WriteFailure(text, float(self.clock()), self.episode,
                                        {name: len(items) for name, items in sorted(unwritten.items())},
                                        min(times) if times else None, max(times) if times else None,
                                        self._episode_info.get("start_t") if self.episode is not None else None)

    def _stream(self, name: str) -> SegmentedStream:
        """The stream a pending row list goes to, created on first use (insertions under `_lock`:
        the syncer thread iterates these dicts)."""
        if name == "session_events":
            if "events" not in self._session_streams:
                stream = SegmentedStream(self.dir / "events", SCHEMAS["events"], self.segment_bytes, self.opener)
                with self._lock:
                    self._session_streams["events"] = stream
            return self._session_streams["events"]
        if name not in self._episode_streams:
            assert self.episode_dir is not None
            stream = SegmentedStream(self.episode_dir / name, schema_for(name), self.segment_bytes, self.opener)
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
            return encoded_camera_batch(items, self.encoding)
        return rows_batch("events" if name == "session_events" else name, items)

    def stats(self) -> dict[str, Any]:
        return {"flushes": self.flushes, "bytes": self.bytes_written, "max_at_risk_s": self.max_at_risk,
                "max_unwritten_s": self.max_unwritten, "max_sync_s": self.max_sync, "errors": list(self.write_errors),
                "write_error": self.failure.to_json() if self.failure is not None else None}

    def close(self, t: float | None = None) -> None:
        """A clean end: stop a running episode (keeping its mark), flush, close every segment. After a
        write failure it closes what it can and never raises for the disk (see `failure`)."""
        if self.episode is not None:
            self.stop_episode(self.clock() if t is None else t)
        self._stop.set()
        self._thread.join()
        self.flush()
        self._sync_wake.set()
        self._syncer.join()
        try:
            self.sync()
        except Exception as exc:  # noqa: BLE001
            self._fail(exc, {}, "syncing")
        with self._io:
            for name, stream in self._session_streams.items():
                try:
                    stream.close()
                except Exception as exc:  # noqa: BLE001
                    self._fail(exc, {}, f"closing session {name}")
            self._session_streams = {}


def warm_up(encoding: str = "jpeg") -> None:
    """Build and serialize one batch of every stream type once. The first batch otherwise imports
    modules (pyarrow.compute, codecs) inside the writer thread, which on a busy machine took seconds:
    seconds of data at risk at every session start."""
    x = OperatorInput(0.0, {s: np.eye(4) for s in BODY_SITES}, {s: True for s in BODY_SITES},
                      {h: np.zeros((HAND_KEYPOINTS, 3)) for h in HAND_SIDES}, {h: True for h in HAND_SIDES},
                      np.zeros(len(GAMEPAD_AXES)))
    state = RobotState(0.0, np.zeros(G1_BODY.size), np.zeros(G1_BODY.size), np.zeros(PSI0_HANDS.size),
                       np.zeros(len(IMU_RPY)), 0.75)
    batches = {"inputs": inputs_batch([x]),
               "commands": commands_batch([RobotCommand(0.0, np.zeros(PSI0_ACTION.size, np.float32))]),
               "robot_state": states_batch([state]),
               "camera": encoded_camera_batch([CameraFrame(0.0, "warm", np.zeros((8, 8, 3), np.uint8))], encoding),
               "events": rows_batch("events", [(0.0, "note", "")]),
               "loop": rows_batch("loop", [(0.0, 0.0, 0.0, 0.0, 0)])}
    for name, batch in batches.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, SCHEMAS[name]) as writer:
            writer.write_batch(batch)
        pa.ipc.open_stream(sink.getvalue()).read_all()


def next_episode_index(session_dir: Path) -> int:
    existing = [int(p.name[len(EPISODE_PREFIX):]) for p in session_dir.glob(f"{EPISODE_PREFIX}*")
                if p.name[len(EPISODE_PREFIX):].isdigit()]
    return max(existing, default=-1) + 1


# ------------------------------------------------------------------------------------------ replay
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
    """Write a complete stream in one segment, every batch with its checksum (tests, repair)."""
    stream = SegmentedStream(stream_dir, schema_for(stream_dir.name))
    for b in batches:
        stream.write(b)
    stream.close()
