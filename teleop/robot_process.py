"""The simulated robot, operator and camera renderer in their own process, as a real robot is.

Why: in one process the simulated operator (~2 ms a poll), the robot model and the camera renderer share
the GIL with the mapper, and on 2 cores the 50 Hz loop missed 24 % of its ticks. A real G1 runs on its own
computer and a tracker runtime in its own process; the teleop loop only reads their newest samples and
writes commands. `SimProcess` gives the simulators the same shape: a child process runs them on its own
clock and the control loop talks to it through shared memory, never waiting:

- command block  (loop -> sim): the newest `RobotCommand` action;
- state block    (sim -> loop): the newest `RobotState` (plus the sim's `extra` values);
- input block    (sim -> loop): the newest `OperatorInput` (tracker poses, hands, axes) and, with the
  MuJoCo world, the scripted expert's action (`expert_action`);
- camera ring    (sim -> loop): the last `RING` rendered frames, each with its capture time.

Each block is a seqlock (a counter made odd while written): readers copy and retry when the counter moved,
so neither side ever blocks the other. Times are `time.monotonic()`, one clock for every process on Linux.

Faces for the loop: `ProcessInput` (InputDevice), `ProcessRobot` (RobotBridge), `ProcessCamera` (Camera),
`ExpertActionMapper` (the MuJoCo expert's action as the command). Kinds: `"kinematic"` (`SimOperator` +
`SimRobot` + `SimCamera`, the `--device sim` set) and `"mujoco"` (MuJoCo G1 + scripted expert + head
camera, in real time).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from schemas.actions import PSI0_ACTION, PSI0_HANDS
from schemas.embodiments import G1_BODY
from teleop.streams import BODY_SITES, HAND_SIDES, CameraFrame, OperatorInput, RobotCommand, RobotState

RING = 4
"""Camera frames kept in shared memory: the loop may fall this many frames behind before one is dropped."""
_N_HAND_POINTS = 21


@dataclass(frozen=True)
class SimSpec:
    """What the child process simulates (JSON on its command line: the child is a fresh interpreter)."""
    kind: str = "kinematic"              # kinematic | mujoco
    task: str = "lunchbag"
    seed: int = 0
    robot: str = "g1_dex3"
    camera: bool = True
    camera_rate_hz: float = 30.0
    camera_size: tuple[int, int] = (160, 120)
    operator_rate_hz: float = 90.0       # kinematic: tracker update rate
    robot_rate_hz: float = 200.0         # kinematic: state publication rate; mujoco steps at 50 Hz
    realtime: bool = False               # SCHED_FIFO (below the control loop's priority) where permitted


class Seqlock:
    """Named float64 fields in one shared buffer, written by one process and read by another, lock-free.

    Two copies, written alternately: write m goes into copy m % 2 (its stamp is -1 while written, then m)
    and is then published as `latest`. A reader copies `latest`'s buffer and keeps it when the stamp still
    says m. So a writer preempted half-way never stalls a reader (it reads the previous, complete copy), and
    the control loop never spins waiting for the simulator."""

    def __init__(self, buf: memoryview, offset: int, fields: dict[str, tuple[int, ...]]):
        self.fields = dict(fields)
        self.size = size = sum(int(np.prod(s)) for s in fields.values())
        self._head = np.ndarray((3,), np.int64, buf, offset)            # latest, stamp of copy 0, of copy 1
        self._data = np.ndarray((2, size), np.float64, buf, offset + 24)
        self._copy = np.zeros(size)
        self._scratch = np.zeros(size)
        self._m = 0
        self.copies = self._split(self._copy)

    def _split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        out, k = {}, 0
        for name, shape in self.fields.items():
            n = int(np.prod(shape))
            out[name] = flat[k:k + n].reshape(shape)
            k += n
        return out

    @staticmethod
    def nbytes(fields: dict[str, tuple[int, ...]]) -> int:
        return 24 + 2 * 8 * sum(int(np.prod(s)) for s in fields.values())

    def write(self, values: dict[str, Any]) -> None:
        m = int(self._head[0]) + 1
        b = m % 2
        self._head[1 + b] = -1                   # being written
        views = self._split(self._data[b])
        for name, v in values.items():
            views[name][...] = v
        self._head[1 + b] = m
        self._head[0] = m

    @property
    def seq(self) -> int:
        return int(self._head[0])

    def read(self) -> int:
        """Copy the newest complete write into `self.copies`; returns its number (0: never written). If the
        writer lapped the reader twice during the copy (three tries), the previous snapshot is kept."""
        for _ in range(3):
            m = int(self._head[0])
            if m == 0:
                return 0
            b = m % 2
            self._scratch[...] = self._data[b]
            if int(self._head[1 + b]) == m:
                self._copy[...] = self._scratch
                self._m = m
                return m
        return self._m


def _input_fields(expert: bool) -> dict[str, tuple[int, ...]]:
    n = len(BODY_SITES)
    f = {"t": (1,), "poses": (n, 4, 4), "pose_valid": (n,), "hand_keypoints": (len(HAND_SIDES), _N_HAND_POINTS, 3),
         "hand_valid": (len(HAND_SIDES),), "axes": (4,)}
    if expert:
        f["expert_action"] = (PSI0_ACTION.size,)
    return f


def _state_fields(n_extra: int) -> dict[str, tuple[int, ...]]:
    return {"t": (1,), "body_q": (G1_BODY.size,), "body_dq": (G1_BODY.size,), "hand_q": (PSI0_HANDS.size,),
            "imu_rpy": (3,), "base_height": (1,), "extra": (n_extra,)}


class _Layout:
    """The shared buffer's blocks (both processes build the same layout from the same arguments)."""

    def __init__(self, buf: memoryview, extra_names: list[str], expert: bool, frame_shape: tuple[int, int, int] | None):
        off = 0
        cmd_f = {"t": (1,), "action": (PSI0_ACTION.size,)}
        self.command = Seqlock(buf, off, cmd_f)
        off += Seqlock.nbytes(cmd_f)
        st_f = _state_fields(len(extra_names))
        self.state = Seqlock(buf, off, st_f)
        off += Seqlock.nbytes(st_f)
        in_f = _input_fields(expert)
        self.input = Seqlock(buf, off, in_f)
        off += Seqlock.nbytes(in_f)
        self.control = np.ndarray((4,), np.int64, buf, off)     # [stop, frames written, child pid, ready]
        off += 32
        self.frame_shape = frame_shape
        self.frame_t = np.ndarray((RING,), np.float64, buf, off)
        off += 8 * RING
        self.frames = np.ndarray((RING, *frame_shape), np.uint8, buf, off) if frame_shape else None

    @staticmethod
    def nbytes(n_extra: int, expert: bool, frame_shape: tuple[int, int, int] | None) -> int:
        n = Seqlock.nbytes({"t": (1,), "action": (PSI0_ACTION.size,)}) + Seqlock.nbytes(_state_fields(n_extra))
        n += Seqlock.nbytes(_input_fields(expert)) + 32 + 8 * RING
        return n + (RING * int(np.prod(frame_shape)) if frame_shape else 0)


# ------------------------------------------------------------------------------------------ child side
class _KinematicSim:
    def __init__(self, spec: SimSpec):
        from teleop.devices.sim import SimCamera, SimOperator, SimRobot  # noqa: PLC0415
        self.spec = spec
        self.operator = SimOperator(task=spec.task, seed=spec.seed)
        self.robot = SimRobot(spec.robot)
        w, h = spec.camera_size
        self.camera = SimCamera(self.robot, rate_hz=spec.camera_rate_hz, width=w, height=h, seed=spec.seed) \
            if spec.camera else None
        self.extra_names = list(self.robot.state(time.monotonic()).extra)
        self.expert = False
        self.period = 1.0 / spec.robot_rate_hz
        self.describe = self.operator.describe()

    def step(self, now: float, action: np.ndarray | None, lay: _Layout, due_input: bool) -> None:
        if action is not None:
            self.robot.send(RobotCommand(now, action, frozenset()))
        _publish_state(lay, self.robot.state(now), self.extra_names)
        if due_input:
            _publish_input(lay, self.operator.poll(now), None)

    def close(self) -> None:
        pass

    def render(self, now: float) -> np.ndarray | None:
        frame = self.camera.grab(now) if self.camera is not None else None
        return None if frame is None else frame.image


class _MujocoSim:
    def __init__(self, spec: SimSpec):
        from teleop.devices.mujoco_sim import ExpertInput, MujocoRobot, MujocoWorld  # noqa: PLC0415
        self.spec = spec
        self.world = MujocoWorld(spec.task, spec.seed, camera_size=spec.camera_size)
        self.world.reset(spec.seed)
        self.input = ExpertInput(self.world)
        self.robot = MujocoRobot(self.world)
        self.extra_names = list(self.robot.state(0.0).extra)
        self.expert = True
        self.period = 1.0 / 50.0                      # the simulator's control rate
        self.describe = self.world.describe()
        self._next_frame: float | None = None

    def step(self, now: float, action: np.ndarray | None, lay: _Layout, due_input: bool) -> None:
        w = self.world
        if action is not None:
            w.pending = np.asarray(action, np.float64)
        if w.done:                                   # next episode of the task (seed + 1): keep the sim live
            w.reset(w.seed + 1)
        _publish_state(lay, self.robot.state(now), self.extra_names)
        _publish_input(lay, self.input.poll(now), np.asarray(w.expert.act(), np.float64))

    def close(self) -> None:
        self.world.env.close()                       # renderer contexts before interpreter teardown

    def render(self, now: float) -> np.ndarray | None:
        if not self.spec.camera:
            return None
        if self._next_frame is None:
            self._next_frame = now
        if now < self._next_frame:
            return None
        self._next_frame += 1.0 / self.spec.camera_rate_hz * max(1, int((now - self._next_frame) * self.spec.camera_rate_hz) + 1)
        w, h = self.spec.camera_size
        return self.world.env.render("head", w, h)


def _publish_state(lay: _Layout, st: RobotState, names: list[str]) -> None:
    lay.state.write({"t": st.t, "body_q": st.body_q, "body_dq": st.body_dq, "hand_q": st.hand_q, "imu_rpy": st.imu_rpy,
                     "base_height": st.base_height, "extra": [st.extra.get(n, np.nan) for n in names]})


def _publish_input(lay: _Layout, inp: OperatorInput, expert_action: np.ndarray | None) -> None:
    values = {"t": inp.t, "poses": [inp.poses[s] for s in BODY_SITES],
              "pose_valid": [float(inp.pose_valid.get(s, False)) for s in BODY_SITES],
              "hand_keypoints": [inp.hand_keypoints[h] for h in HAND_SIDES],
              "hand_valid": [float(inp.hand_valid.get(h, False)) for h in HAND_SIDES], "axes": inp.axes}
    if expert_action is not None:
        values["expert_action"] = expert_action
    lay.input.write(values)


def _child(spec: SimSpec, conn: Any) -> None:  # conn: anything with send(dict)
    """The simulator process: build the sim, share its layout, then run on absolute deadlines until told to stop
    (or the parent is gone)."""
    try:
        sim = _KinematicSim(spec) if spec.kind == "kinematic" else _MujocoSim(spec)
        w, h = spec.camera_size
        shape = (h, w, 3) if spec.camera else None
        shm = shared_memory.SharedMemory(create=True, size=_Layout.nbytes(len(sim.extra_names), sim.expert, shape))
    except BaseException as exc:  # noqa: BLE001 - the parent raises it
        conn.send({"error": repr(exc)})
        return
    try:
        lay = _Layout(shm.buf, sim.extra_names, sim.expert, shape)
        lay.control[2] = os.getpid()
        from teleop.loop import release_realtime, request_realtime  # noqa: PLC0415
        if spec.realtime:
            request_realtime(5)                       # below the control loop (10): the robot waits, not the loop
        else:
            release_realtime()                        # a real-time parent's policy is inherited: drop it
        conn.send({"shm": shm.name, "extra_names": sim.extra_names, "expert": sim.expert, "frame_shape": shape,
                   "describe": sim.describe})
        parent = os.getppid()
        input_period = 1.0 / spec.operator_rate_hz
        start = time.monotonic()
        k, next_input, last_cmd = 0, start, 0
        action = np.empty(PSI0_ACTION.size)
        while lay.control[0] == 0 and os.getppid() == parent:
            deadline = start + k * sim.period
            remaining = deadline - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            now = time.monotonic()
            seq = lay.command.read()
            new = None
            if seq != last_cmd and seq:
                last_cmd = seq
                action[...] = lay.command.copies["action"]
                new = action
            due_input = now >= next_input
            if due_input:
                next_input += input_period * max(1, int((now - next_input) / input_period) + 1)
            sim.step(now, new, lay, due_input)
            img = sim.render(now)
            if img is not None:
                n = int(lay.control[1])
                lay.frames[n % RING] = img
                lay.frame_t[n % RING] = now
                lay.control[1] = n + 1
            lay.control[3] = 1
            k += 1
            behind = int((time.monotonic() - (start + k * sim.period)) / sim.period)
            if behind > 0:                               # re-anchor, never burst
                k += behind
    finally:
        sim.close()
        lay = None                                   # drop the views before closing the buffer
        shm.close()
        shm.unlink()


class _Stdout:
    """The child's handshake channel: one JSON line on stdout."""

    def send(self, info: dict) -> None:
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    import selectors  # noqa: PLC0415
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    ready = sel.select(timeout)
    sel.close()
    return proc.stdout.readline() if ready else ""


# ------------------------------------------------------------------------------------------ parent side
class SimProcess:
    """Starts the simulator process and attaches to its shared memory; `close()` stops it."""

    def __init__(self, spec: SimSpec = SimSpec(), start_timeout: float = 120.0):
        self.spec = spec
        # a fresh interpreter (not fork: the parent may hold threads or torch state; not multiprocessing's
        # spawn: that re-imports the caller's __main__), told where this package lives
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]))
        self.process = subprocess.Popen([sys.executable, "-m", "teleop.robot_process", json.dumps(asdict(spec))],
                                        stdout=subprocess.PIPE, env=env, text=True)
        self.layout: _Layout | None = None
        line = _readline(self.process, start_timeout)
        if not line:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"simulator process ({spec.kind}) did not start within {start_timeout:.0f} s")
        info = json.loads(line)
        if "error" in info:
            self.process.wait(5)
            raise RuntimeError(f"simulator process ({spec.kind}) failed: {info['error']}")
        self.extra_names: list[str] = info["extra_names"]
        self.describe_info: dict = info["describe"]
        self.shm = shared_memory.SharedMemory(name=info["shm"])
        from multiprocessing import resource_tracker  # noqa: PLC0415 - the child owns (and unlinks) the segment
        resource_tracker.unregister(self.shm._name, "shared_memory")  # type: ignore[attr-defined]
        self.layout = _Layout(self.shm.buf, self.extra_names, info["expert"], info["frame_shape"])
        deadline = time.monotonic() + start_timeout
        while self.layout.control[3] == 0:       # first state and input published
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulator process ({spec.kind}) stopped before its first sample")
            time.sleep(0.002)
        self.commands_sent = 0

    def close(self) -> None:
        if self.layout is None:
            return
        self.layout.control[0] = 1
        self.layout = None
        try:
            self.process.wait(30)                    # interpreter teardown; slow on a loaded 2-core box
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.shm.close()

    def __enter__(self) -> "SimProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ProcessInput:
    """InputDevice over the simulator process: `poll` returns its newest tracker sample, stamped `now`."""

    def __init__(self, sim: SimProcess, name: str = "sim"):
        self.sim, self.name = sim, name

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {**self.sim.describe_info, "process": "own (teleop.robot_process)"}

    def poll(self, now: float) -> OperatorInput:
        blk = self.sim.layout.input
        blk.read()
        c = blk.copies
        poses = {s: c["poses"][i].copy() for i, s in enumerate(BODY_SITES)}
        valid = {s: bool(c["pose_valid"][i]) for i, s in enumerate(BODY_SITES)}
        kps = {h: c["hand_keypoints"][i].copy() for i, h in enumerate(HAND_SIDES)}
        hvalid = {h: bool(c["hand_valid"][i]) for i, h in enumerate(HAND_SIDES)}
        return OperatorInput(t=float(now), poses=poses, pose_valid=valid, hand_keypoints=kps, hand_valid=hvalid,
                             axes=c["axes"].copy(), buttons=frozenset())

    def expert_action(self) -> np.ndarray:
        """The MuJoCo expert's newest action (read with the last `poll`)."""
        return self.sim.layout.input.copies["expert_action"].astype(np.float32)


class ProcessRobot:
    """RobotBridge over the simulator process: `send` publishes the command, `state` reads the newest state
    (stamped `now`, like a bridge reading a robot's last message; `extra["sim_t"]` is when it was produced)."""

    def __init__(self, sim: SimProcess, name: str = "sim"):
        self.sim, self.name = sim, name
        self.commands_received = 0
        self._last: RobotState | None = None

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, command: RobotCommand) -> None:
        a = command.action
        if np.isfinite(a).all():
            self.sim.layout.command.write({"t": command.t, "action": a})
            self.commands_received += 1

    def state(self, now: float) -> RobotState:
        blk = self.sim.layout.state
        blk.read()
        c = blk.copies
        extra = {n: float(v) for n, v in zip(self.sim.extra_names, c["extra"])}
        # t: when the loop read it (strictly increasing, like every other stream); sim_t: when it was produced
        extra["sim_t"] = float(c["t"][0])
        self._last = RobotState(t=float(now), body_q=c["body_q"].copy(), body_dq=c["body_dq"].copy(),
                                hand_q=c["hand_q"].copy(), imu_rpy=c["imu_rpy"].copy(),
                                base_height=float(c["base_height"][0]), extra=extra)
        return self._last

    def peek(self) -> RobotState | None:
        return self._last


class ProcessCamera:
    """Camera over the simulator process's frame ring: the oldest frame not yet handed out, never waiting
    (so `teleop record` needs no capture thread for it)."""
    never_blocks = True

    def __init__(self, sim: SimProcess, name: str = "egocentric"):
        self.sim, self.name = sim, name
        self.rate_hz = float(sim.spec.camera_rate_hz)
        self.width, self.height = sim.spec.camera_size
        self.dropped = 0
        self._next = 0

    def open(self) -> None:
        self._next = int(self.sim.layout.control[1])

    def close(self) -> None:
        pass

    def grab(self, now: float) -> CameraFrame | None:
        lay = self.sim.layout
        written = int(lay.control[1])
        if written <= self._next:
            return None
        if written - self._next > RING - 1:         # the slot being overwritten next is not safe to read
            self.dropped += written - self._next - (RING - 1)
            self._next = written - (RING - 1)
        slot = self._next % RING
        image, t = lay.frames[slot].copy(), float(lay.frame_t[slot])
        self._next += 1
        if int(lay.control[1]) - (self._next - 1) > RING - 1:     # overwritten while copied: torn, drop it
            self.dropped += 1
            return None
        return CameraFrame(t=t, camera=self.name, image=image)


class ExpertActionMapper:
    """Mapper for the MuJoCo world: the scripted expert (the operator) already produced an action row."""
    robot = "g1_dex3"

    def __init__(self, device: ProcessInput):
        self.device = device

    def step(self, inp: OperatorInput) -> RobotCommand:
        return RobotCommand(inp.t, self.device.expert_action(), frozenset({"expert"}))


if __name__ == "__main__":
    _child(SimSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(sys.argv[1]).items()}), _Stdout())


__all__ = ["SimSpec", "SimProcess", "ProcessInput", "ProcessRobot", "ProcessCamera", "ExpertActionMapper", "Seqlock",
           "RING"]
