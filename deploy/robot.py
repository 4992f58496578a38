"""`psi0 robot`: the robot-side client. RTC runs here, next to execution; the policy server is across the link.

    psi0 serve --run runs/s3 --host 0.0.0.0 --token T          # on the GPU box
    psi0 robot --server ws://gpu-box:8765/ws --token T --robot sim --task bimanual_lift
    psi0 robot --server ws://gpu-box:8765/ws --token T --robot unitree-g1 --interface eth0 --system0 amo_jit.pt

Each control tick (the checkpoint's dataset rate, deadline-scheduled): the RTC engine gives the action for
this tick from the current chunk and, every `execute_horizon` ticks, sends the next request with the
committed prefix - the actions the robot will execute while the request is in flight. The delay it
predicts is measured on this machine's clock from request to reply, so network time and jitter are in it;
a late reply is used from the row of the current tick, a missing one never stalls execution. If the server
is lost the supervisor holds, then damps (deploy/safety.py); `--estop-file PATH` (touch it) is an e-stop.

Robots: `sim` (the MuJoCo benchmark paced to the wall clock, 50 Hz physics under the engine's ticks) and
`unitree-g1` (teleop/devices/unitree_bridge.py: one low-level publisher - legs from system-0, waist and
arms from the policy, hands on their topics, gains and mode set - at a rate-checked 250 Hz).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from deploy.bundle import ObservationSchema
from deploy.client import LinkLost, PolicyClient, RemoteChunkPolicy, ServerError
from deploy.rtc import InferenceRequest, RTCEngine, ThreadedRunner
from deploy.safety import LinkState, SafeCommand, SafetyConfig, Supervisor
from schemas.actions import PSI0_ACTION

log = logging.getLogger("psi0.deploy.robot")


class RobotIO(Protocol):
    """One robot as the client loop sees it."""

    def observe(self) -> dict[str, Any]: ...             # schema-conforming observation (control thread)
    def measured_upper(self) -> np.ndarray: ...          # PSI0_ACTION upper body (hands + arms), measured
    def apply(self, cmd: SafeCommand, tick: int) -> None: ...   # execute until the next tick
    def status(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class SimRobotIO:
    """The MuJoCo benchmark as a robot in real time."""

    def __init__(self, schema: ObservationSchema, task: str, seed: int, grasp_assist: bool = True):
        from deploy.simrobot import SimObservations  # noqa: PLC0415
        from sim.env import EnvConfig, SimEnv  # noqa: PLC0415
        self.schema = schema
        self.env = SimEnv(EnvConfig(camera=False, grasp_assist=grasp_assist))
        self.env.reset(task, seed)
        self._observe = SimObservations(schema)
        self.info: dict[str, Any] = {"success": False}

    def observe(self) -> dict[str, Any]:
        return self._observe(self.env)

    def measured_upper(self) -> np.ndarray:
        s = self.env.state()
        from schemas.actions import PSI0_STATE  # noqa: PLC0415
        out = np.zeros(PSI0_ACTION.slice("upper_body").stop)
        out[PSI0_ACTION.slice("hands")] = s[PSI0_STATE.slice("hands")]
        out[PSI0_ACTION.slice("arms")] = s[PSI0_STATE.slice("arms")]
        return out

    def apply(self, cmd: SafeCommand, tick: int) -> None:
        """Step 50 Hz physics up to the next tick's time. The simulator's actuators have fixed gains, so
        `kp_scale` is realized by the targets themselves (DAMP blends them onto the measured joints)."""
        until = (tick + 1) / self.schema.fps
        while self.env.t + 1e-9 < until:
            _, _, self.info = self.env.step(np.asarray(cmd.action, np.float64))

    def status(self) -> dict[str, Any]:
        return {"success": bool(self.info.get("success")), "sim_t": round(self.env.t, 3), "task": self.env.task.template}

    def close(self) -> None:
        self.env.close()


class RecordingRunner(ThreadedRunner):
    """ThreadedRunner that keeps every request (start tick, delay, committed prefix): what the robot
    promised the server it would execute, for the report and the tests."""

    def __init__(self):
        super().__init__()
        self.requests: list[InferenceRequest] = []

    def submit(self, policy, request: InferenceRequest) -> None:
        self.requests.append(request)
        super().submit(policy, request)

    def close(self) -> None:
        """Do not wait for a request in flight: after a lost link it only ends at the client's timeout."""
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class RobotReport:
    ticks: int = 0
    executed: list[np.ndarray] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    kp_scale: list[float] = field(default_factory=list)
    overruns: int = 0
    link_error: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    transitions: list[tuple[int, str]] = field(default_factory=list)
    requests: list[InferenceRequest] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        rtt = np.asarray(self.round_trip_ms)
        return {"ticks": self.ticks, "overruns": self.overruns, "link_error": self.link_error,
                "final_state": self.states[-1] if self.states else None, "transitions": self.transitions,
                "round_trip_ms_p50": float(np.percentile(rtt, 50)) if rtt.size else None,
                "round_trip_ms_p99": float(np.percentile(rtt, 99)) if rtt.size else None, **self.engine}


def run_robot(io: RobotIO, policy: RemoteChunkPolicy, schema: ObservationSchema, ticks: int,
              latency_guess_s: float = 0.16, safety: SafetyConfig = SafetyConfig(),
              estop: Callable[[], bool] = lambda: False, done: Callable[[], bool] = lambda: False,
              use_prefix: bool = True) -> RobotReport:
    """The control loop (see module doc). Returns what happened, tick by tick."""
    from deploy.simrobot import rtc_config  # noqa: PLC0415
    runner = RecordingRunner()
    engine = RTCEngine(policy, rtc_config(schema, latency_guess_s, use_prefix), runner=runner)
    sup = Supervisor(safety, schema.fps)
    report = RobotReport()
    engine.start(io.observe)               # synchronous first chunk: a dead server fails here, before moving
    period = 1.0 / schema.fps
    next_t = time.monotonic()
    try:
        for k in range(ticks):
            now = time.monotonic()
            if now < next_t:
                time.sleep(next_t - now)
            elif now > next_t + period:
                report.overruns += 1
                next_t = now
            if estop():
                cmd = sup.estop(io.measured_upper())
            elif sup.state == LinkState.RUNNING:
                try:
                    cmd = sup.ok(engine.tick(io.observe))
                except (LinkLost, ServerError) as e:
                    report.link_error = f"{type(e).__name__}: {e}"
                    log.warning("policy link lost at tick %d: %s -> hold, then damp", k, e)
                    cmd = sup.lost(io.measured_upper())
            else:
                cmd = sup.lost(io.measured_upper())
            io.apply(cmd, k)
            report.executed.append(np.asarray(cmd.action, np.float32))
            report.states.append(cmd.state.value)
            report.kp_scale.append(cmd.kp_scale)
            report.ticks += 1
            next_t += period
            if done():
                break
    finally:
        engine.close()
    report.engine = engine.stats.summary()
    report.transitions = list(sup.transitions)
    report.requests = list(runner.requests)
    report.round_trip_ms = [i["round_trip_ms"] for i in policy.infos]
    return report


EPILOG = """examples:
  psi0 robot --server ws://127.0.0.1:8765/ws --robot sim --task bimanual_lift --seconds 15
  psi0 robot --server ws://gpu:8765/ws --token "$T" --robot unitree-g1 --interface eth0 \\
        --system0 ~/amo/amo_jit.pt --estop-file /tmp/estop      # `touch /tmp/estop` = e-stop

Last stdout line: JSON with ticks, overruns, link state transitions, latency / round trip p50 and p99,
late chunks, underruns, and (sim) success.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="psi0 robot", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="policy server websocket URL (ws://host:port/ws)")
    ap.add_argument("--token", default=os.environ.get("PSI0_SERVE_TOKEN"), help="the server's shared token")
    ap.add_argument("--robot", choices=("sim", "unitree-g1"), default="sim")
    ap.add_argument("--task", default="bimanual_lift", help="sim: task template")
    ap.add_argument("--seed", type=int, default=1000, help="sim: episode seed")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to run (default 20 s)")
    ap.add_argument("--latency-ms", type=float, default=160.0, help="first delay guess before measurements")
    ap.add_argument("--hold-s", type=float, default=SafetyConfig.hold_s, help="hold after server loss (s)")
    ap.add_argument("--damp-s", type=float, default=SafetyConfig.damp_ramp_s, help="then ramp to damping (s)")
    ap.add_argument("--estop-file", type=Path, help="e-stop when this file exists")
    ap.add_argument("--timeout-s", type=float, default=2.0, help="no reply within this = server lost")
    ap.add_argument("--interface", default="eth0", help="unitree-g1: DDS network interface")
    ap.add_argument("--system0", type=Path, help="unitree-g1: TorchScript lower-body policy (AMO contract)")
    ap.add_argument("--adapter", type=Path, help="unitree-g1: AMO adapter TorchScript (+ --adapter-norm)")
    ap.add_argument("--adapter-norm", type=Path, help="unitree-g1: AMO adapter_norm_stats.pt")
    ap.add_argument("--camera", default=None, help="unitree-g1: camera for the policy (OpenCV index, URL or file)")
    ap.add_argument("--no-rtc", action="store_true", help="naive chunking (no committed prefix)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    client = PolicyClient(args.server, token=args.token, timeout_s=args.timeout_s)
    try:
        meta = client.connect()
    except (LinkLost, ServerError) as e:
        print(f"psi0 robot: error: {e}", file=sys.stderr)
        return 2
    schema = ObservationSchema.from_json(meta["schema"])
    if args.robot == "sim":
        io: Any = SimRobotIO(schema, args.task, args.seed)
        done = lambda: bool(io.info.get("success"))  # noqa: E731
    else:
        from deploy.unitree import UnitreeRobotIO  # noqa: PLC0415
        from teleop.devices.cameras import OpenCVCamera  # noqa: PLC0415
        from teleop.streams import DeviceUnavailable  # noqa: PLC0415
        camera = None
        if args.camera is not None:
            camera = OpenCVCamera(int(args.camera) if args.camera.isdigit() else args.camera, rate_hz=schema.fps)
            camera.open()
        try:
            io = UnitreeRobotIO.open(schema, interface=args.interface, system0=args.system0, adapter=args.adapter,
                                     adapter_norm=args.adapter_norm, camera=camera)
        except (DeviceUnavailable, ValueError) as e:
            print(f"psi0 robot: error: {e}", file=sys.stderr)
            return 2
        done = lambda: False  # noqa: E731
    estop = (lambda: args.estop_file.exists()) if args.estop_file else (lambda: False)
    try:
        report = run_robot(io, RemoteChunkPolicy(client), schema, ticks=int(math.ceil(args.seconds * schema.fps)),
                           latency_guess_s=args.latency_ms / 1e3,
                           safety=SafetyConfig(hold_s=args.hold_s, damp_ramp_s=args.damp_s), estop=estop, done=done,
                           use_prefix=not args.no_rtc)
    except (LinkLost, ServerError) as e:
        print(f"psi0 robot: error before the first action: {e}", file=sys.stderr)
        return 2
    finally:
        io.close()
    print(json.dumps({**report.summary(), **io.status()}, sort_keys=True, default=str))
    return 0
