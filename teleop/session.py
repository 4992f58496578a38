"""`teleop record`: device check -> calibration -> countdown -> episodes, on one control loop.

The loop never stops between phases (the robot is always commanded): during the device check and the
calibration it holds the safe default pose; from the countdown on, the whole-body mapper drives it.
Episodes are started/stopped by keys (interactive, stdin a TTY) or by `--episodes N --duration S`
(unattended). A one-line status shows stream rates, missed ticks, tracker loss, latency, episode time.

Before anything else the output folder must take data (`check_writable`): a full or read-only disk is
found before the device check and calibration, not at the first episode. If a write fails during the
session (disk full, I/O error), the status line says so at once, the running episode is stopped cleanly
with what was lost in its episode.json, and the session ends.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from schemas import embodiments
from teleop.devices.capture_thread import CaptureThread
from teleop.keys import KEYS_HELP, KeyReader
from teleop.loop import ControlLoop, TickResult
from schemas.recording import SessionMeta, load_session
from teleop.recording import FLUSH_INTERVAL, Recorder, check_writable, register_replay_reader
from teleop.streams import REQUIRED_SITES, DeviceUnavailable, OperatorInput, RobotCommand


@dataclass
class RecordOptions:
    task: str
    device: str = "sim"
    replay_file: str | None = None
    robot: str = embodiments.DEFAULT     # an embodiment (`psi0 embodiments`); recorded by its canonical name
    out: str = "recordings"
    episodes: int | None = None
    duration: float | None = None
    operator: str = ""
    rate_hz: float = 50.0
    camera_rate_hz: float = 30.0
    camera_size: tuple[int, int] = (160, 120)
    countdown_s: float = 3.0
    reset_s: float = 1.0
    outcome: str = "unlabeled"
    seed: int = 0
    calibration_s: float = 1.2
    session_name: str | None = None
    flush_interval: float = FLUSH_INTERVAL
    status_every_s: float = 0.25
    interactive: bool | None = None      # None: decide from stdin
    bridge: str = "sim"                  # robot bridge: sim | unitree-g1 (teleop.devices.registry)
    camera: str | None = None            # None: the sim camera with the sim bridge; else "opencv:SOURCE"
    opener: Any = None                   # the recorder's file layer (None: `open`; tests simulate a full disk)


class HoldMapper:
    """Holds the safe default pose while feeding ticks to a calibrator (device check / calibration)."""

    def __init__(self, calibrator: Any = None):
        from teleop.safety import safe_default  # noqa: PLC0415
        self.calibrator = calibrator
        self.action = safe_default().astype(np.float32)
        self.seen: dict[str, int] = {s: 0 for s in REQUIRED_SITES}
        self.ticks = 0

    def step(self, inp: OperatorInput) -> RobotCommand:
        self.ticks += 1
        for s in REQUIRED_SITES:
            self.seen[s] += bool(inp.pose_valid.get(s, False))
        if self.calibrator is not None:
            self.calibrator.add(inp)
        return RobotCommand(inp.t, self.action, frozenset({"hold", "calibrating"}))


@dataclass
class Devices:
    input: Any
    robot: Any
    cameras: list = field(default_factory=list)
    calibration: Any = None          # a Calibration to reuse (replaying a recorded session)
    opened: set = field(default_factory=set)   # which of input/robot/cameras the registry already opened


def open_devices(opts: RecordOptions) -> Devices:
    """The input device, robot bridge and cameras named by the options (sim, replay or registry drivers)."""
    from teleop.devices.sim import SimCamera, SimOperator, SimRobot  # noqa: PLC0415
    calibration, opened = None, set()
    if opts.device == "sim":
        device = SimOperator(task=opts.task, seed=opts.seed)
    elif opts.device == "replay":
        from teleop.devices.replay import ReplayInput  # noqa: PLC0415
        if not opts.replay_file:
            raise DeviceUnavailable("--device replay needs a FILE (a recorded session/episode dir or an .npz)")
        register_replay_reader()
        path = Path(opts.replay_file)
        device = ReplayInput(path)
        calibration = _session_calibration(path)
    else:
        from teleop.devices.registry import open_input  # noqa: PLC0415
        device = open_input(opts.device)
        opened.add("input")
    if opts.bridge == "sim":
        robot = SimRobot(opts.robot)
    else:
        from teleop.devices.registry import open_robot  # noqa: PLC0415
        robot = open_robot(opts.bridge, robot=opts.robot)
        opened.add("robot")
    width, height = opts.camera_size
    if opts.camera is None:
        cameras = [SimCamera(robot, rate_hz=opts.camera_rate_hz, width=width, height=height, seed=opts.seed)] \
            if opts.bridge == "sim" else []
    elif opts.camera == "none":
        cameras = []
    else:
        from teleop.devices.registry import open_camera  # noqa: PLC0415
        kind, _, source = opts.camera.partition(":")
        kw = {"source": source} if source else {}
        cameras = [open_camera(kind, **kw)]
        opened.add("cameras")
    return Devices(device, robot, cameras, calibration, opened)


def _session_calibration(path: Path) -> Any:
    """The calibration saved with a recorded session (replays reuse it instead of re-calibrating)."""
    from teleop.calibration import Calibration  # noqa: PLC0415
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / "session.json").is_file():
            calib = load_session(candidate).get("calibration")
            return Calibration.from_dict(calib) if calib else None
    return None


def session_dir(out: Path, task: str, name: str | None) -> Path:
    """`<out>/<task>/session_<k:03d>` (next free k) unless a name is given."""
    if name:
        return out / name
    base = out / task
    k = 0
    while (base / f"session_{k:03d}").exists():
        k += 1
    return base / f"session_{k:03d}"


class StatusLine:
    """One refreshing line on a terminal; a plain line per `every` seconds otherwise."""

    def __init__(self, stream: TextIO, every: float):
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.every = every if self.tty else max(every, 1.0)
        self.last = -1e9

    def due(self, now: float) -> bool:
        return now - self.last >= self.every

    def show(self, now: float, text: str, force: bool = False) -> None:
        if not force and not self.due(now):
            return
        self.last = now
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        """A permanent line (events), keeping the status line below it."""
        self.stream.write(("\r\x1b[2K" if self.tty else "") + text + "\n")
        self.stream.flush()


class Recording:
    """Phase machine over one ControlLoop run (see module doc)."""

    def __init__(self, opts: RecordOptions, devices: Devices, out: TextIO = sys.stderr,
                 keys: KeyReader | None = None):
        self.opts = opts
        self.dev = devices
        self.status = StatusLine(out, opts.status_every_s)
        self.keys = keys
        self.interactive = bool(keys is not None and keys.active)
        self.quit = False
        self.recorder: Recorder | None = None
        self.mapper: Any = None
        self.loop: ControlLoop | None = None
        self.episode_start: float | None = None
        self.episodes_done = 0
        self.phase = ""
        self.phase_until = 0.0
        self.estop = False

    # -- phases
    def run(self) -> dict[str, Any]:
        from teleop.calibration import Calibrator  # noqa: PLC0415
        from teleop.mapping import WholeBodyMapper  # noqa: PLC0415
        opts, dev = self.opts, self.dev
        if "input" not in dev.opened:
            dev.input.open()
        if "robot" not in dev.opened:
            dev.robot.open()
        # cameras capture on their own threads: a blocking read or a render never costs a control deadline
        cameras = [CaptureThread(cam, already_open="cameras" in dev.opened) for cam in dev.cameras]
        for cam in cameras:
            cam.open()
        hold = HoldMapper()
        self.loop = loop = ControlLoop(dev.input, hold, dev.robot, cameras, None, opts.rate_hz)
        # 1. device check: every required site tracked at least once within 1 s
        self.phase = "check"
        loop.run(lambda: hold.ticks >= max(5, int(0.1 * opts.rate_hz)) and all(hold.seen.values()) or self.quit,
                 self._on_tick, max_seconds=1.0)
        missing = [s for s, n in hold.seen.items() if n == 0]
        if missing:
            raise DeviceUnavailable(f"device check: no valid pose from {', '.join(missing)} "
                                    f"({dev.input.describe().get('name', opts.device)})")
        self.status.say(f"device check ok: {json.dumps(dev.input.describe(), sort_keys=True)}")
        # 2. calibration: hold the reference pose (or reuse the recorded session's calibration)
        calibration = dev.calibration
        if calibration is None:
            self.phase = "calibrate"
            calibrator = Calibrator("ready", ticks=max(10, int(opts.calibration_s * opts.rate_hz)), embodiment=opts.robot)
            loop.mapper = HoldMapper(calibrator)
            self.status.say("calibration: stand in the 'ready' pose (upper arms down, elbows at 90 deg), hold still")
            loop.run(lambda: calibrator.ready or self.quit, self._on_tick, max_seconds=15.0)
            if not calibrator.ready:
                raise DeviceUnavailable("calibration: not enough tracked ticks in 15 s")
            calibration = calibrator.result()
            self.status.say(f"calibration ok: scale {calibration.scale:.3f}, stature {calibration.stature:.2f} m")
        self.mapper = WholeBodyMapper(opts.robot, calibration)
        loop.mapper = self.mapper
        # 3. session on disk, then countdown (mapper drives the robot; nothing recorded yet)
        directory = session_dir(Path(opts.out), opts.task, opts.session_name)
        meta = SessionMeta(task=opts.task, robot=self.mapper.robot, operator=opts.operator, device=dev.input.describe(),
                           cameras={c.name: {"rate_hz": c.rate_hz, "width": getattr(c, "width", None),
                                             "height": getattr(c, "height", None)} for c in dev.cameras},
                           calibration=calibration.to_dict(), control_rate_hz=opts.rate_hz)
        self.recorder = Recorder(directory, meta, flush_interval=opts.flush_interval, opener=opts.opener or open)
        loop.recorder = self.recorder
        self.status.say(f"session {directory}")
        self.phase = "countdown"
        self.phase_until = time.monotonic() + opts.countdown_s
        if self.interactive:
            self.status.say(f"keys: {KEYS_HELP}")
        loop.run(lambda: self.quit or self._done(), self._on_tick)
        self.recorder.close()
        summary = {"session": str(directory), "episodes": self.recorder.episodes, "loop": loop.stats.jitter_ms(),
                   "recorder": self.recorder.stats(), "mapper_latency": self.mapper.latency_stats(),
                   "write_error": self.recorder.failure.to_json() if self.recorder.failure else None,
                   "tracker_lost_ticks": loop.stats.tracker_lost_ticks, "ticks": loop.stats.ticks,
                   "camera_dropped": {cam.name: cam.dropped for cam in cameras}}
        for cam in cameras:
            cam.close()
        dev.robot.close()
        dev.input.close()
        return summary

    def _done(self) -> bool:
        o = self.opts
        return not self.interactive and self.phase == "idle" and self.episodes_done >= (o.episodes or 1)

    # -- per tick
    def _on_tick(self, r: TickResult) -> None:
        now = r.t
        if self.recorder is not None and self.recorder.failure is not None and not self.quit:
            self._write_failed(now)
        if getattr(self.dev.input, "exhausted", False) and self.phase in ("idle", "recording", "countdown"):
            self.status.say("replay input exhausted")
            self.quit = True
        for key in (self.keys.read() if self.keys is not None else ""):
            self._key(key, now)
        if self.phase == "countdown" and now >= self.phase_until:
            self.phase = "idle"
            self.phase_until = now
            self.status.say("ready" + (": press space to start an episode" if self.interactive else ""))
        if not self.interactive and self.recorder is not None and not self.quit:
            if self.phase == "idle" and now >= self.phase_until and self.episodes_done < (self.opts.episodes or 1):
                self._start(now)
            elif self.phase == "recording" and now - self.episode_start >= (self.opts.duration or 10.0):
                self._stop(now, self.opts.outcome if self.opts.outcome != "unlabeled" else None)
                self.phase_until = now + self.opts.reset_s
        if self.quit and self.phase == "recording":
            self._stop(now, None)
        if self.status.due(now):            # building the line costs ~ms: only when it is shown
            self.status.show(now, self._status_text(now))

    def _write_failed(self, now: float) -> None:
        """A write failed: say so now, stop the running episode cleanly, end the session."""
        failure = self.recorder.failure
        self.status.show(now, f"WRITE ERROR {failure.error}", force=True)
        self.status.say(f"WRITE ERROR: {failure.describe()}")
        if self.phase == "recording":
            self._stop(now, None)
        self.status.say("session ended: the recording folder no longer takes data (free space, then record again)")
        self.quit = True

    def _start(self, now: float) -> None:
        try:
            index = self.recorder.start_episode(now)
        except OSError as exc:
            self.status.say(f"WRITE ERROR: {exc}")
            self.quit = True
            return
        self.episode_start = now
        self.phase = "recording"
        self.status.say(f"episode {index}: recording")

    def _stop(self, now: float, outcome: str | None) -> None:
        info = self.recorder.stop_episode(now, outcome)
        self.episodes_done += 1
        self.phase = "idle"
        self.status.say(f"episode {info['index']}: stopped after {now - self.episode_start:.1f} s -> {info['outcome']}")
        if "write_error" in info:
            last = [t for t in (info["write_error"].get("lost_from_t"),) if t is not None]
            kept = f"data on disk up to t={last[0] - info['start_t']:.2f} s of the episode" if last else \
                "data on disk up to the failure"
            self.status.say(f"episode {info['index']}: {kept}; lost: {info['lost']}"
                            + (f"; {info['episode_json']}" if "episode_json" in info else ""))

    def _key(self, key: str, now: float) -> None:
        rec = self.recorder
        if rec is not None:
            rec.event(now, "key", {"key": key})
        if key == "q":
            self.quit = True
        elif key == "e":
            self.estop = not self.estop
            if self.mapper is not None:
                (self.mapper.estop if self.estop else self.mapper.reset_estop)()
            if rec is not None:
                rec.event(now, "estop" if self.estop else "estop_release")
            self.status.say("E-STOP" if self.estop else "e-stop released")
        elif rec is None or self.phase not in ("idle", "recording"):
            return
        elif key == " ":
            if self.phase == "recording":
                self._stop(now, None)
            else:
                self._start(now)
        elif key in ("s", "f", "d"):
            outcome = {"s": "success", "f": "failure", "d": "discarded"}[key]
            if self.phase == "recording" and outcome == "discarded":
                self._stop(now, "discarded")
            else:
                info = rec.mark(now, outcome)
                target = "this episode" if self.phase == "recording" else (
                    f"episode {info['index']}" if info else "nothing (no episode yet)")
                self.status.say(f"marked {target}: {outcome}")

    def _status_text(self, now: float) -> str:
        loop = self.loop
        s = loop.stats
        cams = " ".join(f"{name} {s.rate(times, now):.0f}Hz" for name, times in s.camera_times.items())
        lost = 100.0 * s.tracker_lost_ticks / max(1, s.ticks)
        work = np.asarray([s.works[-i] for i in range(1, min(50, len(s.works)) + 1)]) * 1e3 if s.works else np.zeros(1)
        rs = self.recorder.stats() if self.recorder else {"max_unwritten_s": 0.0, "max_at_risk_s": 0.0}
        if self.recorder is not None and self.recorder.failure is not None:
            head = f"WRITE ERROR {self.recorder.failure.error[:60]}"
        elif self.phase == "recording":
            head = f"REC ep {self.recorder.episode} {now - self.episode_start:6.1f}s"
            mark = self.recorder.pending_mark
            head += f" [{mark}]" if mark else ""
        elif self.phase == "countdown":
            head = f"starting in {max(0.0, self.phase_until - now):.1f}s"
        else:
            head = f"{self.phase:<9} {self.episodes_done} ep done"
        return (f"{head} | cmd {s.rate(s.tick_times, now):.0f}Hz {cams} | missed {s.overruns} | lost {lost:.1f}% | "
                f"latency {np.median(work):.1f}/{work.max():.1f}ms | "
                f"at risk {rs['max_unwritten_s'] * 1e3:.0f}ms crash/{rs['max_at_risk_s'] * 1e3:.0f}ms power"
                + (" | E-STOP" if self.estop else ""))


def record(opts: RecordOptions, out: TextIO = sys.stderr) -> dict[str, Any]:
    """Run a recording session; returns its summary. Raises OutputUnwritable before anything else when
    `opts.out` does not take data."""
    warning = check_writable(opts.out)          # before any device is opened, calibrated or imported
    if warning:
        out.write(f"warning: {warning}\n")
    try:
        import torch  # noqa: PLC0415 - tiny per-tick tensors: extra intra-op threads only add jitter
        torch.set_num_threads(1)
    except ImportError:
        pass
    # The control thread shares the GIL with the camera and recorder threads; with CPython's default
    # 5 ms switch interval it can wait a quarter of its 20 ms budget for the lock. 1 ms cut missed
    # deadlines ~2-4x on a 2-core box (docs/teleop.md).
    previous_switch = sys.getswitchinterval()
    sys.setswitchinterval(min(previous_switch, 0.001))
    try:
        return _record(opts, out)
    finally:
        sys.setswitchinterval(previous_switch)


def _record(opts: RecordOptions, out: TextIO) -> dict[str, Any]:
    devices = open_devices(opts)
    interactive = opts.interactive
    stop_requested: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stop_requested.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        with KeyReader() as keys:
            if interactive is False or opts.episodes is not None or opts.duration is not None:
                keys.active = False
            session = Recording(opts, devices, out, keys)
            try:
                summary = session.run()
            except KeyboardInterrupt:
                if session.recorder is not None:
                    session.recorder.close()
                    summary = {"session": str(session.recorder.dir), "episodes": session.recorder.episodes,
                               "interrupted": True}
                else:
                    raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return summary


__all__ = ["RecordOptions", "record", "Recording", "open_devices", "session_dir"]
