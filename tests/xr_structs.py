"""The OpenVR and OpenXR C structures the pose conversions read, declared with ctypes from the headers.

Why: `pyopenvr` needs SteamVR's runtime library and `pyopenxr` an OpenXR loader, so CI has neither and
the conversion tests used to skip. The conversions (`teleop.devices.openvr_trackers.hmd34_to_*`,
`teleop.devices.openxr_input.posef_to_pose` / `hand_joints_to_mediapipe`) only read these plain C structs;
declaring the same layouts (openvr.h `HmdMatrix34_t`; openxr.h `XrVector3f`, `XrQuaternionf`, `XrPosef`,
`XrHandJointLocationEXT`, with pyopenxr's snake_case field names) lets CI run them. Where the real
package is installed, the tests use its structs instead (`openvr_types()` / `openxr_types()`).
"""
from __future__ import annotations

import ctypes
from types import SimpleNamespace


class HmdMatrix34_t(ctypes.Structure):          # openvr.h: struct HmdMatrix34_t { float m[3][4]; }
    _fields_ = [("m", (ctypes.c_float * 4) * 3)]


class Vector3f(ctypes.Structure):               # openxr.h: XrVector3f
    _fields_ = [("x", ctypes.c_float), ("y", ctypes.c_float), ("z", ctypes.c_float)]


class Quaternionf(ctypes.Structure):            # openxr.h: XrQuaternionf (x, y, z, w)
    _fields_ = [("x", ctypes.c_float), ("y", ctypes.c_float), ("z", ctypes.c_float), ("w", ctypes.c_float)]


class Posef(ctypes.Structure):                  # openxr.h: XrPosef { orientation; position; }
    _fields_ = [("orientation", Quaternionf), ("position", Vector3f)]


class HandJointLocationEXT(ctypes.Structure):   # openxr.h: { XrSpaceLocationFlags locationFlags; pose; radius }
    _fields_ = [("location_flags", ctypes.c_uint64), ("pose", Posef), ("radius", ctypes.c_float)]


ORIENTATION_VALID_BIT = 0x1                     # XR_SPACE_LOCATION_ORIENTATION_VALID_BIT
POSITION_VALID_BIT = 0x2                        # XR_SPACE_LOCATION_POSITION_VALID_BIT


def openvr_types() -> SimpleNamespace:
    """`openvr` when installed, else the header layout above."""
    try:
        import openvr  # noqa: PLC0415
        return SimpleNamespace(HmdMatrix34_t=openvr.HmdMatrix34_t, source="openvr")
    except ImportError:
        return SimpleNamespace(HmdMatrix34_t=HmdMatrix34_t, source="ctypes")


def openxr_types() -> SimpleNamespace:
    """`xr` (pyopenxr) when installed, else the header layout above."""
    try:
        import xr  # noqa: PLC0415
        return SimpleNamespace(HandJointLocationEXT=xr.HandJointLocationEXT, Vector3f=xr.Vector3f,
                               Quaternionf=xr.Quaternionf, Posef=xr.Posef,
                               valid_bits=int(xr.SpaceLocationFlags.POSITION_VALID_BIT
                                              | xr.SpaceLocationFlags.ORIENTATION_VALID_BIT), source="xr")
    except ImportError:
        return SimpleNamespace(HandJointLocationEXT=HandJointLocationEXT, Vector3f=Vector3f, Quaternionf=Quaternionf,
                               Posef=Posef, valid_bits=POSITION_VALID_BIT | ORIENTATION_VALID_BIT, source="ctypes")
