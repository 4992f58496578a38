"""The simulators in their own process (`teleop.robot_process`): lock-free exchange, and a real-time loop
that holds 50 Hz against them."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from schemas.actions import PSI0_ACTION
from schemas.recording import SessionMeta
from teleop.robot_process import (RING, ProcessCamera, ProcessInput, ProcessRobot, Seqlock, SimProcess, SimSpec)
from teleop.streams import BODY_SITES, RobotCommand


def test_seqlock_reader_gets_the_last_complete_write_while_the_writer_is_stopped_mid_write():
    fields = {"t": (1,), "q": (3,)}
    buf = bytearray(Seqlock.nbytes(fields))
    writer, reader = Seqlock(memoryview(buf), 0, fields), Seqlock(memoryview(buf), 0, fields)
    assert reader.read() == 0
    writer.write({"t": 1.0, "q": [1, 2, 3]})
    writer.write({"t": 2.0, "q": [4, 5, 6]})
    assert reader.read() == 2 and reader.copies["q"].tolist() == [4, 5, 6]
    # the writer is preempted half-way through write 3 (into copy 1): its stamp says "being written"
    writer._head[1 + 1] = -1
    writer._data[1, :] = np.nan
    start = time.perf_counter()
    assert reader.read() == 2 and reader.copies["q"].tolist() == [4, 5, 6]      # never waits for the writer
    assert time.perf_counter() - start < 0.01
    writer._head[0] = 3                       # ... and published (stamp not yet set): torn, so the old copy stays
    assert reader.read() == 2 and reader.copies["t"][0] == 2.0
    writer._head[:] = (2, 1, 2)
    writer.write({"t": 3.0, "q": [7, 8, 9]})
    assert reader.read() == 3 and reader.copies["q"].tolist() == [7, 8, 9]


@pytest.fixture(scope="module")
def sim():
    # real-time like `teleop record` runs it (where permitted): at load average 43 on 2 cores an ordinary
    # priority child delivered 14 of 30 frames a second
    proc = SimProcess(SimSpec(kind="kinematic", task="lunchbag", seed=2, camera_size=(32, 24), realtime=True))
    yield proc
    proc.close()


def test_sim_process_serves_input_state_and_frames_and_takes_commands(sim):
    device, robot, camera = ProcessInput(sim), ProcessRobot(sim), ProcessCamera(sim)
    camera.open()
    inp = device.poll(time.monotonic())
    assert set(inp.poses) == set(BODY_SITES) and inp.poses["head"].shape == (4, 4)
    assert np.allclose(inp.poses["head"][3], [0, 0, 0, 1]) and inp.hand_keypoints["left"].shape == (21, 3)
    assert device.describe()["seed"] == 2 and device.describe()["kind"] == "sim"
    action = np.zeros(PSI0_ACTION.size, np.float32)
    arm = PSI0_ACTION.slice("left_arm")
    action[arm.start] = -0.5
    first = camera._next
    frames, t0 = [], time.monotonic()
    while time.monotonic() - t0 < 1.0:
        robot.send(RobotCommand(time.monotonic(), action, frozenset()))
        frame = camera.grab(time.monotonic())
        if frame is not None:
            frames.append(frame)
        time.sleep(0.02)
    written = int(sim.layout.control[1])
    frames += [f for f in (camera.grab(0.0) for _ in range(RING)) if f is not None]
    state = robot.state(time.monotonic())
    from teleop.devices.sim import SIM_BODY
    assert state.body_q[SIM_BODY.slice("left_arm").start] == pytest.approx(-0.5, abs=0.02)   # tau 60 ms: settled
    assert state.extra["sim_t"] > t0 and set(state.extra) >= {"base_x", "base_yaw"}
    # the 30 Hz camera read at 50 Hz: every frame written is handed out once (or counted dropped), in order
    assert len(frames) + camera.dropped == written - first and len(frames) >= 5, (len(frames), camera.dropped)
    assert frames[0].image.shape == (24, 32, 3) and all(b.t > a.t for a, b in zip(frames, frames[1:]))


def test_camera_ring_drops_what_the_loop_fell_behind_on_and_counts_it(sim):
    camera = ProcessCamera(sim)
    camera.open()
    first, deadline = camera._next, time.monotonic() + 30
    while int(sim.layout.control[1]) - first < RING + 6:           # the loop fell RING + 6 frames behind
        assert time.monotonic() < deadline, "simulator process renders no frames"
        time.sleep(0.01)
    behind = int(sim.layout.control[1]) - first
    got = [f for f in (camera.grab(0.0) for _ in range(2 * RING)) if f is not None]
    written = int(sim.layout.control[1]) - first
    assert camera.dropped >= behind - (RING - 1) and len(got) >= RING - 1
    assert len(got) + camera.dropped <= written and all(b.t > a.t for a, b in zip(got, got[1:]))


def test_close_stops_the_process_and_frees_the_shared_memory():
    from multiprocessing import shared_memory
    proc = SimProcess(SimSpec(kind="kinematic", camera=False))
    name = proc.shm.name
    proc.close()
    assert proc.process.returncode == 0
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=name)


def test_realtime_loop_holds_50hz_against_the_sim_process(sim, tmp_path):
    """A 4 s recorded run of the real-time loop (SCHED_FIFO where permitted) against the simulator process.

    Measured (shared 2-core dev box, 2026-11-30): this test at load average 43: 199 ticks, 2 missed (1.0 %),
    p99 jitter 14.5 ms, tick work p50 0.51 ms, crash window 81 ms; `benchmarks/teleop_loop.py --device mujoco`
    (15 s) at load 29: 0.4 % missed, p99 4.6 ms, work p50 0.53 ms, crash window 75 ms. Bounds: 2x the
    load-43 missed fraction, ~1.7x its p99 jitter, 5x the tick work, 5x the crash window (this box's worst
    case; an idle box misses none)."""
    from teleop.loop import ControlLoop, loop_figures, lower_thread_priority, release_realtime, request_realtime
    from teleop.recording import Recorder
    from teleop.session import HoldMapper
    device, robot, camera = ProcessInput(sim), ProcessRobot(sim), ProcessCamera(sim)
    camera.open()
    granted = request_realtime()
    rec = Recorder(tmp_path / "s", SessionMeta(task="lunchbag", robot="g1_dex3"))
    if granted:
        lower_thread_priority(rec._thread, 8)
        lower_thread_priority(rec._syncer, 7)
    loop = ControlLoop(device, HoldMapper(), robot, [camera], rec, 50.0)
    try:
        rec.start_episode(time.monotonic())
        loop.run(lambda: False, max_seconds=4.0)
        rec.stop_episode(time.monotonic())
        rec.close()
    finally:
        if granted:
            release_realtime()
    fig = loop_figures(Path(tmp_path / "s" / "episode_000000"))
    from schemas.recording import read_stream
    for stream in ("inputs", "commands", "robot_state"):           # what ingest requires of every stream
        t = np.asarray(read_stream(tmp_path / "s" / "episode_000000" / stream).column("t").to_pylist())
        assert t.size >= 190 and np.all(np.diff(t) > 0), stream
    print("realtime loop vs sim process:", fig, "crash window ms", rec.stats()["max_unwritten_s"] * 1e3, "rt", granted)
    assert fig["ticks"] >= 190 and fig["missed_frac"] <= 0.02, fig
    assert fig["p99_jitter_ms"] <= 25.0 and fig["tick_work_p50_ms"] <= 2.5, fig
    assert rec.stats()["max_unwritten_s"] <= 0.4
