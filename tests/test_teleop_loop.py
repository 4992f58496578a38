"""Control-loop scheduling on a virtual clock: deadlines, overrun counting without bursts, jitter records."""
from __future__ import annotations

import numpy as np

from teleop.devices.sim import SimOperator, SimRobot
from teleop.loop import ControlLoop, period_jitter
from schemas.recording import SessionMeta, read_stream
from teleop.recording import Recorder
from teleop.session import HoldMapper


class VirtualTime:
    def __init__(self, t: float = 500.0):
        self.t = t
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.sleeps.append(dt)
        self.t += dt + 0.0002          # the OS oversleeps a little


class SlowMapper(HoldMapper):
    """HoldMapper whose step costs `cost(tick)` seconds of virtual time."""

    def __init__(self, vt: VirtualTime, cost):
        super().__init__()
        self.vt, self.cost = vt, cost

    def step(self, inp):
        self.vt.t += self.cost(self.ticks)
        return super().step(inp)


def test_ticks_on_deadlines_and_overruns_skip_instead_of_bursting(tmp_path):
    vt = VirtualTime()
    slow = {20: 0.065, 40: 0.030}      # tick 20 overruns 3 deadlines, tick 40 one
    mapper = SlowMapper(vt, lambda k: slow.get(k, 0.004))
    rec = Recorder(tmp_path / "s", SessionMeta(task="t", robot="g1-dex3"), flush_interval=3600, clock=vt.clock)
    rec.start_episode(vt.t)
    loop = ControlLoop(SimOperator(seed=0), mapper, SimRobot(), [], rec, 50.0, clock=vt.clock, sleep=vt.sleep,
                       spin_s=0.0)
    start = vt.t
    stats = loop.run(lambda: False, max_seconds=1.0)
    rec.stop_episode(vt.t)
    rec.close()
    ticks = read_stream(tmp_path / "s" / "episode_000000" / "loop").to_pylist()
    deadlines = np.array([r["deadline"] for r in ticks])
    k = np.round((deadlines - start) / 0.02)
    np.testing.assert_allclose(deadlines, start + k * 0.02, atol=1e-9)          # always on the 50 Hz grid
    assert stats.overruns == 3 + 1
    assert set(np.diff(k).astype(int)) == {1, 4, 2}                              # skipped, never bunched up
    starts = np.array([r["t"] for r in ticks])
    assert np.all(starts - deadlines >= 0) and np.all(starts - deadlines < 0.001)
    jit = period_jitter(np.array([r["period"] for r in ticks]), 50.0)
    assert jit["p50_ms"] < 1.0 and jit["max_ms"] > 40
    assert stats.ticks == len(ticks) and stats.jitter_ms()["overruns"] == 4


def test_loop_commands_robot_and_records_every_stream(tmp_path):
    from teleop.devices.sim import SimCamera
    vt = VirtualTime()
    robot = SimRobot()
    rec = Recorder(tmp_path / "s", SessionMeta(task="t", robot="g1-dex3"), flush_interval=3600, clock=vt.clock)
    loop = ControlLoop(SimOperator(seed=1), HoldMapper(), robot, [SimCamera(robot, width=32, height=24)], rec, 50.0,
                       clock=vt.clock, sleep=vt.sleep, spin_s=0.0)
    loop.run(lambda: False, max_seconds=0.2)           # not recording yet: nothing kept
    rec.start_episode(vt.t)
    loop.run(lambda: False, max_seconds=0.5)
    rec.stop_episode(vt.t)
    rec.close()
    ep = tmp_path / "s" / "episode_000000"
    n = {name: read_stream(ep / name).num_rows for name in ("inputs", "commands", "robot_state", "loop",
                                                             "camera_egocentric")}
    assert n["inputs"] == n["commands"] == n["robot_state"] == n["loop"] == 26
    assert 14 <= n["camera_egocentric"] <= 17                                   # camera at its own 30 Hz
    assert robot.commands_received == loop.stats.ticks


class BlockingCamera:
    """Like cv2.VideoCapture.read(): grab blocks until the device's next frame (30 fps)."""

    name, rate_hz = "egocentric", 30.0

    def __init__(self, fail_after: int | None = None):
        self.frames, self.fail_after = 0, fail_after
        self.opened = self.closed = False

    def open(self):
        self.opened = True

    def grab(self, now):
        import time

        due = getattr(self, "_next", now)
        time.sleep(max(0.0, due - time.monotonic()))
        self._next = max(due, now) + 1 / self.rate_hz
        self.frames += 1
        if self.fail_after is not None and self.frames > self.fail_after:
            raise OSError("device unplugged")
        from teleop.streams import CameraFrame
        return CameraFrame(t=time.monotonic(), camera=self.name, image=np.zeros((4, 4, 3), np.uint8))

    def close(self):
        self.closed = True


def test_a_blocking_camera_on_its_capture_thread_costs_the_loop_no_deadlines():
    """Grabbed inline, a camera that blocks for its next frame holds a 50 Hz loop to the camera's
    30 Hz; behind `CaptureThread` the loop keeps 50 Hz and still receives every frame, stamped when
    it was captured."""
    import time

    from teleop.devices.capture_thread import CaptureThread

    def run(camera, seconds=1.0):
        robot = SimRobot()
        loop = ControlLoop(SimOperator("lunchbag", seed=0), HoldMapper(), robot, [camera], None, 50.0)
        got = []
        camera.open()
        t0 = time.monotonic()
        stats = loop.run(lambda: False, lambda r: got.extend(r.frames), max_seconds=seconds)
        camera.close()
        return stats, got, time.monotonic() - t0

    inline, _, _ = run(BlockingCamera())
    assert inline.overruns >= 12, inline.overruns               # the blocking read costs deadlines
    threaded_cam = CaptureThread(BlockingCamera())
    stats, frames, wall = run(threaded_cam)
    assert stats.overruns <= 5 and stats.ticks >= 44, (stats.overruns, stats.ticks)
    assert 24 <= len(frames) <= 36 and threaded_cam.camera.closed
    assert all(b.t > a.t for a, b in zip(frames, frames[1:]))   # capture stamps, in order


def test_a_capture_thread_failure_is_raised_in_the_control_thread():
    import time

    import pytest

    from teleop.devices.capture_thread import CaptureThread

    cam = CaptureThread(BlockingCamera(fail_after=2))
    cam.open()
    time.sleep(0.3)
    with pytest.raises(RuntimeError, match="device unplugged"):
        for _ in range(10):
            cam.grab(time.monotonic())
    cam.close()
