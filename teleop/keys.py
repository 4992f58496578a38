"""A tiny non-blocking key reader for the recorder's terminal (cbreak mode, restored on exit).

Only active when stdin is a TTY; otherwise `read()` returns nothing and the recorder runs unattended.
"""
from __future__ import annotations

import os
import select
import sys
from typing import Any

KEYS_HELP = "space start/stop · s success · f failure · d discard · e e-stop (toggle) · q quit"


class KeyReader:
    def __init__(self, stream: Any = None):
        self.stream = stream if stream is not None else sys.stdin
        self.active = False
        self._saved: Any = None
        self._fd = -1

    def __enter__(self) -> "KeyReader":
        try:
            self._fd = self.stream.fileno()
            self.active = os.isatty(self._fd)
        except (AttributeError, ValueError, OSError):
            self.active = False
        if self.active:
            import termios  # noqa: PLC0415
            import tty  # noqa: PLC0415
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)          # keys arrive one by one, no echo; Ctrl-C still interrupts
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.active and self._saved is not None:
            import termios  # noqa: PLC0415
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self.active = False

    def read(self) -> str:
        """All keys typed since the last call ('' if none); never blocks."""
        if not self.active:
            return ""
        out = []
        while select.select([self._fd], [], [], 0)[0]:
            data = os.read(self._fd, 64)
            if not data:
                self.active = False          # stdin closed
                break
            out.append(data.decode("utf-8", errors="ignore"))
        return "".join(out)
