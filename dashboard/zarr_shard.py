"""MP4s for the episode page from shards that keep camera frames as arrays (Zarr v3 stores; any format
whose reader has no video file for a camera).

Such frames are (T, H, W, 3) uint8 arrays, not video files, so the episode page gets an MP4 made on
first request rather than a JPEG per frame: H.264 `ultrafast` at the shard's size encodes ~575
frames/s of 224x224 on one busy core (a 474-frame episode: 0.8 s, once); the browser then plays, seeks
and syncs it exactly like a LeRobot shard's MP4 (one code path for the cursor, the keypoint overlay and
multi-camera sync, no per-frame request at 30 Hz), and it is ~3.5x smaller than the same frames as
quality-85 JPEGs. Encoded files live in a bounded in-memory LRU (the roots stay read-only). The frames
themselves come from the shard's reader (`shards.formats`)."""
from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Hashable

import numpy as np

VIDEO_CACHE_BYTES = 256 << 20
MP4_GOP = 10          # a keyframe every 10 frames keeps seeks (cursor clicks) cheap


def encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """(T, H, W, 3) uint8 RGB -> H.264 MP4 bytes (odd sizes padded by one pixel for yuv420p)."""
    _, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    # faststart (index first, so playback starts before the whole file arrives) rewrites the file: use a
    # private temp file rather than a BytesIO.
    with tempfile.TemporaryDirectory(prefix="psi0-dash-") as tmp:
        path = Path(tmp) / "episode.mp4"
        _encode_to(path, frames, fps, w + pad_w, h + pad_h)
        return path.read_bytes()


def _encode_to(path: Path, frames: np.ndarray, fps: float, width: int, height: int) -> None:
    import av

    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=int(round(fps)) or 1,
                                      options={"preset": "ultrafast", "crf": "20", "g": str(MP4_GOP),
                                               "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for img in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
        container.mux(stream.encode())


class VideoCache:
    """Bounded LRU of encoded episode MP4s, keyed by what identifies one camera of one episode of one
    shard version (the caller's key)."""

    def __init__(self, max_bytes: int = VIDEO_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._size = 0

    def get(self, key: Hashable, frames: Callable[[], np.ndarray], fps: float) -> bytes:
        """The MP4 of `frames()` (called only on a miss) at `fps` (0: 30)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        blob = encode_mp4(np.asarray(frames()), float(fps or 30.0))
        with self._lock:
            self._items[key] = blob
            self._size += len(blob)
            while self._size > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)
        return blob
