"""MP4s for the episode page from shards that keep camera frames as arrays (Zarr v3 stores; any format
whose reader has no video file for a camera).

Such frames are (T, H, W, 3) uint8 arrays, not video files, so the episode page gets an MP4 made on
first request rather than a JPEG per frame: H.264 `ultrafast` at the shard's size encodes ~575
frames/s of 224x224 on one busy core (a 474-frame episode: 0.8 s, once); the browser then plays, seeks
and syncs it exactly like a LeRobot shard's MP4 (one code path for the cursor, the keypoint overlay and
multi-camera sync, no per-frame request at 30 Hz), and it is ~3.5x smaller than the same frames as
quality-85 JPEGs. Encoded files live in a bounded in-memory LRU (the roots stay read-only). The frames
themselves come from the shard's reader (`shards.formats`).

A store is data, not a promise: its arrays may claim any frame size and length. Before anything is
read, the claimed size is checked: frames larger than MAX_PIXELS are scaled down while encoding, an
episode of more than MAX_FRAMES frames is refused (`TooLarge`), frames are read and encoded one at a
time (memory: one chunk, not the episode), one episode is encoded once however many requests ask for
it at the same time, and at most ENCODERS episodes are encoded at once.
"""
from __future__ import annotations

import math
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Hashable, Iterable

import numpy as np

VIDEO_CACHE_BYTES = 256 << 20
MP4_GOP = 10          # a keyframe every 10 frames keeps seeks (cursor clicks) cheap
MAX_PIXELS = 1280 * 720
"""Largest frame encoded at its own size; bigger frames are scaled down to this many pixels."""
MAX_FRAMES = 20_000
"""Longest episode re-encoded for the browser (11 min at 30 fps)."""
ENCODERS = 2
"""Episodes encoded at the same time (each one core and one frame of memory)."""


class TooLarge(ValueError):
    """An episode the dashboard will not re-encode (claimed length above MAX_FRAMES)."""


def output_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the encoded video: the frame's, padded to even, or scaled down to MAX_PIXELS."""
    if width * height > MAX_PIXELS:
        scale = math.sqrt(MAX_PIXELS / (width * height))
        width, height = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
        return width, height
    return width + width % 2, height + height % 2


def check_size(frames: int, width: int, height: int) -> None:
    """Refuse before reading anything when the claimed episode is too long to re-encode."""
    if frames > MAX_FRAMES:
        raise TooLarge(f"episode has {frames} frames of {width}x{height}: the dashboard re-encodes at most "
                       f"{MAX_FRAMES} frames (open it with `psi0 dashboard export-rerun`)")
    if width <= 0 or height <= 0:
        raise TooLarge(f"frames claim a size of {width}x{height}")


def encode_mp4(frames: Iterable[np.ndarray] | np.ndarray, fps: float, size: tuple[int, int] | None = None) -> bytes:
    """(H, W, 3) uint8 RGB frames -> H.264 MP4 bytes at `size` (default `output_size` of the first frame:
    odd sizes padded by one pixel for yuv420p, frames above MAX_PIXELS scaled down)."""
    # faststart (index first, so playback starts before the whole file arrives) rewrites the file: use a
    # private temp file rather than a BytesIO.
    with tempfile.TemporaryDirectory(prefix="psi0-dash-") as tmp:
        path = Path(tmp) / "episode.mp4"
        _encode_to(path, iter(frames), fps, size)
        return path.read_bytes()


def _encode_to(path: Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int] | None) -> None:
    import av

    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = None
        for img in frames:
            h, w = img.shape[:2]
            width, height = size or output_size(w, h)
            if stream is None:
                stream = container.add_stream("libx264", rate=int(round(fps)) or 1,
                                              options={"preset": "ultrafast", "crf": "20", "g": str(MP4_GOP),
                                                       "threads": "1"})
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if (width, height) == (w + w % 2, h + h % 2):
                if w % 2 or h % 2:
                    img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").reformat(
                    width=width, height=height)
            container.mux(stream.encode(frame))
        if stream is not None:
            container.mux(stream.encode())


class VideoCache:
    """Bounded LRU of encoded episode MP4s, keyed by what identifies one camera of one episode of one
    shard version (the caller's key). Concurrent requests for one key wait for one encode."""

    def __init__(self, max_bytes: int = VIDEO_CACHE_BYTES, encoders: int = ENCODERS):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Lock] = {}
        self._encoders = threading.Semaphore(max(1, encoders))
        self._size = 0
        self.encodes = 0          # episodes encoded by this cache (a cache hit or a waiter does not count)

    def get(self, key: Hashable, frames: Callable[[], Iterable[np.ndarray] | np.ndarray], fps: float) -> bytes:
        """The MP4 of `frames()` (called only on a miss, by one request per key) at `fps` (0: 30)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            gate = self._inflight.setdefault(key, threading.Lock())
        with gate:                              # the first request encodes; the others wait for its result
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                with self._encoders:
                    blob = encode_mp4(frames(), float(fps or 30.0))
                    self.encodes += 1
                with self._lock:
                    self._items[key] = blob
                    self._size += len(blob)
                    while self._size > self.max_bytes and len(self._items) > 1:
                        _, old = self._items.popitem(last=False)
                        self._size -= len(old)
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
        return blob
