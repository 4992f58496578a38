"""The teleop contracts: what devices produce, what the mapping emits, what the robot reports.

Every sample carries `t`, seconds on ONE monotonic clock (`time.monotonic()` in the recorder,
a virtual clock in sim/replay), so streams at different rates can be aligned and resampled
later. Devices are small protocols with real drivers behind them (`teleop.devices`); the mapping
(`teleop.mapping`) turns an `OperatorInput` into a `RobotCommand` in `PSI0_ACTION` order; the
recorder writes all of these streams append-only, in the format `schemas.recording` defines.

Frames: world = the tracking space, z up, metres; poses are 4x4 homogeneous (float64).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

# The record types are part of the recording format (schemas.recording); the device protocols below
# are teleop's own.
from schemas.recording import (BODY_SITES, GAMEPAD_AXES, HAND_SIDES, CameraFrame, OperatorInput,  # noqa: F401
                               RobotCommand, RobotState)

REQUIRED_SITES: tuple[str, ...] = ("head", "pelvis", "left_wrist", "right_wrist")
"""Tracker sites the mapping cannot do without (the feet in BODY_SITES are optional)."""


@runtime_checkable
class InputDevice(Protocol):
    """Trackers + hands + gamepad behind one face. `poll` never blocks: it returns the newest data."""
    name: str

    def open(self) -> None: ...
    def poll(self, now: float) -> OperatorInput: ...
    def close(self) -> None: ...
    def describe(self) -> dict: ...


@runtime_checkable
class Camera(Protocol):
    name: str
    rate_hz: float

    def open(self) -> None: ...
    def grab(self, now: float) -> CameraFrame | None: ...
    def close(self) -> None: ...


@runtime_checkable
class RobotBridge(Protocol):
    """The robot (real over DDS, or the kinematic sim): takes commands, reports state."""
    name: str

    def open(self) -> None: ...
    def send(self, command: RobotCommand) -> None: ...
    def state(self, now: float) -> RobotState: ...
    def close(self) -> None: ...


class DeviceUnavailable(RuntimeError):
    """A driver's runtime or hardware is missing; the message names what to install or plug in."""
