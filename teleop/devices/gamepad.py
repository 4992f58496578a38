"""A gamepad through the Linux joystick interface (/dev/input/js*, the `joydev` kernel module).

Why not a PyPI wrapper: the kernel interface is eight bytes per event (`struct js_event`: u32 time ms,
s16 value, u8 type, u8 number), needs no dependency, works headless (no SDL window), and is exactly
testable. `inputs`/`pygame` would add a dependency for the same events.

Axes are normalised to [-1, 1] with +y = stick pushed forward (`teleop.streams.GAMEPAD_AXES`); buttons
come out by name, and the layout's e-stop button is also reported as the semantic `estop` button
(Ψ₀ uses A on the Unitree remote as its e-stop; so does the default layout here).
"""
from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from teleop.streams import BODY_SITES, GAMEPAD_AXES, HAND_SIDES, DeviceUnavailable, OperatorInput

JS_EVENT = struct.Struct("<IhBB")
JS_EVENT_BUTTON, JS_EVENT_AXIS, JS_EVENT_INIT = 0x01, 0x02, 0x80
ESTOP = "estop"


@dataclass(frozen=True)
class GamepadLayout:
    """Kernel axis/button numbers -> our names. Default: Xbox-style pads on the xpad / hid driver."""
    axes: dict[int, tuple[str, float]] = field(default_factory=lambda: {
        0: ("left_x", 1.0), 1: ("left_y", -1.0), 3: ("right_x", 1.0), 4: ("right_y", -1.0)})
    buttons: dict[int, str] = field(default_factory=lambda: {
        0: "a", 1: "b", 2: "x", 3: "y", 4: "lb", 5: "rb", 6: "back", 7: "start", 8: "guide", 9: "lstick", 10: "rstick"})
    estop: str = "a"


class JoystickState:
    """Folds `js_event`s into axes and pressed buttons."""

    def __init__(self, layout: GamepadLayout = GamepadLayout()):
        self.layout = layout
        self.axes = np.zeros(len(GAMEPAD_AXES))
        self.pressed: set[str] = set()
        self.events = 0

    def apply(self, raw: bytes) -> None:
        """Apply a buffer of whole 8-byte events (a trailing partial event is an error)."""
        if len(raw) % JS_EVENT.size:
            raise ValueError(f"joystick read of {len(raw)} bytes is not a whole number of events")
        for _, value, etype, number in JS_EVENT.iter_unpack(raw):
            etype &= ~JS_EVENT_INIT
            self.events += 1
            if etype == JS_EVENT_AXIS and number in self.layout.axes:
                name, sign = self.layout.axes[number]
                self.axes[GAMEPAD_AXES.index(name)] = float(np.clip(sign * value / 32767.0, -1.0, 1.0))
            elif etype == JS_EVENT_BUTTON and number in self.layout.buttons:
                (self.pressed.add if value else self.pressed.discard)(self.layout.buttons[number])

    @property
    def buttons(self) -> frozenset[str]:
        names = set(self.pressed)
        if self.layout.estop in names:
            names.add(ESTOP)
        return frozenset(names)


def find_joysticks() -> list[Path]:
    return sorted(Path("/dev/input").glob("js*")) if Path("/dev/input").is_dir() else []


class LinuxGamepad:
    """InputDevice with axes/buttons only (all poses invalid); other devices merge it in."""

    def __init__(self, path: str | None = None, layout: GamepadLayout = GamepadLayout(), name: str = "gamepad"):
        self.name = name
        self.path = path
        self.state = JoystickState(layout)
        self._fd: int | None = None

    def open(self) -> None:
        path = self.path or (str(find_joysticks()[0]) if find_joysticks() else None)
        if path is None:
            raise DeviceUnavailable("gamepad: no /dev/input/js* device (plug in a gamepad; needs the Linux joydev module)")
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            raise DeviceUnavailable(f"gamepad: cannot open {path}: {e.strerror} (add the user to the 'input' group?)") from e
        self.path = path

    def _drain(self) -> None:
        while self._fd is not None:
            try:
                raw = os.read(self._fd, JS_EVENT.size * 64)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.ENODEV:
                    raise DeviceUnavailable(f"gamepad: {self.path} was unplugged") from e
                raise
            if not raw:
                return
            self.state.apply(raw)

    def poll(self, now: float) -> OperatorInput:
        self._drain()
        return OperatorInput(t=float(now), poses={s: np.eye(4) for s in BODY_SITES},
                             pose_valid={s: False for s in BODY_SITES},
                             hand_keypoints={s: np.zeros((21, 3)) for s in HAND_SIDES},
                             hand_valid={s: False for s in HAND_SIDES},
                             axes=self.state.axes.copy(), buttons=self.state.buttons)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def describe(self) -> dict:
        return {"name": self.name, "kind": "gamepad", "path": self.path, "estop_button": self.state.layout.estop}


__all__ = ["LinuxGamepad", "GamepadLayout", "JoystickState", "JS_EVENT", "find_joysticks", "ESTOP"]
