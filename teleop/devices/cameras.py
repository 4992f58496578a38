"""Cameras through OpenCV `VideoCapture` (USB/UVC devices, RTSP/HTTP streams, or video files).

`grab(now)` returns a frame when one is due at the camera's rate, RGB uint8, optionally resized; a failed
read returns None and is counted (`dropped`), never raised, so one bad frame never stops a recording.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from teleop.streams import CameraFrame, DeviceUnavailable


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A)/gray frames -> contiguous RGB uint8 (H, W, 3)."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image[:, :, ::-1]).astype(np.uint8, copy=False)


def find_video_devices() -> list[Path]:
    return sorted(Path("/dev").glob("video*"))


class OpenCVCamera:
    def __init__(self, source: int | str = 0, name: str = "egocentric", rate_hz: float = 30.0,
                 size: tuple[int, int] | None = None):
        self.source = source
        self.name = name
        self.rate_hz = float(rate_hz)
        self.size = size                  # (width, height) to resize to, or None
        self._cap = None
        self._next: float | None = None
        self.frames = 0
        self.dropped = 0

    def open(self) -> None:
        try:
            import cv2  # noqa: PLC0415
        except ImportError as e:
            raise DeviceUnavailable("camera: OpenCV is not installed (pip install opencv-python-headless)") from e
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            raise DeviceUnavailable(f"camera: OpenCV cannot open {self.source!r} "
                                    f"(video devices present: {[str(p) for p in find_video_devices()] or 'none'})")
        if self.size is not None and isinstance(self.source, int):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self._cap = cap
        self._next = None

    def grab(self, now: float) -> CameraFrame | None:
        if self._cap is None:
            raise DeviceUnavailable("camera: grab() before open()")
        if self._next is not None and now + 1e-9 < self._next:
            return None
        period = 1.0 / self.rate_hz
        self._next = (now if self._next is None else self._next) + period
        if self._next < now:                                  # fell behind: skip, do not burst
            self._next = now + period
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self.dropped += 1
            return None
        rgb = bgr_to_rgb(frame)
        if self.size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(self.size):
            import cv2  # noqa: PLC0415
            rgb = cv2.resize(rgb, tuple(self.size), interpolation=cv2.INTER_AREA)
        self.frames += 1
        return CameraFrame(t=float(now), camera=self.name, image=rgb)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


__all__ = ["OpenCVCamera", "bgr_to_rgb", "find_video_devices"]
