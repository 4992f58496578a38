"""Unitree G1 over DDS (`unitree_sdk2py` + `cyclonedds`, an optional extra): one publisher of the full
low-level command.

Every motor of `rt/lowcmd` (LowCmd_, unitree_hg) is set on every message, with its gains and mode:
- legs (12): PD targets from system-0 (the lower-body policy, e.g. AMO: deploy/amo.py), with its gains;
  without a system-0 the legs are in damping (kp 0, kd kept): never stand the robot up without one;
- waist (3): from the policy (`waist_from="policy"`: the commanded torso yaw / roll / pitch, clamped to the
  waist's range) or from system-0's own waist outputs (`waist_from="system0"`: AMO's 15 outputs include it);
- arms (14): the policy's PSI0_ACTION arm targets with the body's arm gains (Unitree's own teleop values);
- every body motor `mode = 1` (enabled), `mode_pr = 0` (ankles in pitch/roll), `mode_machine` copied from the
  robot's LowState (the G1 rejects commands whose mode_machine differs), CRC32 as the SDK computes it.
Hands go out on their own topics (Dex3-1: `rt/dex3/{left,right}/cmd`), 7 motors each with the hand's gains.
`kp_scale` (deploy/safety.py: 1 normal, 0 damping) multiplies every position gain.

A publisher thread sends the latest command at `publish_hz` (default 250 Hz, the rate of Psi0's body motor
thread) and measures its own periods (`rate_report()`): the robot side checks the rate it promised.

Transports: `dds` (the SDK; real robot) or `loopback` (`udp://127.0.0.1:PORT`): the same packed messages
as UDP datagrams `topic\\0payload` to a peer on this machine, which answers with LowState datagrams
(`pack_lowstate`) - how the bridge is tested against a fake DDS peer (tests/test_unitree_bridge.py), and
a way to wire it to a simulator. The payload of `rt/lowcmd` is byte-for-byte the struct the SDK's CRC is
computed over (`LOWCMD_FORMAT`, 1004 bytes).
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from schemas import embodiments
from schemas.actions import LOWER_BODY_COMMAND, PSI0_ACTION, PSI0_HANDS
from schemas.embodiments import Embodiment
from teleop.streams import DeviceUnavailable, RobotCommand, RobotState

# ------------------------------------------------------------------------------------------ wire format
LOWCMD_MOTOR_SLOTS = 35
"""unitree_hg LowCmd_/LowState_ carry 35 motor slots (the G1 body uses the first 29)."""
LOWCMD_FORMAT = "<2B2x" + "B3x5fI" * LOWCMD_MOTOR_SLOTS + "5I"
"""LowCmd_ as the SDK packs it for its CRC: mode_pr, mode_machine, 35 x (mode, q, dq, tau, kp, kd, reserve),
reserve[4], crc. Little-endian, 4-byte aligned: 1004 bytes."""
LOWSTATE_FORMAT = "<B3x" + "2f" * LOWCMD_MOTOR_SLOTS + "6f"
"""The loopback transport's LowState: mode_machine, 35 x (q, dq), imu rpy, gyro."""
HAND_MOTOR_FORMAT = "B3x5fI"
MOTOR_ENABLE = 1
MODE_PR = 0


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return table


_TABLE = _crc_table()
_LOWCMD = struct.Struct(LOWCMD_FORMAT)


def unitree_crc32(packed: bytes) -> int:
    """The SDK's CRC over a packed message minus its last (crc) word: CRC-32/MPEG-2 (poly 0x04C11DB7, init
    0xFFFFFFFF, no reflection, no final xor) fed each little-endian 32-bit word most significant byte first."""
    n = (len(packed) // 4 - 1) * 4
    swapped = bytearray(n)                       # each word's bytes, most significant first
    for k in range(4):
        swapped[k::4] = packed[3 - k:n:4]
    crc, table = 0xFFFFFFFF, _TABLE
    for byte in swapped:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


@dataclass
class LowCmd:
    """One rt/lowcmd message (LowCmd_ fields; arrays over the 35 motor slots)."""

    mode_machine: int = 0
    mode_pr: int = MODE_PR
    mode: np.ndarray = field(default_factory=lambda: np.zeros(LOWCMD_MOTOR_SLOTS, np.uint8))
    q: np.ndarray = field(default_factory=lambda: np.zeros(LOWCMD_MOTOR_SLOTS, np.float32))
    dq: np.ndarray = field(default_factory=lambda: np.zeros(LOWCMD_MOTOR_SLOTS, np.float32))
    tau: np.ndarray = field(default_factory=lambda: np.zeros(LOWCMD_MOTOR_SLOTS, np.float32))
    kp: np.ndarray = field(default_factory=lambda: np.zeros(LOWCMD_MOTOR_SLOTS, np.float32))
    kd: np.ndarray = field(default_factory=lambda: np.zeros(LOWCMD_MOTOR_SLOTS, np.float32))

    def _values(self, crc: int) -> list:
        vals: list = [self.mode_pr, self.mode_machine]
        for i in range(LOWCMD_MOTOR_SLOTS):
            vals += [int(self.mode[i]), float(self.q[i]), float(self.dq[i]), float(self.tau[i]), float(self.kp[i]),
                     float(self.kd[i]), 0]
        return vals + [0, 0, 0, 0, crc]

    def pack(self) -> bytes:
        """The SDK struct with its CRC filled in."""
        body = bytearray(_LOWCMD.pack(*self._values(0)))
        struct.pack_into("<I", body, len(body) - 4, unitree_crc32(bytes(body)))
        return bytes(body)

    @classmethod
    def unpack(cls, data: bytes) -> "LowCmd":
        """Parse a packed message; ValueError if its CRC does not match."""
        vals = struct.unpack(LOWCMD_FORMAT, data)
        if unitree_crc32(data) != vals[-1]:
            raise ValueError("rt/lowcmd CRC mismatch")
        m = np.array(vals[2: 2 + 7 * LOWCMD_MOTOR_SLOTS], dtype=np.float64).reshape(LOWCMD_MOTOR_SLOTS, 7)
        return cls(mode_machine=vals[1], mode_pr=vals[0], mode=m[:, 0].astype(np.uint8), q=m[:, 1].astype(np.float32),
                   dq=m[:, 2].astype(np.float32), tau=m[:, 3].astype(np.float32), kp=m[:, 4].astype(np.float32),
                   kd=m[:, 5].astype(np.float32))


def pack_hand_cmd(q: np.ndarray, kp: float, kd: float) -> bytes:
    """A hand command (HandCmd_: a sequence of motor commands) for the loopback transport."""
    vals: list = []
    for v in np.asarray(q, np.float64):
        vals += [MOTOR_ENABLE, float(v), 0.0, 0.0, float(kp), float(kd), 0]
    return struct.pack("<I" + HAND_MOTOR_FORMAT * len(q), len(q), *vals)


def unpack_hand_cmd(data: bytes) -> np.ndarray:
    """(motors, 7): mode, q, dq, tau, kp, kd, reserve."""
    (n,) = struct.unpack_from("<I", data)
    return np.array(struct.unpack_from("<" + HAND_MOTOR_FORMAT * n, data, 4), np.float64).reshape(n, 7)


def pack_lowstate(mode_machine: int, q: np.ndarray, dq: np.ndarray, rpy: np.ndarray, gyro: np.ndarray) -> bytes:
    qs = np.zeros(LOWCMD_MOTOR_SLOTS)
    dqs = np.zeros(LOWCMD_MOTOR_SLOTS)
    qs[: len(q)], dqs[: len(dq)] = q, dq
    return struct.pack(LOWSTATE_FORMAT, mode_machine, *np.stack([qs, dqs], 1).ravel().tolist(),
                       *np.asarray(rpy, float).tolist(), *np.asarray(gyro, float).tolist())


def unpack_lowstate(data: bytes) -> dict:
    vals = struct.unpack(LOWSTATE_FORMAT, data)
    m = np.array(vals[1: 1 + 2 * LOWCMD_MOTOR_SLOTS]).reshape(LOWCMD_MOTOR_SLOTS, 2)
    return {"mode_machine": int(vals[0]), "q": m[:, 0], "dq": m[:, 1], "rpy": np.array(vals[-6:-3]),
            "gyro": np.array(vals[-3:])}


# ------------------------------------------------------------------------------------------ composition
def arm_motors(robot: str | Embodiment | None = None) -> tuple[int, ...]:
    """SDK motor indices of both arms, left then right (G1: 15..28)."""
    arms = embodiments.get(robot).body.joints.slice("arms")
    return tuple(range(arms.start, arms.stop))


ARM_MOTORS = arm_motors()
"""The default embodiment's arm motors."""


def arm_motor_targets(action: np.ndarray,
                      robot: str | Embodiment | None = None) -> list[tuple[int, float, float, float]]:
    """A PSI0_ACTION row -> [(motor index, q, kp, kd)] for the arm motors, with the body's arm PD gains."""
    body = embodiments.get(robot).body
    if body.arm_kp is None or body.arm_kd is None:
        raise DeviceUnavailable(f"unitree: no arm PD gains for the {body.title} body")
    q = np.asarray(action, np.float64)[PSI0_ACTION.slice("arms")]
    return [(m, float(q[i]), float(body.arm_kp[i]), float(body.arm_kd[i])) for i, m in enumerate(arm_motors(robot))]


def waist_from_command(action: np.ndarray, robot: str | Embodiment | None = None) -> np.ndarray:
    """The policy's torso yaw / roll / pitch (lower-body command) as waist joint targets (yaw, roll, pitch),
    clamped to the waist's range."""
    body = embodiments.get(robot).body.joints
    waist = body.slice("waist")
    lower = np.asarray(action, np.float64)[PSI0_ACTION.slice("lower_body")]
    rpy = {n: lower[LOWER_BODY_COMMAND.index(n)] for n in ("torso_roll", "torso_pitch", "torso_yaw")}
    want = np.array([rpy["torso_yaw"], rpy["torso_roll"], rpy["torso_pitch"]])
    low, high = (np.asarray(b)[waist] for b in body.bounds())
    return np.clip(want, low, high)


def compose_lowcmd(action: np.ndarray, leg_waist_q: np.ndarray | None, leg_waist_kp: np.ndarray,
                   leg_waist_kd: np.ndarray, mode_machine: int, kp_scale: float = 1.0, waist_from: str = "policy",
                   robot: str | Embodiment | None = None) -> LowCmd:
    """The full rt/lowcmd for one instant (see the module doc). `leg_waist_q`: system-0's 15 targets (legs +
    waist, SDK order) or None (legs damped); gains: system-0's for legs and waist, the body's for arms."""
    if waist_from not in ("policy", "system0"):
        raise ValueError("waist_from must be 'policy' or 'system0'")
    body = embodiments.get(robot).body.joints
    legs, waist = body.slice("legs"), body.slice("waist")
    lw = slice(legs.start, waist.stop)
    cmd = LowCmd(mode_machine=int(mode_machine))
    cmd.mode[: body.size] = MOTOR_ENABLE
    kp = np.asarray(leg_waist_kp, np.float64)
    kd = np.asarray(leg_waist_kd, np.float64)
    if leg_waist_q is not None:
        cmd.q[lw] = np.asarray(leg_waist_q, np.float64)
        cmd.kp[lw] = kp
    cmd.kd[lw] = kd                                       # no system-0: kp stays 0 = damping
    if waist_from == "policy":
        cmd.q[waist] = waist_from_command(action, robot)
        cmd.kp[waist] = kp[waist.start - legs.start:]
    for motor, q, akp, akd in arm_motor_targets(action, robot):
        cmd.q[motor], cmd.kp[motor], cmd.kd[motor] = q, akp, akd
    cmd.kp *= float(np.clip(kp_scale, 0.0, 1.0))
    return cmd


def hand_targets(action: np.ndarray, side: str, robot: str | Embodiment | None = None) -> np.ndarray:
    """A PSI0_ACTION row -> the hand's native motor targets for one side."""
    return embodiments.get(robot).hand.from_slots(np.asarray(action, np.float64)[PSI0_ACTION.slice(f"{side}_hand")])


def robot_state_from_lowstate(t: float, motor_q, motor_dq, imu_rpy, hand_q: np.ndarray | None = None,
                              base_height: float = float("nan"), robot: str | Embodiment | None = None) -> RobotState:
    """LowState fields (>= the body's motors) -> RobotState. The base height is not measured by the robot (NaN
    unless an estimator supplies it)."""
    body = embodiments.get(robot).body.joints
    q = np.asarray(motor_q, np.float64)[: body.size]
    dq = np.asarray(motor_dq, np.float64)[: body.size]
    if q.shape != (body.size,):
        raise ValueError(f"lowstate has {q.shape[0]} motors, need {body.size}")
    hands = np.zeros(PSI0_HANDS.size) if hand_q is None else np.asarray(hand_q, np.float64)
    return RobotState(t=float(t), body_q=q, body_dq=dq, hand_q=hands, imu_rpy=np.asarray(imu_rpy, np.float64)[:3],
                      base_height=base_height)


# ------------------------------------------------------------------------------------------ transports
class LoopbackTransport:
    """UDP datagrams `topic\\0payload` to a peer on 127.0.0.1 (tests, simulators); LowState comes back the
    same way on `rt/lowstate`."""

    def __init__(self, peer_port: int):
        self.peer = ("127.0.0.1", int(peer_port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self._on_state: Callable[[dict], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, on_state: Callable[[dict], None]) -> None:
        self._on_state = on_state
        self._thread = threading.Thread(target=self._listen, name="unitree-loopback-rx", daemon=True)
        self._thread.start()
        self.publish("hello", b"")                       # the peer learns our address

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            topic, _, payload = data.partition(b"\0")
            if topic == b"rt/lowstate" and self._on_state is not None:
                self._on_state(unpack_lowstate(payload))

    def publish(self, topic: str, payload: bytes) -> None:
        self.sock.sendto(topic.encode() + b"\0" + payload, self.peer)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        self.sock.close()


class SdkTransport:
    """unitree_sdk2py publishers / subscribers (the real robot)."""

    def __init__(self, interface: str, domain: int, hand_topics: dict[str, str] | None):
        self.interface, self.domain, self.hand_topics = interface, domain, hand_topics or {}

    def open(self, on_state: Callable[[dict], None]) -> None:
        try:
            from unitree_sdk2py.core.channel import (ChannelFactoryInitialize, ChannelPublisher,  # noqa: PLC0415
                                                     ChannelSubscriber)
            from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowCmd_  # noqa: PLC0415
            from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_  # noqa: PLC0415
        except ImportError as e:
            raise DeviceUnavailable("unitree: `unitree_sdk2py` (and `cyclonedds`) are not installed; install "
                                    "unitree_sdk2_python from github.com/unitreerobotics (needs CycloneDDS 0.10.x)") from e
        try:
            ChannelFactoryInitialize(self.domain, self.interface)
        except Exception as e:   # noqa: BLE001  (DDS raises plain exceptions for bad interfaces)
            raise DeviceUnavailable(f"unitree: DDS cannot start on interface {self.interface!r}: {e}") from e
        self._msg = unitree_hg_msg_dds__LowCmd_()
        self._pub = ChannelPublisher("rt/lowcmd", LowCmd_)
        self._pub.Init()

        def state(msg) -> None:
            on_state({"mode_machine": int(msg.mode_machine), "q": np.array([m.q for m in msg.motor_state]),
                      "dq": np.array([m.dq for m in msg.motor_state]), "rpy": np.array(msg.imu_state.rpy),
                      "gyro": np.array(msg.imu_state.gyroscope)})
        self._sub = ChannelSubscriber("rt/lowstate", LowState_)
        self._sub.Init(state, 10)
        self._hand_pubs = {}
        if self.hand_topics:
            from unitree_sdk2py.idl.unitree_hg.msg.dds_ import HandCmd_  # noqa: PLC0415
            for side, topic in self.hand_topics.items():
                self._hand_pubs[topic] = ChannelPublisher(topic, HandCmd_)
                self._hand_pubs[topic].Init()

    def publish_lowcmd(self, cmd: LowCmd) -> None:
        m = self._msg
        m.mode_pr, m.mode_machine = cmd.mode_pr, cmd.mode_machine
        for i in range(LOWCMD_MOTOR_SLOTS):
            mc = m.motor_cmd[i]
            mc.mode, mc.q, mc.dq, mc.tau, mc.kp, mc.kd = (int(cmd.mode[i]), float(cmd.q[i]), float(cmd.dq[i]),
                                                          float(cmd.tau[i]), float(cmd.kp[i]), float(cmd.kd[i]))
        m.crc = struct.unpack_from("<I", cmd.pack(), struct.calcsize(LOWCMD_FORMAT) - 4)[0]
        self._pub.Write(m)

    def publish_hand(self, topic: str, q: np.ndarray, kp: float, kd: float) -> None:
        from unitree_sdk2py.idl.default import unitree_hg_msg_dds__HandCmd_  # noqa: PLC0415
        msg = unitree_hg_msg_dds__HandCmd_()
        for i, v in enumerate(q):
            mc = msg.motor_cmd[i]
            mc.mode, mc.q, mc.dq, mc.kp, mc.kd, mc.tau = MOTOR_ENABLE, float(v), 0.0, kp, kd, 0.0
        self._hand_pubs[topic].Write(msg)

    def close(self) -> None:
        sub = getattr(self, "_sub", None)
        if sub is not None:
            sub.Close()


# ------------------------------------------------------------------------------------------ the bridge
System0 = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(lower-body command (8), body q, body dq, imu rpy, gyro) -> 15 leg + waist PD targets (deploy.amo.AmoRunner.targets)."""


class UnitreeG1Bridge:
    """RobotBridge over DDS (or the loopback transport) publishing the full low-level command."""

    def __init__(self, interface: str = "eth0", domain: int = 0, hands: bool = True,
                 lower_body_sink: Callable[[np.ndarray], None] | None = None, name: str = "unitree-g1",
                 robot: str | Embodiment | None = None, transport: str = "dds", system0: System0 | None = None,
                 leg_waist_kp: np.ndarray | None = None, leg_waist_kd: np.ndarray | None = None,
                 waist_from: str = "policy", publish_hz: float = 250.0, system0_hz: float = 50.0):
        self.name = name
        self.embodiment = embodiments.get(robot)
        if self.embodiment.body.family != "g1":
            raise DeviceUnavailable(f"unitree-g1: {self.embodiment.name} is not a G1 configuration")
        self.interface, self.domain, self.transport_spec = interface, domain, transport
        self.dds = self.embodiment.hand.dds
        self.hands = hands and self.dds is not None     # no DDS table for this hand: arms only
        self.lower_body_sink = lower_body_sink
        self.system0, self.waist_from = system0, waist_from
        n_lw = self.embodiment.body.joints.slice("waist").stop
        self.leg_waist_kp = np.zeros(n_lw) if leg_waist_kp is None else np.asarray(leg_waist_kp, np.float64)
        self.leg_waist_kd = np.zeros(n_lw) if leg_waist_kd is None else np.asarray(leg_waist_kd, np.float64)
        if system0 is not None and leg_waist_kp is None:
            raise ValueError("a system-0 needs its leg/waist gains (leg_waist_kp, leg_waist_kd)")
        self.publish_hz, self.system0_hz = publish_hz, system0_hz
        self.kp_scale = 1.0
        self._lock = threading.Lock()
        self._low: dict | None = None
        self._hand_q = np.zeros(PSI0_HANDS.size)
        self._action: np.ndarray | None = None
        self._leg_waist_q: np.ndarray | None = None
        self._sent: list[float] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._transport = None
        self._hand_cache: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        hand_topics = {s: self.dds.cmd_topic.format(side=s) for s in ("left", "right")} if self.hands else None
        if self.transport_spec == "dds":
            self._transport = SdkTransport(self.interface, self.domain, hand_topics)
        elif self.transport_spec.startswith("udp://127.0.0.1:"):
            self._transport = LoopbackTransport(int(self.transport_spec.rsplit(":", 1)[1]))
        else:
            raise DeviceUnavailable(f"unitree: unknown transport {self.transport_spec!r} (dds or udp://127.0.0.1:PORT)")
        self._transport.open(self._on_low)
        self._stop.clear()
        self._threads = [threading.Thread(target=self._publish_loop, name="unitree-lowcmd", daemon=True)]
        if self.system0 is not None:
            self._threads.append(threading.Thread(target=self._system0_loop, name="unitree-system0", daemon=True))
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        if self._transport is not None:
            self._transport.close()

    def _on_low(self, msg: dict) -> None:
        with self._lock:
            self._low = msg

    # ------------------------------------------------------------------ RobotBridge
    def send(self, command: RobotCommand, kp_scale: float | None = None) -> None:
        """Set the policy's latest action (and optionally the gain scale); the threads publish it."""
        if self._transport is None:
            raise DeviceUnavailable("unitree: send() before open()")
        if not np.isfinite(command.action).all():
            return
        with self._lock:
            self._action = np.asarray(command.action, np.float64).copy()
            if kp_scale is not None:
                self.kp_scale = float(kp_scale)
        if self.lower_body_sink is not None:
            self.lower_body_sink(self._action[PSI0_ACTION.slice("lower_body")])

    def state(self, now: float) -> RobotState:
        with self._lock:
            low, hand = self._low, self._hand_q.copy()
        if low is None:
            raise DeviceUnavailable("unitree: no rt/lowstate received yet (robot off or wrong interface?)")
        return robot_state_from_lowstate(now, low["q"], low["dq"], low["rpy"], hand, robot=self.embodiment)

    def peek(self) -> RobotState | None:
        try:
            return self.state(time.monotonic())
        except DeviceUnavailable:
            return None

    # ------------------------------------------------------------------ threads
    def _system0_loop(self) -> None:
        period = 1.0 / self.system0_hz
        next_t = time.monotonic()
        body = self.embodiment.body.joints
        while not self._stop.is_set():
            with self._lock:
                low, action = self._low, self._action
            if low is not None and action is not None:
                q = self.system0(action[PSI0_ACTION.slice("lower_body")], low["q"][: body.size],
                                 low["dq"][: body.size], low["rpy"], low["gyro"])
                with self._lock:
                    self._leg_waist_q = np.asarray(q, np.float64)
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))

    def current_lowcmd(self) -> LowCmd | None:
        """The command the publisher sends now (None until a LowState and an action have arrived)."""
        with self._lock:
            low, action, lw, scale = self._low, self._action, self._leg_waist_q, self.kp_scale
        if low is None or action is None:
            return None
        return compose_lowcmd(action, lw, self.leg_waist_kp, self.leg_waist_kd, low["mode_machine"], scale,
                              self.waist_from if lw is not None or self.waist_from == "policy" else "policy",
                              self.embodiment)

    def _inputs_key(self) -> tuple:
        with self._lock:
            low, action, lw = self._low, self._action, self._leg_waist_q
            return (None if low is None else low["mode_machine"], None if action is None else id(action),
                    None if lw is None else id(lw), self.kp_scale)

    def _publish_loop(self) -> None:
        """Re-composes only when an input changed (actions ~30 Hz, system-0 50 Hz); re-sends at publish_hz."""
        period = 1.0 / self.publish_hz
        next_t = time.monotonic()
        key, cmd, packed = None, None, b""
        while not self._stop.is_set():
            now_key = self._inputs_key()
            if now_key != key:
                key, cmd = now_key, self.current_lowcmd()
                packed = cmd.pack() if cmd is not None and not isinstance(self._transport, SdkTransport) else b""
                self._hand_cache = self._hand_messages() if cmd is not None else {}
            if cmd is not None:
                t = self._transport
                if isinstance(t, SdkTransport):
                    t.publish_lowcmd(cmd)
                else:
                    t.publish("rt/lowcmd", packed)
                self._publish_hands()
                self._sent.append(time.monotonic())
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -period:                      # fell behind by more than a period: re-anchor, no burst
                next_t = time.monotonic()
            time.sleep(max(0.0, delay))

    def _hand_messages(self) -> dict[str, np.ndarray]:
        if not self.hands:
            return {}
        with self._lock:
            action = self._action
        return {self.dds.cmd_topic.format(side=side): hand_targets(action, side, self.embodiment)
                for side in ("left", "right")}

    def _publish_hands(self) -> None:
        for topic, q in self._hand_cache.items():
            if isinstance(self._transport, SdkTransport):
                self._transport.publish_hand(topic, q, self.dds.kp, self.dds.kd)
            else:
                self._transport.publish(topic, pack_hand_cmd(q, self.dds.kp, self.dds.kd))

    def rate_report(self) -> dict:
        """The publisher's achieved rate: messages, mean Hz, median / p99 / max period (ms) vs the target."""
        t = np.asarray(self._sent)
        if len(t) < 3:
            return {"messages": int(len(t)), "target_hz": self.publish_hz}
        p = np.diff(t) * 1e3
        return {"messages": int(len(t)), "target_hz": self.publish_hz, "mean_hz": float((len(t) - 1) / (t[-1] - t[0])),
                "period_ms_p50": float(np.median(p)), "period_ms_p99": float(np.percentile(p, 99)),
                "period_ms_max": float(p.max())}


__all__ = ["UnitreeG1Bridge", "LowCmd", "compose_lowcmd", "unitree_crc32", "arm_motor_targets", "arm_motors",
           "robot_state_from_lowstate", "waist_from_command", "hand_targets", "pack_lowstate", "unpack_lowstate",
           "pack_hand_cmd", "unpack_hand_cmd", "LoopbackTransport", "SdkTransport", "ARM_MOTORS",
           "LOWCMD_FORMAT", "LOWCMD_MOTOR_SLOTS"]
