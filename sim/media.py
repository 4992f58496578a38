"""Writing what the simulator renders: MP4 (PyAV, H.264) and PNG (OpenCV)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from schemas.video_codecs import x264_options


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0) -> int:
    """RGB uint8 frames -> an H.264 MP4 (yuv420p, even sizes). Returns the number of frames written."""
    import av  # noqa: PLC0415
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(path), mode="w") as box:
        stream = None
        for frame in frames:
            h, w = frame.shape[:2]
            if stream is None:
                stream = box.add_stream("libx264", rate=int(round(fps)))
                stream.width, stream.height = w - w % 2, h - h % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "23", "preset": "veryfast"} | x264_options()   # same frames, same bytes
            img = np.ascontiguousarray(frame[: stream.height, : stream.width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                box.mux(packet)
            n += 1
        if stream is not None:
            for packet in stream.encode():
                box.mux(packet)
    return n


def write_png(path: str | Path, image: np.ndarray) -> None:
    import cv2  # noqa: PLC0415
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f"could not write {path}")
