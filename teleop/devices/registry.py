"""Every device by name: what is available here (for `teleop devices`) and how to open it.

Probes are side-effect free: they check that the runtime package imports and that the hardware or
runtime leaves a trace (device nodes, runtime manifests), without starting anything.
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from teleop.streams import Camera, DeviceUnavailable, InputDevice, RobotBridge


@dataclass(frozen=True)
class DeviceEntry:
    name: str
    kind: str                                  # "input" | "camera" | "robot"
    description: str
    probe: Callable[[], str | None]            # None = available, else the reason it is not
    factory: Callable[..., object]


def _module(name: str, pip: str, runtime: str = "") -> str | None:
    if importlib.util.find_spec(name) is not None:
        return None
    return f"python package `{pip}` not installed" + (f" (and it needs {runtime})" if runtime else "")


def _probe_openvr() -> str | None:
    missing = _module("openvr", "openvr", "a running SteamVR")
    if missing:
        return missing
    paths = [Path.home() / ".config/openvr/openvrpaths.vrpath", Path(os.environ.get("LOCALAPPDATA", "/nonexistent")) /
             "openvr/openvrpaths.vrpath"]
    if not any(p.exists() for p in paths):
        return "SteamVR not installed (no openvrpaths.vrpath registry)"
    return None


def _probe_openxr() -> str | None:
    missing = _module("xr", "pyopenxr", "an active OpenXR runtime")
    if missing:
        return missing
    manifests = [os.environ.get("XR_RUNTIME_JSON", ""), "/etc/xdg/openxr/1/active_runtime.json",
                 str(Path.home() / ".config/openxr/1/active_runtime.json")]
    if not any(m and Path(m).exists() for m in manifests):
        return "no active OpenXR runtime (XR_RUNTIME_JSON unset, no active_runtime.json)"
    return None


def _probe_gamepad() -> str | None:
    from teleop.devices.gamepad import find_joysticks  # noqa: PLC0415
    return None if find_joysticks() else "no /dev/input/js* joystick device"


def _probe_opencv() -> str | None:
    missing = _module("cv2", "opencv-python-headless")
    if missing:
        return missing
    from teleop.devices.cameras import find_video_devices  # noqa: PLC0415
    return None if find_video_devices() else "no /dev/video* device (a file or URL can still be opened)"


def _probe_unitree() -> str | None:
    return _module("unitree_sdk2py", "unitree_sdk2py") or _module("cyclonedds", "cyclonedds")


def _sim_input(task: str = "lunchbag", seed: int = 0, rate: float = 90.0, **kw):
    from teleop.devices.sim import SimOperator  # noqa: PLC0415
    return SimOperator(task=task, seed=seed, rate=rate, **kw)


def _mujoco(task: str = "lunchbag", seed: int = 0, **kw):
    from teleop.devices.mujoco_sim import ExpertInput, MujocoWorld  # noqa: PLC0415
    world = MujocoWorld(task=task, seed=seed, **kw)
    world.reset(seed)
    return ExpertInput(world)


def _replay_input(path: str | None = None, **kw):
    from teleop.devices.replay import ReplayInput  # noqa: PLC0415
    if path is None and "inputs" not in kw:
        raise DeviceUnavailable("replay: give the recording to replay (path=...)")
    return ReplayInput(path, **kw)


def _with_gamepad(kw: dict) -> dict:
    """Attach the first joystick as the locomotion gamepad unless the caller passed one (or gamepad=None)."""
    if "gamepad" not in kw:
        kw["gamepad"] = _gamepad() if _probe_gamepad() is None else None
    return kw


def _openvr(**kw):
    from teleop.devices.openvr_trackers import OpenVRTrackers  # noqa: PLC0415
    return OpenVRTrackers(**_with_gamepad(kw))


def _openxr(**kw):
    from teleop.devices.openxr_input import OpenXRInput  # noqa: PLC0415
    return OpenXRInput(**_with_gamepad(kw))


def _gamepad(**kw):
    from teleop.devices.gamepad import LinuxGamepad  # noqa: PLC0415
    return LinuxGamepad(**kw)


def _sim_robot(**kw):
    from teleop.devices.sim import SimRobot  # noqa: PLC0415
    return SimRobot(**kw)


def _unitree(**kw):
    from teleop.devices.unitree_bridge import UnitreeG1Bridge  # noqa: PLC0415
    return UnitreeG1Bridge(**kw)


def _sim_camera(**kw):
    from teleop.devices.sim import SimCamera  # noqa: PLC0415
    return SimCamera(**kw)


def _opencv(**kw):
    from teleop.devices.cameras import OpenCVCamera  # noqa: PLC0415
    return OpenCVCamera(**kw)


DEVICES: dict[str, DeviceEntry] = {e.name: e for e in [
    DeviceEntry("sim", "input", "simulated operator performing the task (trackers, hands, gamepad)", lambda: None, _sim_input),
    DeviceEntry("replay", "input", "recorded operator inputs played back", lambda: None, _replay_input),
    DeviceEntry("openvr", "input", "SteamVR trackers via openvr (+ gamepad)", _probe_openvr, _openvr),
    DeviceEntry("openxr", "input", "OpenXR head, hand tracking, body trackers via pyopenxr (+ gamepad)", _probe_openxr, _openxr),
    DeviceEntry("mujoco", "input", "MuJoCo physics sim: the task's scripted expert operates a simulated G1 + Dex3-1",
                lambda: _module("mujoco", "mujoco") or _module("mjlab", "mjlab (pip install --no-deps)"), _mujoco),
    DeviceEntry("gamepad", "input", "Linux joystick (/dev/input/js*), locomotion only", _probe_gamepad, _gamepad),
    DeviceEntry("sim-robot", "robot", "kinematic G1 with first-order joint lag", lambda: None, _sim_robot),
    DeviceEntry("unitree-g1", "robot", "Unitree G1 over DDS (unitree_sdk2py)", _probe_unitree, _unitree),
    DeviceEntry("sim-camera", "camera", "rendered egocentric view of the sim robot", lambda: None, _sim_camera),
    DeviceEntry("opencv", "camera", "OpenCV VideoCapture (USB camera, stream or file)", _probe_opencv, _opencv),
]}


def available_devices() -> list[dict]:
    """[{name, kind, available, reason, description}] for every known device, in a stable order."""
    out = []
    for e in DEVICES.values():
        try:
            reason = e.probe()
        except Exception as exc:   # noqa: BLE001  (a probe must never take `teleop devices` down)
            reason = f"probe failed: {type(exc).__name__}: {exc}"
        out.append({"name": e.name, "kind": e.kind, "available": reason is None, "reason": reason or "",
                    "description": e.description})
    return out


def _make(name: str, kind: str, kw: dict):
    if name not in DEVICES or DEVICES[name].kind != kind:
        names = sorted(n for n, e in DEVICES.items() if e.kind == kind)
        raise ValueError(f"unknown {kind} device {name!r}; choose from {names}")
    return DEVICES[name].factory(**kw)


def open_input(name: str, **kw) -> InputDevice:
    """Construct and open an input device (raises DeviceUnavailable with the reason)."""
    dev = _make(name, "input", kw)
    dev.open()
    return dev


def open_robot(name: str, **kw) -> RobotBridge:
    dev = _make(name, "robot", kw)
    dev.open()
    return dev


def open_camera(name: str, **kw) -> Camera:
    dev = _make(name, "camera", kw)
    dev.open()
    return dev


__all__ = ["DEVICES", "DeviceEntry", "available_devices", "open_input", "open_robot", "open_camera"]
