"""Decoded frames for shard readers: random access into encoded video with PyAV (seek to the
keyframe at/before t, decode forward), and the conversion of a frame to channels-first RGB at a size.

A `FrameReader` keeps its container and decoder open. When the next request is a little ahead of
the last decoded frame (within one observed GOP) it keeps decoding instead of seeking, so
sequential access costs one decode per frame. `VideoCache` is a small per-process LRU of readers
(share one between the shards a process reads to bound its open decoders). Videos on an object
store are read through a ranged file object, local ones by path.
"""
from __future__ import annotations

from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shards.location import Location

if TYPE_CHECKING:          # PyAV is imported where video is decoded or encoded, not by readers of vectors
    import av


class FrameReader:
    """Frames of one video file by timestamp (seconds)."""

    def __init__(self, path: "str | Path | Location", threads: int = 1):
        import av  # noqa: PLC0415 - PyAV loads only when video is decoded or encoded
        where = Location.of(path)
        self.path = where.uri
        self._handle: Any = where.open() if where.is_url else None
        self.container = av.open(self._handle if self._handle is not None else self.path)
        self.stream = self.container.streams.video[0]
        ctx = self.stream.codec_context
        ctx.thread_count = threads          # random access: frame threading only adds latency
        self.time_base: Fraction = self.stream.time_base
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(30)
        self.frame_pts = float(1 / (rate * self.time_base))   # one frame's duration in pts units
        self.start_pts = self.stream.start_time or 0
        self._decoder = None
        self._last: av.VideoFrame | None = None
        self._gop = 1                       # smallest keyframe distance seen (frames); grows as observed
        self._last_key_pts: int | None = None

    def close(self) -> None:
        self._decoder = None
        self.container.close()
        if self._handle is not None:
            self._handle.close()

    def frame(self, timestamp: float) -> av.VideoFrame:
        """The frame displayed at `timestamp` (nearest pts within half a frame)."""
        target = self.start_pts + timestamp / float(self.time_base)
        tol = self.frame_pts / 2
        last = self._last
        if last is not None and abs(last.pts - target) <= tol:
            return last
        ahead = last is not None and target > last.pts and (target - last.pts) <= self._gop * self.frame_pts + tol
        if not ahead or self._decoder is None:
            self.container.seek(int(max(self.start_pts, target - tol)), stream=self.stream, backward=True,
                                any_frame=False)
            self._decoder = self.container.decode(self.stream)
            self._last = None
        for frame in self._decoder:
            if frame.pts is None:
                continue
            self._observe_key(frame)
            self._last = frame
            if frame.pts >= target - tol:
                if abs(frame.pts - target) > tol:
                    raise ValueError(f"{self.path}: no frame at t={timestamp:.4f}s (next is at "
                                     f"{(frame.pts - self.start_pts) * float(self.time_base):.4f}s)")
                return frame
        self._decoder = None
        if self._last is not None and abs(self._last.pts - target) <= tol:
            return self._last
        raise ValueError(f"{self.path}: t={timestamp:.4f}s is past the end of the video")

    def _observe_key(self, frame: av.VideoFrame) -> None:
        if not frame.key_frame:
            return
        if self._last_key_pts is not None and frame.pts > self._last_key_pts:
            dist = int(round((frame.pts - self._last_key_pts) / self.frame_pts))
            self._gop = dist if self._gop == 1 and dist > 1 else min(self._gop, max(dist, 1))
        self._last_key_pts = frame.pts


def to_chw(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """RGB uint8 (3, H, W). libswscale converts (and resizes) in one pass straight to planar RGB
    ("gbrp"), so channels-first costs three contiguous plane copies instead of a strided transpose."""
    h, w = (frame.height, frame.width) if size is None else size
    if (frame.height, frame.width) == (h, w):
        planar = frame.reformat(format="gbrp")
    else:
        planar = frame.reformat(width=w, height=h, format="gbrp", interpolation="BILINEAR")
    out = np.empty((3, h, w), np.uint8)
    for channel, plane_no in enumerate((2, 0, 1)):          # gbrp planes are G, B, R
        plane = planar.planes[plane_no]
        out[channel] = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, :w]
    return out


def resize_hwc(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, h, w) uint8 with the same scaler as decoded video."""
    import av  # noqa: PLC0415 - PyAV loads only when video is decoded or encoded
    if size is None or rgb.shape[:2] == tuple(size):
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))
    return to_chw(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"), size)


class VideoCache:
    """Per-process LRU of open `FrameReader`s (file handles and decoder state survive between samples)."""

    def __init__(self, capacity: int = 8):
        self.capacity = max(1, capacity)
        self._readers: OrderedDict[str, FrameReader] = OrderedDict()

    def reader(self, path: "str | Path | Location") -> FrameReader:
        key = str(path)
        reader = self._readers.get(key)
        if reader is not None:
            self._readers.move_to_end(key)
            return reader
        reader = FrameReader(key)
        self._readers[key] = reader
        while len(self._readers) > self.capacity:
            _, old = self._readers.popitem(last=False)
            old.close()
        return reader

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
