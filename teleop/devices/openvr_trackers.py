"""SteamVR / OpenVR trackers (`openvr` from PyPI, i.e. pyopenvr) -> body-site poses.

Sites are bound to tracked devices by serial number (`sites={"pelvis": "LHR-1A2B3C4D", ...}`) or, for
sites left unbound, by role: the HMD is the head; trackers whose SteamVR role (controller type
`vive_tracker_<role>`) is waist / left_foot / right_foot / left_wrist / right_wrist, or controllers with the
left/right-hand role, fill the matching sites. Hand keypoints are not produced here (hand_valid False);
the gamepad, if given, supplies axes and buttons.

Needs the `openvr` package and a running SteamVR; `open()` raises `DeviceUnavailable` naming whichever is
missing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from teleop.devices.frames import y_up_pose_to_world
from teleop.streams import BODY_SITES, HAND_SIDES, DeviceUnavailable, InputDevice, OperatorInput

ROLE_SITES = {"waist": "pelvis", "left_foot": "left_foot", "right_foot": "right_foot",
              "left_wrist": "left_wrist", "right_wrist": "right_wrist"}


def hmd34_to_matrix(m) -> np.ndarray:
    """An `openvr.HmdMatrix34_t` (3 rows x 4, row-major, metres) -> (4, 4) float64 in OpenVR space."""
    out = np.eye(4)
    rows = m.m
    for i in range(3):
        for j in range(4):
            out[i, j] = rows[i][j]
    return out


def hmd34_to_pose(m) -> np.ndarray:
    """HmdMatrix34_t -> (4, 4) pose in the z-up world frame."""
    return y_up_pose_to_world(hmd34_to_matrix(m))


@dataclass(frozen=True)
class TrackedDevice:
    index: int
    device_class: str            # "hmd" | "controller" | "tracker" | other
    serial: str
    controller_type: str = ""    # e.g. "vive_tracker_waist"
    hand_role: str = ""          # "left" | "right" for controllers with a hand role


def assign_sites(devices: list[TrackedDevice], sites: dict[str, str] | None = None) -> dict[str, int]:
    """Site -> device index: explicit serials first, then HMD = head, then tracker roles / hand roles."""
    sites = dict(sites or {})
    unknown = set(sites) - set(BODY_SITES)
    if unknown:
        raise ValueError(f"unknown sites {sorted(unknown)}; sites are {BODY_SITES}")
    by_serial = {d.serial: d for d in devices}
    out: dict[str, int] = {}
    for site, serial in sites.items():
        if serial not in by_serial:
            raise DeviceUnavailable(f"openvr: no tracked device with serial {serial!r} for site {site!r} "
                                    f"(connected: {sorted(by_serial)})")
        out[site] = by_serial[serial].index
    used = set(out.values())
    for d in devices:
        site = None
        if d.device_class == "hmd":
            site = "head"
        elif d.device_class == "tracker" and d.controller_type.startswith("vive_tracker_"):
            site = ROLE_SITES.get(d.controller_type[len("vive_tracker_"):])
        elif d.device_class == "controller" and d.hand_role in HAND_SIDES:
            site = f"{d.hand_role}_wrist"
        if site and site not in out and d.index not in used:
            out[site] = d.index
            used.add(d.index)
    return out


class OpenVRTrackers:
    """InputDevice over SteamVR tracked devices."""

    def __init__(self, sites: dict[str, str] | None = None, gamepad: InputDevice | None = None, name: str = "openvr"):
        self.name = name
        self.site_serials = sites or {}
        self.gamepad = gamepad
        self._vr = None
        self._openvr = None
        self.assignment: dict[str, int] = {}
        self._last: dict[str, np.ndarray] = {s: np.eye(4) for s in BODY_SITES}

    def open(self) -> None:
        try:
            import openvr  # noqa: PLC0415
        except ImportError as e:
            raise DeviceUnavailable("openvr: the `openvr` package is not installed (pip install openvr; "
                                    "it also needs a running SteamVR)") from e
        try:
            openvr.init(openvr.VRApplication_Background)
        except Exception as e:   # noqa: BLE001  (pyopenvr raises its own error types per init code)
            raise DeviceUnavailable(f"openvr: cannot connect to a running SteamVR ({type(e).__name__} {e}".rstrip()
                                    + "); install and start SteamVR first") from e
        self._openvr, self._vr = openvr, openvr.VRSystem()
        self.assignment = assign_sites(self._devices(), self.site_serials)
        missing = [s for s in ("head", "pelvis", "left_wrist", "right_wrist") if s not in self.assignment]
        if missing:
            self.close()
            raise DeviceUnavailable(f"openvr: no tracked device for {missing}; bind them by serial (sites=...) "
                                    "or set SteamVR tracker roles (waist, left/right wrist or controllers)")
        if self.gamepad is not None:
            self.gamepad.open()

    def _devices(self) -> list[TrackedDevice]:
        ov, vr = self._openvr, self._vr
        classes = {ov.TrackedDeviceClass_HMD: "hmd", ov.TrackedDeviceClass_Controller: "controller",
                   ov.TrackedDeviceClass_GenericTracker: "tracker"}
        out = []
        for i in range(ov.k_unMaxTrackedDeviceCount):
            cls = vr.getTrackedDeviceClass(i)
            if cls == ov.TrackedDeviceClass_Invalid:
                continue
            serial = vr.getStringTrackedDeviceProperty(i, ov.Prop_SerialNumber_String)
            ctype = ""
            try:
                ctype = vr.getStringTrackedDeviceProperty(i, ov.Prop_ControllerType_String)
            except Exception:    # noqa: BLE001  (not every device has the property)
                pass
            role = vr.getControllerRoleForTrackedDeviceIndex(i)
            hand = {ov.TrackedControllerRole_LeftHand: "left", ov.TrackedControllerRole_RightHand: "right"}.get(role, "")
            out.append(TrackedDevice(i, classes.get(cls, "other"), str(serial), str(ctype), hand))
        return out

    def poll(self, now: float) -> OperatorInput:
        ov = self._openvr
        if self._vr is None:
            raise DeviceUnavailable("openvr: poll() before open()")
        poses = self._vr.getDeviceToAbsoluteTrackingPose(ov.TrackingUniverseStanding, 0, ov.k_unMaxTrackedDeviceCount)
        out, valid = {}, {}
        for site in BODY_SITES:
            idx = self.assignment.get(site)
            ok = idx is not None and bool(poses[idx].bPoseIsValid) and bool(poses[idx].bDeviceIsConnected)
            if ok:
                self._last[site] = hmd34_to_pose(poses[idx].mDeviceToAbsoluteTracking)
            out[site], valid[site] = self._last[site].copy(), ok
        pad = self.gamepad.poll(now) if self.gamepad is not None else None
        return OperatorInput(t=float(now), poses=out, pose_valid=valid,
                             hand_keypoints={s: np.zeros((21, 3)) for s in HAND_SIDES},
                             hand_valid={s: False for s in HAND_SIDES},
                             axes=pad.axes if pad is not None else np.zeros(4),
                             buttons=pad.buttons if pad is not None else frozenset())

    def close(self) -> None:
        if self._vr is not None and self._openvr is not None:
            self._openvr.shutdown()
        self._vr = None
        if self.gamepad is not None:
            self.gamepad.close()

    def describe(self) -> dict:
        return {"name": self.name, "kind": "openvr", "assignment": dict(sorted(self.assignment.items())),
                "serials": dict(sorted(self.site_serials.items())), "gamepad": self.gamepad.name if self.gamepad else None}


__all__ = ["OpenVRTrackers", "TrackedDevice", "assign_sites", "hmd34_to_matrix", "hmd34_to_pose"]
