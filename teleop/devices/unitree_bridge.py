"""Unitree G1 over DDS (`unitree_sdk2py` + `cyclonedds`), an optional extra.

The joint tables come from the embodiment (`schemas.embodiments`, `robot=`): motor indices of the arms in
the body's SDK order, the arm PD gains Unitree's own teleop uses, and the hand's DDS topics and gains.
State: `rt/lowstate` (LowState_, unitree_hg): the body motors in SDK order (G1: 29), IMU rpy; hand
states from the hand's state topics (Dex3-1: `rt/dex3/{left,right}/state`) when they publish.
Commands: the arm joints go out on `rt/lowcmd` as PD targets; legs and waist are NOT commanded here —
they belong to the system-0 tracker (AMO), which consumes the 8-DoF lower-body command: pass
`lower_body_sink` to receive it every tick. Hands go out on the hand's command topics (Dex3-1:
`rt/dex3/{left,right}/cmd`); a hand without a DDS table in the project (Inspire) is not driven.

Hardware is absent in CI: the pure conversions (`robot_state_from_lowstate`, `arm_motor_targets`) are
tested; `open()` raises `DeviceUnavailable` naming the missing package or network interface.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from schemas import embodiments
from schemas.actions import PSI0_ACTION, PSI0_HANDS
from schemas.embodiments import Embodiment
from teleop.streams import DeviceUnavailable, RobotCommand, RobotState


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


class UnitreeG1Bridge:
    """RobotBridge over DDS."""

    def __init__(self, interface: str = "eth0", domain: int = 0, hands: bool = True,
                 lower_body_sink: Callable[[np.ndarray], None] | None = None, name: str = "unitree-g1",
                 robot: str | Embodiment | None = None):
        self.name = name
        self.embodiment = embodiments.get(robot)
        if self.embodiment.body.family != "g1":
            raise DeviceUnavailable(f"unitree-g1: {self.embodiment.name} is not a G1 configuration")
        self.interface = interface
        self.domain = domain
        self.dds = self.embodiment.hand.dds
        self.hands = hands and self.dds is not None     # no DDS table for this hand: arms only
        self.lower_body_sink = lower_body_sink
        self._lock = threading.Lock()
        self._low = None
        self._hand_q = np.zeros(PSI0_HANDS.size)

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
                self._hand_pubs = {s: ChannelPublisher(self.dds.cmd_topic.format(side=s), HandCmd_)
                                   for s in ("left", "right")}
                for p in self._hand_pubs.values():
                    p.Init()
                self._hand_subs = {s: ChannelSubscriber(self.dds.state_topic.format(side=s), HandState_)
                                   for s in ("left", "right")}
                for side, sub in self._hand_subs.items():
                    sub.Init(lambda msg, side=side: self._on_hand(side, msg), 10)
            except ImportError:
                self.hands = False

    def _on_low(self, msg) -> None:
        with self._lock:
            self._low = msg

    def _on_hand(self, side: str, msg) -> None:
        q = np.array([m.q for m in msg.motor_state[: self.dds.motors]])
        with self._lock:
            self._hand_q[PSI0_HANDS.slice(f"{side}_hand")] = self.embodiment.hand.to_slots(q)

    def send(self, command: RobotCommand) -> None:
        if not hasattr(self, "_pub"):
            raise DeviceUnavailable("unitree: send() before open()")
        if not np.isfinite(command.action).all():
            return
        for motor, q, kp, kd in arm_motor_targets(command.action, self.embodiment):
            mc = self._cmd.motor_cmd[motor]
            mc.mode, mc.q, mc.dq, mc.kp, mc.kd, mc.tau = 1, q, 0.0, kp, kd, 0.0
        self._cmd.crc = self._crc.Crc(self._cmd)
        self._pub.Write(self._cmd)
        if self.hands and hasattr(self, "_hand_pubs"):
            from unitree_sdk2py.idl.default import unitree_hg_msg_dds__HandCmd_  # noqa: PLC0415
            for side in ("left", "right"):
                cmd = unitree_hg_msg_dds__HandCmd_()
                native = self.embodiment.hand.from_slots(command.action[PSI0_ACTION.slice(f"{side}_hand")])
                for i, q in enumerate(native):
                    mc = cmd.motor_cmd[i]
                    mc.q, mc.dq, mc.kp, mc.kd, mc.tau = float(q), 0.0, self.dds.kp, self.dds.kd, 0.0
                self._hand_pubs[side].Write(cmd)
        if self.lower_body_sink is not None:
            self.lower_body_sink(np.asarray(command.action[PSI0_ACTION.slice("lower_body")], np.float64))

    def state(self, now: float) -> RobotState:
        with self._lock:
            low, hand = self._low, self._hand_q.copy()
        if low is None:
            raise DeviceUnavailable("unitree: no rt/lowstate received yet (robot off or wrong interface?)")
        return robot_state_from_lowstate(now, [m.q for m in low.motor_state], [m.dq for m in low.motor_state],
                                         low.imu_state.rpy, hand, robot=self.embodiment)

    def close(self) -> None:
        for attr in ("_sub",):
            sub = getattr(self, attr, None)
            if sub is not None:
                sub.Close()


__all__ = ["UnitreeG1Bridge", "arm_motor_targets", "arm_motors", "robot_state_from_lowstate", "ARM_MOTORS"]
