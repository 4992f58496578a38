"""The Unitree G1 as `psi0 robot`'s robot: the bridge (teleop/devices/unitree_bridge.py) with system-0 at
50 Hz underneath, observations in the checkpoint's image mode (PSI0_STATE from LowState + a camera).

The policy's action goes to the bridge every tick with the supervisor's gain scale; the bridge publishes
the full low-level command at 250 Hz (legs from system-0, waist and arms from the policy, hands on their
topics). Real hardware is needed to run it; CI covers its parts (bridge against a fake DDS peer, the AMO
runner in the simulator, the client loop against the simulator).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from deploy.amo import AmoContract, AmoRunner
from deploy.bundle import ObservationSchema
from deploy.safety import SafeCommand
from schemas.actions import NOMINAL_TORSO_HEIGHT, PSI0_ACTION, PSI0_STATE
from schemas.embodiments import G1_BODY
from schemas.names import STATE
from teleop.devices.unitree_bridge import UnitreeG1Bridge
from teleop.streams import DeviceUnavailable, RobotCommand


class UnitreeRobotIO:
    def __init__(self, schema: ObservationSchema, bridge: UnitreeG1Bridge, camera: Any | None):
        if schema.state_key != STATE:
            raise ValueError(f"the real robot gives {STATE}; this checkpoint wants {schema.state_key} "
                             "(privileged simulator state)")
        if schema.cameras and camera is None:
            raise DeviceUnavailable(f"this checkpoint needs cameras {list(schema.cameras)}: pass --camera")
        self.schema, self.bridge, self.camera = schema, bridge, camera
        self._image: np.ndarray | None = None
        self._prev_torso = np.array([0.0, 0.0, 0.0, NOMINAL_TORSO_HEIGHT])

    @classmethod
    def open(cls, schema: ObservationSchema, interface: str = "eth0", system0: Path | None = None,
             adapter: Path | None = None, adapter_norm: Path | None = None, camera: Any | None = None,
             contract: AmoContract = AmoContract()) -> "UnitreeRobotIO":
        if system0 is None:
            raise DeviceUnavailable("unitree-g1: pass --system0 (a TorchScript lower-body policy with AMO's "
                                    "contract); without one the legs would only be damped")
        runner = AmoRunner.load(system0, adapter, adapter_norm, trust_pickle=True, contract=contract)
        n = G1_BODY.slice("waist").stop
        bridge = UnitreeG1Bridge(interface=interface, system0=runner.targets, leg_waist_kp=contract.kp[:n],
                                 leg_waist_kd=contract.kd[:n])
        bridge.open()
        deadline = time.monotonic() + 5.0
        while bridge.peek() is None:
            if time.monotonic() > deadline:
                bridge.close()
                raise DeviceUnavailable("unitree-g1: no rt/lowstate within 5 s (robot off, wrong interface?)")
            time.sleep(0.05)
        return cls(schema, bridge, camera)

    def observe(self) -> dict[str, Any]:
        st = self.bridge.state(time.monotonic())
        s = np.zeros(PSI0_STATE.size, np.float32)
        s[PSI0_STATE.slice("hands")] = st.hand_q
        s[PSI0_STATE.slice("arms")] = st.body_q[G1_BODY.slice("arms")]
        s[PSI0_STATE.slice("torso")] = self._prev_torso
        images = {}
        if self.camera is not None:
            frame = self.camera.grab(time.monotonic())
            if frame is not None:
                self._image = frame.image
            if self._image is None:
                raise DeviceUnavailable("unitree-g1: the camera has not produced a frame")
            images = {cam: self._image for cam in self.schema.cameras}
        return {"state": s, "state_names": list(PSI0_STATE.dims), "images": images, "instruction": ""}

    def measured_upper(self) -> np.ndarray:
        st = self.bridge.state(time.monotonic())
        out = np.zeros(PSI0_ACTION.slice("upper_body").stop)
        out[PSI0_ACTION.slice("hands")] = st.hand_q
        out[PSI0_ACTION.slice("arms")] = st.body_q[G1_BODY.slice("arms")]
        return out

    def apply(self, cmd: SafeCommand, tick: int) -> None:
        action = np.asarray(cmd.action, np.float64)
        self.bridge.send(RobotCommand(time.monotonic(), action.astype(np.float32), frozenset()), kp_scale=cmd.kp_scale)
        torso = PSI0_STATE.slice("torso")              # the previous command's torso rpy + height, as recorded
        self._prev_torso = action[PSI0_ACTION.slice("lower_body")][: torso.stop - torso.start]

    def status(self) -> dict[str, Any]:
        return {"robot": "unitree-g1", "lowcmd_rate": self.bridge.rate_report()}

    def close(self) -> None:
        self.bridge.close()
        if self.camera is not None:
            self.camera.close()
