"""Camera capture on its own thread, so the control loop never waits for a frame.

`cv2.VideoCapture.read()` blocks until the device delivers its next frame (up to 33 ms at 30 fps) and
a rendered sim frame costs ~10 ms on a small CPU; inside a 20 ms control tick either one costs
deadlines. `CaptureThread` runs the wrapped camera's `grab(now)` on a daemon thread at the camera's
own rate and hands the frames over through a short queue: `grab()` on the control thread only pops.
Frames keep the timestamp the camera gave them (the same monotonic clock as every other stream).
If capture falls further behind than `max_queue` frames, the oldest are dropped and counted.
An exception in the capture thread is re-raised by the next `grab()` (never swallowed).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

from teleop.streams import Camera, CameraFrame


class CaptureThread:
    """A `Camera` whose `grab` never blocks: the inner camera is polled on a background thread."""

    def __init__(self, camera: Camera, *, clock: Callable[[], float] = time.monotonic, max_queue: int = 8,
                 already_open: bool = False):
        self.camera = camera
        self.name = camera.name
        self.rate_hz = float(camera.rate_hz)
        self.width = getattr(camera, "width", None)
        self.height = getattr(camera, "height", None)
        self.clock = clock
        self.dropped = 0
        self.captured = 0
        self._queue: deque[CameraFrame] = deque()
        self._max_queue = int(max_queue)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._already_open = already_open

    def open(self) -> None:
        if not self._already_open:
            self.camera.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        idle = min(0.002, 0.125 / max(self.rate_hz, 1.0))      # poll well inside one frame period
        try:
            while not self._stop.is_set():
                frame = self.camera.grab(self.clock())
                if frame is None:
                    self._stop.wait(idle)
                    continue
                with self._lock:
                    self.captured += 1
                    self._queue.append(frame)
                    while len(self._queue) > self._max_queue:
                        self._queue.popleft()
                        self.dropped += 1
        except BaseException as e:  # noqa: BLE001 - handed to the control thread by grab()
            self._error = e

    def grab(self, now: float) -> CameraFrame | None:
        """The oldest captured frame not yet handed out, or None; never waits."""
        if self._error is not None:
            raise RuntimeError(f"camera {self.name}: capture thread failed: {self._error!r}") from self._error
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.camera.close()


__all__ = ["CaptureThread"]
