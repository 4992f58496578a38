"""The Unitree bridge publishes the full low-level command, checked by a fake DDS peer on loopback.

The peer plays the robot: it sends LowState (with a `mode_machine` of its own) and receives every datagram
the bridge publishes, parsing rt/lowcmd with the SDK's struct layout and CRC."""
from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pytest

from schemas.actions import LOWER_BODY_COMMAND, PSI0_ACTION
from schemas.embodiments import DEX3, G1_BODY
from teleop.devices.unitree_bridge import (LOWCMD_FORMAT, LowCmd, UnitreeG1Bridge, compose_lowcmd, pack_lowstate,
                                           unitree_crc32, unpack_hand_cmd)
from teleop.streams import RobotCommand


def _sdk_reference_crc(packed: bytes) -> int:
    """The SDK's bit-serial algorithm (crc32_core over little-endian words), written out as a reference."""
    words = struct.unpack("<" + "I" * (len(packed) // 4 - 1), packed[: (len(packed) // 4 - 1) * 4])
    crc, poly = 0xFFFFFFFF, 0x04C11DB7
    for word in words:
        bit = 1 << 31
        for _ in range(32):
            top = crc & 0x80000000
            crc = (crc << 1) & 0xFFFFFFFF
            if top:
                crc ^= poly
            if word & bit:
                crc ^= poly
            bit >>= 1
    return crc


def test_crc_matches_the_sdk_algorithm_and_crc32_mpeg2():
    rng = np.random.default_rng(0)
    for _ in range(3):
        packed = rng.integers(0, 256, struct.calcsize(LOWCMD_FORMAT), dtype=np.uint8).tobytes()
        assert unitree_crc32(packed) == _sdk_reference_crc(packed)
    assert struct.calcsize(LOWCMD_FORMAT) == 1004            # the SDK's "size 1004"
    cmd = LowCmd(mode_machine=5)
    cmd.q[3] = 0.25
    back = LowCmd.unpack(cmd.pack())
    assert back.mode_machine == 5 and back.q[3] == pytest.approx(0.25)
    corrupt = bytearray(cmd.pack())
    corrupt[20] ^= 1
    with pytest.raises(ValueError, match="CRC"):
        LowCmd.unpack(bytes(corrupt))


def _action() -> np.ndarray:
    a = np.zeros(PSI0_ACTION.size)
    arms = PSI0_ACTION.slice("arms")
    a[arms] = np.linspace(-0.5, 0.5, arms.stop - arms.start)
    a[PSI0_ACTION.slice("hands")] = 0.1
    lower = PSI0_ACTION.slice("lower_body").start
    a[lower + LOWER_BODY_COMMAND.index("torso_yaw")] = 0.3
    a[lower + LOWER_BODY_COMMAND.index("torso_pitch")] = 0.9           # beyond the waist's +-0.52: clamped
    a[lower + LOWER_BODY_COMMAND.index("torso_height")] = 0.75
    return a


def test_compose_sets_every_motor_gain_and_mode():
    lw_q = np.linspace(-0.2, 0.2, G1_BODY.slice("waist").stop)
    kp, kd = np.full(len(lw_q), 100.0), np.full(len(lw_q), 2.0)
    cmd = compose_lowcmd(_action(), lw_q, kp, kd, mode_machine=7)
    body = G1_BODY.size
    assert cmd.mode_machine == 7 and (cmd.mode[:body] == 1).all() and (cmd.mode[body:] == 0).all()
    legs, waist, arms = G1_BODY.slice("legs"), G1_BODY.slice("waist"), G1_BODY.slice("arms")
    np.testing.assert_allclose(cmd.q[legs], lw_q[legs], atol=1e-6)                       # legs from system-0
    np.testing.assert_allclose(cmd.q[waist], [0.3, 0.0, 0.52], atol=1e-6)               # waist from the policy
    np.testing.assert_allclose(cmd.q[arms], _action()[PSI0_ACTION.slice("arms")], atol=1e-6)
    assert (cmd.kp[:body] > 0).all() and (cmd.kd[:body] > 0).all()
    damped = compose_lowcmd(_action(), lw_q, kp, kd, mode_machine=7, kp_scale=0.0)
    assert (damped.kp == 0).all() and (damped.kd[:body] > 0).all()
    no_s0 = compose_lowcmd(_action(), None, kp, kd, mode_machine=7)
    assert (no_s0.kp[legs] == 0).all() and (no_s0.kd[legs] > 0).all()                 # legs damped, never stiff at 0
    s0_waist = compose_lowcmd(_action(), lw_q, kp, kd, mode_machine=7, waist_from="system0")
    np.testing.assert_allclose(s0_waist.q[waist], lw_q[waist], atol=1e-6)


class FakePeer:
    """The robot side of the loopback transport: LowState out at 500 Hz, every command in."""

    def __init__(self, mode_machine: int = 5):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.01)
        self.port = self.sock.getsockname()[1]
        self.mode_machine = mode_machine
        self.received: list[tuple[float, str, bytes]] = []
        self.client = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        q = np.zeros(G1_BODY.size)
        next_state = time.monotonic()
        deadline = time.monotonic() + 20                  # bounded: stops by itself
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data, addr = self.sock.recvfrom(65536)
                topic, _, payload = data.partition(b"\0")
                self.client = addr
                self.received.append((time.monotonic(), topic.decode(), payload))
            except socket.timeout:
                pass
            if self.client is not None and time.monotonic() >= next_state:
                self.sock.sendto(b"rt/lowstate\0" + pack_lowstate(self.mode_machine, q, q, np.zeros(3), np.zeros(3)),
                                 self.client)
                next_state += 0.002

    def __enter__(self) -> "FakePeer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


def test_bridge_publishes_full_lowcmd_and_hands_at_rate_to_a_fake_peer():
    from deploy.amo import AmoContract, AmoRunner, write_random_amo
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        paths = write_random_amo(d)
        runner = AmoRunner.load(paths["policy"], paths["adapter"], paths["adapter_norm"])
    c = AmoContract()
    n_lw = G1_BODY.slice("waist").stop
    with FakePeer(mode_machine=5) as peer:
        bridge = UnitreeG1Bridge(transport=f"udp://127.0.0.1:{peer.port}", system0=runner.targets,
                                 leg_waist_kp=c.kp[:n_lw], leg_waist_kd=c.kd[:n_lw], publish_hz=250.0)
        bridge.open()
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.5:
                bridge.send(RobotCommand(time.monotonic(), _action().astype(np.float32), frozenset()))
                time.sleep(1 / 30)
            rate = bridge.rate_report()
            state = bridge.state(time.monotonic())
        finally:
            bridge.close()
    lowcmds = [(t, LowCmd.unpack(p)) for t, topic, p in peer.received if topic == "rt/lowcmd"]
    hands = {topic: p for _, topic, p in peer.received if topic.startswith("rt/dex3/")}
    assert len(lowcmds) > 100 and state.body_q.shape == (G1_BODY.size,)
    last = lowcmds[-1][1]
    assert last.mode_machine == 5 and (last.mode[:G1_BODY.size] == 1).all()
    np.testing.assert_allclose(last.kp[G1_BODY.slice("legs")], c.kp[G1_BODY.slice("legs")], atol=1e-4)
    np.testing.assert_allclose(last.q[G1_BODY.slice("arms")], _action()[PSI0_ACTION.slice("arms")], atol=1e-6)
    assert np.isfinite(last.q).all() and not np.allclose(last.q[G1_BODY.slice("legs")], 0)   # system-0 drove them
    assert set(hands) == {"rt/dex3/left/cmd", "rt/dex3/right/cmd"}
    motors = unpack_hand_cmd(hands["rt/dex3/left/cmd"])
    assert motors.shape == (DEX3.dds.motors, 7) and motors[0, 4] == pytest.approx(DEX3.dds.kp)
    # rate: the publisher's own clock and what the peer received agree with 250 Hz
    assert rate["mean_hz"] == pytest.approx(250, rel=0.15), rate
    arrivals = np.array([t for t, _ in lowcmds])
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) == pytest.approx(250, rel=0.2)
