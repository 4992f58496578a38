"""Issue 13, item 3 (teleop): per-batch checksums find bytes changed on disk (`teleop check`, ingest),
repairs and truncation travel into the episode's metadata, old recordings read as unverified, values
outside the embodiment's limits are rejected, and a full disk is surfaced at once, stops the episode
cleanly and says what was lost; `teleop record` checks its output folder before anything else.
Faults are made here: bytes overwritten in a real segment, a file layer that fails like a full disk
(ENOSPC after a byte budget), RLIMIT_FSIZE in a subprocess."""
from __future__ import annotations

import errno
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from converters import teleop as conv
from schemas import EpisodeError, RejectReason
from schemas.actions import PSI0_ACTION
from schemas.recording import (EPISODE_FILE, SESSION_FILE, CameraFrame, RobotCommand, SessionMeta, episode_info,
                               read_stream, scan_segment, segments)
from teleop.check import check
from teleop.devices.sim import SimOperator, SimRobot
from teleop.recording import Recorder
from teleop.safety import safe_default

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
MARK = np.float32(0.123456)
"""A value recorded in one arm joint of every command: the bytes a corruption overwrites are found by it."""
ARM = PSI0_ACTION.slice("arms").start


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class FullDisk:
    """A file layer for the recorder: real files, but the disk is full after `budget` bytes (shared by all
    files, as a disk is): further writes raise OSError(ENOSPC), as the kernel reports it."""

    def __init__(self, budget: int):
        self.left = budget

    def __call__(self, path: Path, mode: str) -> "FullDiskFile":
        return FullDiskFile(open(path, mode), self)


class FullDiskFile(io.RawIOBase):
    def __init__(self, raw: io.BufferedWriter, disk: FullDisk):
        self.raw, self.disk = raw, disk

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        size = len(memoryview(data))
        if size > self.disk.left:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.disk.left -= size
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def fileno(self) -> int:
        return self.raw.fileno()

    def tell(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.raw.close()
        super().close()


def _record(root: Path, n: int = 80, action=None, opener=None) -> tuple[Path, Recorder, Clock]:
    """One episode of n ticks at 50 Hz (commands, robot state, inputs, camera every 3rd tick)."""
    clock = Clock()
    kwargs = {"opener": opener} if opener is not None else {}
    rec = Recorder(root / "s", SessionMeta(task="lunchbag", robot="g1_dex3", cameras={"egocentric": {}}),
                   flush_interval=3600, clock=clock, **kwargs)
    op, robot = SimOperator(seed=1), SimRobot()
    rng = np.random.default_rng(0)
    rec.start_episode(clock.t)
    for i in range(n):
        clock.t += 0.02
        a = safe_default().astype(np.float32) if action is None else action(i)
        a[ARM] = MARK if action is None else a[ARM]
        c = RobotCommand(clock.t, a)
        robot.send(c)
        rec.record_input(op.poll(clock.t))
        rec.record_command(c)
        rec.record_state(robot.state(clock.t))
        if i % 3 == 0:
            rec.record_camera(CameraFrame(clock.t, "egocentric", rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)))
        rec.record_tick(clock.t, clock.t, 0.02, 0.001, 0)
        if i % 10 == 9:
            rec.flush()
    rec.stop_episode(clock.t, "success")
    rec.close()
    return root / "s", rec, clock


def _ref(session: Path):
    (ref,) = conv.discover(str(session))
    return ref


def _overwrite_middle_command(session: Path) -> Path:
    """Overwrite the marked arm value of a command in the middle of the commands segment with 1e30."""
    seg = segments(session / "episode_000000" / "commands")[0]
    data = bytearray(seg.read_bytes())
    needle = struct.pack("<f", float(MARK))
    at = data.find(needle, len(data) // 2)
    assert at > 0
    data[at:at + 4] = struct.pack("<f", 1e30)
    seg.write_bytes(bytes(data))
    return seg


# ------------------------------------------------------------------------------------------ checksums
def test_bytes_overwritten_in_a_segment_are_found_by_check_and_refused_by_ingest(tmp_path):
    session, _, _ = _record(tmp_path)
    seg = _overwrite_middle_command(session)
    report = check(session)
    assert not report.ok, report.summary()
    assert "DAMAGED" in report.summary()
    assert [f.problem for f in report.findings] == ["checksum_mismatch"] and report.findings[0].path == str(seg)
    with pytest.raises(EpisodeError) as err:
        conv.read(_ref(session))
    assert err.value.reason is RejectReason.UNREADABLE and seg.name in err.value.message
    assert "checksum" in err.value.message


def test_repair_drops_the_corrupt_batch_and_ingest_carries_the_repair(tmp_path):
    session, _, _ = _record(tmp_path)
    _overwrite_middle_command(session)
    rows = len(read_stream(session / "episode_000000" / "commands"))
    assert check(session, repair=True).ok
    assert check(session).findings == []                          # repaired, and idempotent
    repairs = episode_info(session / "episode_000000")["repairs"]
    assert repairs[0]["problem"] == "checksum_mismatch" and repairs[0]["path"] == "commands/000000.arrows"
    assert repairs[0]["rows_dropped"] == 10
    ep = conv.read(_ref(session))
    recording = ep.meta.extra["recording"]
    assert recording["repairs"] == repairs and recording["checksums"].startswith("verified")
    assert np.abs(ep.column("action")).max() < 10
    assert len(read_stream(session / "episode_000000" / "commands")) == rows   # the bad batch was never read


def _as_format_1(session: Path) -> None:
    """What a recorder before checksums wrote: format 1 in session.json, batches without custom metadata."""
    meta = json.loads((session / SESSION_FILE).read_text())
    meta["format"] = "psi0.teleop-recording/1"
    (session / SESSION_FILE).write_text(json.dumps(meta))
    for seg in sorted(session.rglob("*.arrows")):
        _, schema, batches = scan_segment(seg)
        with open(seg, "wb") as f, pa.ipc.new_stream(f, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)


def test_format_1_recordings_still_read_flagged_unverified(tmp_path):
    session, _, _ = _record(tmp_path)
    _as_format_1(session)
    report = check(session)
    assert report.ok and "unverified" in report.summary()
    ep = conv.read(_ref(session))
    assert ep.meta.extra["recording"]["checksums"] == "none: format 1 recording, contents unverified"


def test_a_cut_tail_is_carried_into_the_episode_metadata(tmp_path):
    session, _, _ = _record(tmp_path)
    seg = segments(session / "episode_000000" / "commands")[0]
    data = seg.read_bytes()
    seg.write_bytes(data[:-200])                                  # a crash inside the last batch
    assert not check(session).ok
    ep = conv.read(_ref(session))
    cut = ep.meta.extra["recording"]["truncated"]["commands"]
    assert cut["segments"] == [seg.name] and cut["bytes_cut"] > 0


# ------------------------------------------------------------------------------------------ bounds
def test_values_outside_the_embodiments_limits_are_rejected_with_the_reason(tmp_path):
    def action(i: int) -> np.ndarray:
        a = safe_default().astype(np.float32)
        a[ARM] = 1e30 if i == 41 else 0.1
        return a

    session, _, _ = _record(tmp_path, action=action)
    assert check(session).ok                                      # the bytes are as recorded: only bounds can tell
    with pytest.raises(EpisodeError) as err:
        conv.read(_ref(session))
    e = err.value
    assert e.reason is RejectReason.OUT_OF_RANGE and e.details["stream"] == "commands" and e.details["row"] == 41
    assert e.details["field"] == f"action.{PSI0_ACTION.dims[ARM]}" and "g1_dex3 action limits" in e.message


# ------------------------------------------------------------------------------------------ full disk
def test_recorder_stops_at_the_first_failed_write_and_says_what_was_lost(tmp_path):
    disk = FullDisk(40_000)
    session, rec, clock = _record(tmp_path, n=200, opener=disk)
    failure = rec.failure
    assert failure is not None and "No space left on device" in failure.error and failure.episode == 0
    assert sum(failure.lost_rows.values()) > 0 and failure.lost_from_t is not None
    (info,) = rec.episodes
    assert info["write_error"]["error"] == failure.error and "lost" in info["lost"]
    on_disk = json.loads((session / "episode_000000" / EPISODE_FILE).read_text())
    assert on_disk["write_error"]["lost_rows"] == failure.lost_rows
    t = read_stream(session / "episode_000000" / "commands").column("t").to_numpy()
    assert len(t) and np.allclose(np.diff(t), 0.02)                # what is on disk has no gap ...
    assert t[-1] < failure.lost_from_t                             # ... and ends where the loss begins


def test_a_full_disk_during_a_session_is_shown_at_once_and_the_episode_stops_cleanly(tmp_path):
    from teleop.session import RecordOptions, record

    out = io.StringIO()
    opts = RecordOptions(task="lunchbag", out=str(tmp_path / "rec"), episodes=2, duration=4.0, countdown_s=0.2,
                         reset_s=0.2, calibration_s=0.3, interactive=False, opener=FullDisk(150_000))
    summary = record(opts, out=out)
    text = out.getvalue()
    assert summary["write_error"] and "No space left on device" in summary["write_error"]["error"]
    assert "WRITE ERROR" in text and "episode 0: stopped" in text and "lost:" in text, text
    assert "episode 1" not in text                                 # the session ended instead of failing on
    info = json.loads((Path(summary["session"]) / "episode_000000" / EPISODE_FILE).read_text())
    assert info["write_error"]["error"] == summary["write_error"]["error"]


def _teleop_record(out: Path, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psi0", "teleop", "record", "--task", "lunchbag", "--out", str(out),
                           "--episodes", "1", "--duration", "1", "--countdown", "0.1"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, preexec_fn=preexec)


def test_record_checks_its_output_folder_before_the_device_check(tmp_path):
    import resource

    (tmp_path / "a_file").write_text("")
    proc = _teleop_record(tmp_path / "a_file" / "recordings")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "not writable" in proc.stderr and "device check" not in proc.stderr and "Traceback" not in proc.stderr

    def small_disk() -> None:                  # every file this process writes stops at 64 KiB (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    proc = _teleop_record(tmp_path / "rec", preexec=small_disk)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "File too large" in proc.stderr and "device check" not in proc.stderr
