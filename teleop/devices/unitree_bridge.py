"""Unitree G1 over DDS (`unitree_sdk2py` + `cyclonedds`), an optional extra.

State: `rt/lowstate` (LowState_, unitree_hg): 29 body motors in SDK order (= schemas G1_BODY order), IMU
rpy; Dex3-1 hand states from `rt/dex3/{left,right}/state` when those topics publish.
Commands: the 14 arm joints go out on `rt/lowcmd` as PD targets (arm gains below, as Unitree's own
teleop uses); legs and waist are NOT commanded here — they belong to the system-0 tracker (AMO), which
consumes the 8-DoF lower-body command: pass `lower_body_sink` to receive it every tick. Hands go out on
`rt/dex3/{left,right}/cmd`.

Hardware is absent in CI: the pure conversions (`robot_state_from_lowstate`, `arm_motor_targets`) are
tested; `open()` raises `DeviceUnavailable` naming the missing package or network interface.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from schemas.actions import PSI0_ACTION
from schemas.embodiments import G1_BODY
from teleop.streams import DeviceUnavailable, RobotCommand, RobotState

ARM_MOTORS = tuple(range(G1_BODY.slice("arms").start, G1_BODY.slice("arms").stop))   # 15..28
ARM_KP = np.array([80.0, 80.0, 40.0, 60.0, 40.0, 40.0, 40.0] * 2)
ARM_KD = np.array([3.0, 3.0, 1.5, 1.5, 1.5, 1.5, 1.5] * 2)
HAND_KP, HAND_KD = 1.5, 0.2


def arm_motor_targets(action: np.ndarray) -> list[tuple[int, float, float, float]]:
    """(36,) PSI0_ACTION -> [(motor index, q, kp, kd)] for the 14 arm motors."""
    q = np.asarray(action, np.float64)[PSI0_ACTION.slice("arms")]
    return [(m, float(q[i]), float(ARM_KP[i]), float(ARM_KD[i])) for i, m in enumerate(ARM_MOTORS)]


def robot_state_from_lowstate(t: float, motor_q, motor_dq, imu_rpy, hand_q: np.ndarray | None = None,
                              base_height: float = float("nan")) -> RobotState:
    """LowState fields (>= 29 motors) -> RobotState. The base height is not measured by the robot (NaN unless
    an estimator supplies it)."""
    q = np.asarray(motor_q, np.float64)[: G1_BODY.size]
    dq = np.asarray(motor_dq, np.float64)[: G1_BODY.size]
    if q.shape != (G1_BODY.size,):
        raise ValueError(f"lowstate has {q.shape[0]} motors, need {G1_BODY.size}")
    return RobotState(t=float(t), body_q=q, body_dq=dq, hand_q=np.zeros(14) if hand_q is None else np.asarray(hand_q, np.float64),
                      imu_rpy=np.asarray(imu_rpy, np.float64)[:3], base_height=base_height)


class UnitreeG1Bridge:
    """RobotBridge over DDS."""

    def __init__(self, interface: str = "eth0", domain: int = 0, hands: bool = True,
                 lower_body_sink: Callable[[np.ndarray], None] | None = None, name: str = "unitree-g1"):
        self.name = name
        self.interface = interface
        self.domain = domain
        self.hands = hands
        self.lower_body_sink = lower_body_sink
        self._lock = threading.Lock()
        self._low = None
        self._hand_q = np.zeros(14)

    def open(self) -> None:
        try:
            from unitree_sdk2py.core.channel import (ChannelFactoryInitialize, ChannelPublisher,  # noqa: PLC0415
                                                     ChannelSubscriber)
            from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowCmd_  # noqa: PLC0415
            from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_  # noqa: PLC0415
            from unitree_sdk2py.utils.crc import CRC  # noqa: PLC0415
        except ImportError as e:
            raise DeviceUnavailable("unitree: `unitree_sdk2py` (and `cyclonedds`) are not installed; install "
                                    "unitree_sdk2_python from github.com/unitreerobotics (needs CycloneDDS 0.10.x)") from e
        try:
            ChannelFactoryInitialize(self.domain, self.interface)
        except Exception as e:   # noqa: BLE001  (DDS raises plain exceptions for bad interfaces)
            raise DeviceUnavailable(f"unitree: DDS cannot start on interface {self.interface!r}: {e}") from e
        self._crc = CRC()
        self._cmd = unitree_hg_msg_dds__LowCmd_()
        self._pub = ChannelPublisher("rt/lowcmd", LowCmd_)
        self._pub.Init()
        self._sub = ChannelSubscriber("rt/lowstate", LowState_)
        self._sub.Init(self._on_low, 10)
        if self.hands:
            try:
                from unitree_sdk2py.idl.unitree_hg.msg.dds_ import HandCmd_, HandState_  # noqa: PLC0415
                self._hand_pubs = {s: ChannelPublisher(f"rt/dex3/{s}/cmd", HandCmd_) for s in ("left", "right")}
                for p in self._hand_pubs.values():
                    p.Init()
                self._hand_subs = {s: ChannelSubscriber(f"rt/dex3/{s}/state", HandState_) for s in ("left", "right")}
                for side, sub in self._hand_subs.items():
                    sub.Init(lambda msg, side=side: self._on_hand(side, msg), 10)
            except ImportError:
                self.hands = False

    def _on_low(self, msg) -> None:
        with self._lock:
            self._low = msg

    def _on_hand(self, side: str, msg) -> None:
        q = [m.q for m in msg.motor_state[:7]]
        with self._lock:
            self._hand_q[slice(0, 7) if side == "left" else slice(7, 14)] = q

    def send(self, command: RobotCommand) -> None:
        if not hasattr(self, "_pub"):
            raise DeviceUnavailable("unitree: send() before open()")
        if not np.isfinite(command.action).all():
            return
        for motor, q, kp, kd in arm_motor_targets(command.action):
            mc = self._cmd.motor_cmd[motor]
            mc.mode, mc.q, mc.dq, mc.kp, mc.kd, mc.tau = 1, q, 0.0, kp, kd, 0.0
        self._cmd.crc = self._crc.Crc(self._cmd)
        self._pub.Write(self._cmd)
        if self.hands and hasattr(self, "_hand_pubs"):
            from unitree_sdk2py.idl.default import unitree_hg_msg_dds__HandCmd_  # noqa: PLC0415
            for side in ("left", "right"):
                cmd = unitree_hg_msg_dds__HandCmd_()
                for i, q in enumerate(command.action[PSI0_ACTION.slice(f"{side}_hand")]):
                    mc = cmd.motor_cmd[i]
                    mc.q, mc.dq, mc.kp, mc.kd, mc.tau = float(q), 0.0, HAND_KP, HAND_KD, 0.0
                self._hand_pubs[side].Write(cmd)
        if self.lower_body_sink is not None:
            self.lower_body_sink(np.asarray(command.action[PSI0_ACTION.slice("lower_body")], np.float64))

    def state(self, now: float) -> RobotState:
        with self._lock:
            low, hand = self._low, self._hand_q.copy()
        if low is None:
            raise DeviceUnavailable("unitree: no rt/lowstate received yet (robot off or wrong interface?)")
        return robot_state_from_lowstate(now, [m.q for m in low.motor_state], [m.dq for m in low.motor_state],
                                         low.imu_state.rpy, hand)

    def close(self) -> None:
        for attr in ("_sub",):
            sub = getattr(self, attr, None)
            if sub is not None:
                sub.Close()


__all__ = ["UnitreeG1Bridge", "arm_motor_targets", "robot_state_from_lowstate", "ARM_MOTORS"]
