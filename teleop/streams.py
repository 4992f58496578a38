"""The teleop contracts: what devices produce, what the mapping emits, what the robot reports.

Every sample carries `t`, seconds on ONE monotonic clock (`time.monotonic()` in the recorder,
a virtual clock in sim/replay), so streams at different rates can be aligned and resampled
later. Devices are small protocols with real drivers behind them (`teleop.devices`); the mapping
(`teleop.mapping`) turns an `OperatorInput` into a `RobotCommand` in `PSI0_ACTION` order; the
recorder writes all of these streams append-only.

Frames: world = the tracking space, z up, metres; poses are 4x4 homogeneous (float64).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from schemas.actions import PSI0_ACTION

BODY_SITES: tuple[str, ...] = ("head", "pelvis", "left_wrist", "right_wrist", "left_foot", "right_foot")
"""Named tracker sites. Head, pelvis and both wrists are required; feet are optional."""
REQUIRED_SITES: tuple[str, ...] = ("head", "pelvis", "left_wrist", "right_wrist")
HAND_SIDES: tuple[str, ...] = ("left", "right")
GAMEPAD_AXES: tuple[str, ...] = ("left_x", "left_y", "right_x", "right_y")
"""Stick axes in [-1, 1]; +y is stick pushed forward."""


@dataclass(frozen=True)
class OperatorInput:
    """Everything the operator's wearables and gamepad say at one control tick."""
    t: float
    poses: dict[str, np.ndarray]            # site -> (4, 4) pose in world
    pose_valid: dict[str, bool]             # site -> tracked this tick (False = dropout)
    hand_keypoints: dict[str, np.ndarray]   # "left"/"right" -> (21, 3) MediaPipe order, world, metres
    hand_valid: dict[str, bool]
    axes: np.ndarray                        # (4,) GAMEPAD_AXES
    buttons: frozenset[str] = frozenset()   # pressed button names, e.g. {"a", "start"}


@dataclass(frozen=True)
class CameraFrame:
    t: float
    camera: str                              # e.g. "egocentric"
    image: np.ndarray                        # (H, W, 3) uint8 RGB


@dataclass(frozen=True)
class RobotCommand:
    """One command to the robot: PSI0_ACTION (hands 14, arms 14, 8-DoF lower-body command)."""
    t: float
    action: np.ndarray                       # (36,) float32, PSI0_ACTION order
    flags: frozenset[str] = frozenset()      # e.g. {"left_wrist_lost", "clamped", "estop", "hold"}

    def __post_init__(self) -> None:
        if self.action.shape != (PSI0_ACTION.size,):
            raise ValueError(f"RobotCommand.action must be ({PSI0_ACTION.size},), got {self.action.shape}")


@dataclass(frozen=True)
class RobotState:
    """The FULL robot state (legs and waist included), not only what the action uses."""
    t: float
    body_q: np.ndarray                       # (29,) G1 body joints, schemas.embodiments G1 order
    body_dq: np.ndarray                      # (29,)
    hand_q: np.ndarray                       # (14,) Dex3-1 left 7 + right 7 (or Inspire 12 padded to 14)
    imu_rpy: np.ndarray                      # (3,)
    base_height: float
    extra: dict[str, float] = field(default_factory=dict)


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
