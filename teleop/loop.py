"""The fixed-rate control loop: poll input -> map (+ safety) -> send -> read state -> cameras -> record.

One monotonic clock (`time.monotonic`) stamps every sample. Scheduling is deadline based: tick k is due
at `start + k * period`; after a tick the loop sleeps until the next deadline (a short spin for the last
`spin_s` trims OS sleep overshoot). A tick that ends past the next deadline counts the missed deadlines
as overruns and re-anchors on the next future one instead of bursting to catch up, so commands never
bunch up. Cameras are polled every tick and deliver frames at their own rate; live recordings wrap them
in `teleop.devices.capture_thread.CaptureThread` so a polled camera never blocks a tick.

Every tick is recorded in the `loop` stream (start time, deadline, period since the previous tick, work
time, overruns so far), so each recording carries its own timing-jitter evidence.
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from teleop.streams import Camera, InputDevice, OperatorInput, RobotBridge, RobotCommand, RobotState


class Mapper(Protocol):
    """What the loop needs from `teleop.mapping.WholeBodyMapper` (whose `robot` names its embodiment; a
    mapper without one is taken for the default embodiment when the loop needs limits)."""

    def step(self, inp: OperatorInput) -> RobotCommand: ...


@dataclass
class TickResult:
    t: float
    input: OperatorInput
    command: RobotCommand
    state: RobotState
    frames: list


@dataclass
class LoopStats:
    """Running counters for the status line and the timing report (windows hold the last ~1 min)."""
    rate_hz: float
    ticks: int = 0
    overruns: int = 0
    tracker_lost_ticks: int = 0
    hold_ticks: int = 0
    camera_frames: dict[str, int] = field(default_factory=dict)
    periods: deque = field(default_factory=lambda: deque(maxlen=1 << 16))
    works: deque = field(default_factory=lambda: deque(maxlen=1 << 16))
    lateness: deque = field(default_factory=lambda: deque(maxlen=1 << 16))   # tick start - its deadline
    tick_times: deque = field(default_factory=lambda: deque(maxlen=4096))
    camera_times: dict[str, deque] = field(default_factory=dict)

    def rate(self, times: deque, now: float, window: float = 1.0) -> float:
        n = 0
        for t in reversed(times):                 # newest first: stop at the window's edge
            if now - t > window:
                break
            n += 1
        return n / window

    def jitter_ms(self) -> dict[str, float]:
        """Period jitter = |actual period - nominal| in ms: p50 / p99 / max, plus work time p50 / p99."""
        if not self.periods:
            return {"n": 0}
        period = 1.0 / self.rate_hz
        jit = np.abs(np.asarray(self.periods) - period) * 1e3
        work = np.asarray(self.works) * 1e3
        late = np.asarray(self.lateness) * 1e3
        return {"n": int(jit.size), "p50_ms": float(np.percentile(jit, 50)), "p99_ms": float(np.percentile(jit, 99)),
                "max_ms": float(jit.max()), "work_p50_ms": float(np.percentile(work, 50)),
                "work_p99_ms": float(np.percentile(work, 99)), "late_p50_ms": float(np.percentile(late, 50)),
                "late_p99_ms": float(np.percentile(late, 99)), "overruns": self.overruns,
                "overrun_fraction": self.overruns / max(1, self.overruns + self.ticks)}


def period_jitter(periods: np.ndarray, rate_hz: float) -> dict[str, float]:
    """p50 / p99 / max of |period - 1/rate| in ms over recorded `loop.period` values."""
    p = np.asarray(periods, np.float64)
    p = p[np.isfinite(p) & (p > 0)]
    if p.size == 0:
        return {"n": 0}
    jit = np.abs(p - 1.0 / rate_hz) * 1e3
    return {"n": int(p.size), "p50_ms": float(np.percentile(jit, 50)), "p99_ms": float(np.percentile(jit, 99)),
            "max_ms": float(jit.max()), "mean_period_ms": float(p.mean() * 1e3)}


def loop_figures(episode_dir: Any, rate_hz: float = 50.0) -> dict:
    """Timing figures of one recorded episode from its `loop` stream: ticks, missed deadlines (and their
    fraction of all deadlines), |period - 1/rate| p50/p99/max, tick work p50/p99 (ms)."""
    from pathlib import Path  # noqa: PLC0415

    from schemas.recording import read_stream  # noqa: PLC0415
    episode_dir = Path(episode_dir)
    rows = read_stream(episode_dir / "loop").to_pydict()
    period = np.asarray(rows["period"], np.float64)
    period = period[np.isfinite(period) & (period > 0)]
    work = np.asarray(rows["work"], np.float64) * 1e3
    overruns = np.asarray(rows["overruns"], np.int64)
    ticks = len(rows["t"])
    missed = int(overruns[-1] - overruns[0]) if ticks else 0
    jit = np.abs(period - 1.0 / rate_hz) * 1e3
    return {"ticks": ticks, "missed": missed, "missed_frac": round(missed / max(1, ticks + missed), 5),
            "p50_jitter_ms": round(float(np.percentile(jit, 50)), 4), "p99_jitter_ms": round(float(np.percentile(jit, 99)), 4),
            "max_jitter_ms": round(float(jit.max()), 3), "tick_work_p50_ms": round(float(np.percentile(work, 50)), 3),
            "tick_work_p99_ms": round(float(np.percentile(work, 99)), 3),
            "seconds": round(float(rows["t"][-1] - rows["t"][0]), 2) if ticks else 0.0}


class ControlLoop:
    """Runs ticks at `rate_hz` until `should_stop()`; `on_tick(result)` sees each tick (keys, status)."""

    def __init__(self, device: InputDevice, mapper: Mapper, robot: RobotBridge, cameras: Sequence[Camera] = (),
                 recorder: Any = None, rate_hz: float = 50.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, spin_s: float = 0.0003):
        self.device, self.mapper, self.robot = device, mapper, robot
        self.cameras = list(cameras)
        self.recorder = recorder
        self.rate_hz = float(rate_hz)
        self.period = 1.0 / self.rate_hz
        self.clock, self.sleep, self.spin_s = clock, sleep, spin_s
        self.stats = LoopStats(self.rate_hz)
        self.last_command: RobotCommand | None = None
        self._prev_t: float | None = None

    def tick(self, now: float) -> TickResult:
        """One control step at time `now` (also used directly by offline replays)."""
        inp = self.device.poll(now)
        command = guard(self.mapper.step(inp), self.last_command, now, getattr(self.mapper, "robot", None))
        self.robot.send(command)
        state = self.robot.state(now)
        frames = []
        for cam in self.cameras:
            frame = cam.grab(now)
            if frame is not None:
                frames.append(frame)
        self.last_command = command
        rec = self.recorder
        if rec is not None and rec.recording:
            rec.record_input(inp)
            rec.record_command(command)
            rec.record_state(state)
            for frame in frames:
                rec.record_camera(frame)
        s = self.stats
        if any(f.endswith("_lost") for f in command.flags):
            s.tracker_lost_ticks += 1
        if "hold" in command.flags:
            s.hold_ticks += 1
        for frame in frames:
            s.camera_frames[frame.camera] = s.camera_frames.get(frame.camera, 0) + 1
            s.camera_times.setdefault(frame.camera, deque(maxlen=512)).append(now)
        return TickResult(now, inp, command, state, frames)

    def run(self, should_stop: Callable[[], bool], on_tick: Callable[[TickResult], None] | None = None,
            max_seconds: float | None = None) -> LoopStats:
        start = self.clock()
        k = 0
        while True:
            deadline = start + k * self.period
            self._wait_until(deadline)
            now = self.clock()
            result = self.tick(now)
            if on_tick is not None:
                on_tick(result)
            work = self.clock() - now
            period = now - self._prev_t if self._prev_t is not None else float("nan")
            self._prev_t = now
            s = self.stats
            s.ticks += 1
            s.works.append(work)
            s.lateness.append(now - deadline)
            s.tick_times.append(now)
            if np.isfinite(period):
                s.periods.append(period)
            if self.recorder is not None and self.recorder.recording:
                self.recorder.record_tick(now, deadline, period, work, s.overruns)
            if should_stop() or (max_seconds is not None and now - start >= max_seconds):
                return s
            k += 1
            end = self.clock()
            late = int(np.floor((end - (start + k * self.period)) / self.period)) + 1
            if late > 0:                     # missed `late` deadlines: skip them, don't burst
                s.overruns += late
                k += late

    def _wait_until(self, deadline: float) -> None:
        remaining = deadline - self.clock()
        if remaining > self.spin_s:
            self.sleep(remaining - self.spin_s)
        while self.clock() < deadline:
            pass


def request_realtime(priority: int = 10) -> bool:
    """Ask the OS to run the calling thread (and threads it starts later) under SCHED_FIFO at `priority`.

    Why: on a shared 2-core machine an ordinary-priority loop waits behind every runnable process for its
    wake-up and its 1-6 ms of work; a real-time thread is woken on time. The loop sleeps most of each
    period, so it leaves the CPU to the rest; Linux's RT throttling (sched_rt_runtime_us) bounds a runaway.
    Returns False, changing nothing, where not permitted (no CAP_SYS_NICE / RLIMIT_RTPRIO, not Linux)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (AttributeError, OSError):
        return False


def lower_thread_priority(thread: Any, priority: int) -> bool:
    """Put a helper thread (which inherited the loop's SCHED_FIFO priority) at `priority` below it. Why: with
    equal FIFO priorities on one core there is no time slicing, so a busy recorder thread held the control
    thread off its core for up to 0.5 s; one step lower, the control thread always preempts it."""
    tid = getattr(thread, "native_id", None)
    if tid is None:
        return False
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (AttributeError, OSError):
        return False


def release_realtime() -> None:
    """Back to the ordinary scheduler (after `request_realtime`)."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def guard(command: RobotCommand, last: RobotCommand | None, now: float, robot: str | None = None) -> RobotCommand:
    """Last line of defence after the mapper's own safety: never send a non-finite command. Without a last
    command, the safe default pose within `robot`'s limits (an embodiment name; None: the default)."""
    if np.isfinite(command.action).all():
        return command
    if last is not None:
        return RobotCommand(now, last.action, frozenset(command.flags | {"nonfinite", "hold"}))
    from teleop.mapping import action_bounds  # noqa: PLC0415
    from teleop.safety import safe_default  # noqa: PLC0415
    low, high = action_bounds(robot)
    safe = np.clip(safe_default(), low, high)
    return RobotCommand(now, safe.astype(np.float32), frozenset(command.flags | {"nonfinite", "hold"}))
