"""Streaming video: decode a `VideoRef` → resize → encode, never through image files.

Decoder and encoder each run their own codec threads (PyAV releases the GIL inside
libavcodec/libswscale/SVT-AV1), so decode, resize and encode overlap across cores; an extra Python
decode thread is optional (`VideoConfig.decode_thread`) for hosts with cores to spare. An ingest job
decodes the next episodes ahead instead (`pipelines/prefetch.py` fills `FrameFeed`s that `iter_frames`
takes over). Frames stay `av.VideoFrame`s end to end
(resized by libswscale straight to the encoder's pixel format, one scaler per video: `frame.reformat`
builds a new one for every frame, ~5 % of the resize's CPU at 1080p → 224²); numpy copies are made only when
a consumer (the Zarr writer) asks for them.
"""
from __future__ import annotations

import io
import os
import queue
import threading
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from schemas.episode import EpisodeError, RejectReason, VideoRef
from schemas import remote
from schemas.video_codecs import x264_options
from shards import objectstore
from shards.scheduling import encoder_threads_policy, scheduling_kept

if TYPE_CHECKING:          # PyAV is imported where video is decoded or encoded, not by readers of vectors
    import av


@dataclass(frozen=True)
class VideoConfig:
    """Output video settings. Defaults are LeRobot's: AV1 (SVT), crf 30, GOP 2, preset 12. SVT-AV1 3.0 (the
    one PyAV's wheels bundle) runs presets 11-13 as 10 in random-access mode, for LeRobot's writer too."""

    width: int = 224
    height: int = 224
    codec: str = "libsvtav1"
    crf: int = 30
    gop: int = 2
    preset: int = 12
    pix_fmt: str = "yuv420p"
    threads: int = 0           # encoder threads (0 = codec default)
    decode_thread: bool = False  # decode in a separate Python thread (helps on many-core hosts; on 2 cores
    #                              the codecs' own threads already use both, and the hand-off costs ~10 %)

    @property
    def codec_label(self) -> str:
        return {"libsvtav1": "av1", "libaom-av1": "av1", "libx264": "h264", "h264": "h264", "hevc": "hevc",
                "libx265": "hevc"}.get(self.codec, self.codec)

    def encoder_options(self) -> dict[str, str]:
        opts = {"crf": str(self.crf), "g": str(self.gop)}
        if self.codec == "libsvtav1":
            opts["preset"] = str(self.preset)
            opts["svtav1-params"] = "lp=2"
        elif self.codec == "libx264":
            opts["preset"] = "veryfast"
            opts["threads"] = str(self.threads or 2)
            opts |= x264_options()                  # same frames, same bytes (schemas.video_codecs)
        return opts


_END = object()


def _decode_file(ref: VideoRef, width: int, height: int, pix_fmt: str, threads: int = 0,
                 resize: bool = True) -> Iterator[av.VideoFrame]:
    import av  # noqa: PLC0415 - PyAV loads only when video is decoded or encoded
    # Object-store videos stream through a file object (sequential range reads): measured on loopback S3 as
    # fast as staging the file to local disk first, without the disk space or the extra copy.
    handle = None
    try:
        handle = remote.open_remote(ref.uri) if remote.is_url(ref.uri) else None
        container = av.open(handle if handle is not None else ref.uri)
    except Exception as exc:  # noqa: BLE001 - any open failure is a bad input
        if handle is not None:
            handle.close()
        raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"cannot open video {ref.uri}: {exc}") from exc
    with container, (handle if handle is not None else nullcontext()):
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"     # frame threads would fight the encoder for cores
        if threads:
            stream.thread_count = threads
        scaler = av.video.reformatter.VideoReformatter()
        try:
            for frame in container.decode(stream):
                yield scaler.reformat(frame, width=width, height=height, format=pix_fmt) if resize else frame
        except av.FFmpegError as exc:
            raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"video {ref.uri} is corrupt: {exc}") from exc


def _decode_images(ref: VideoRef, width: int, height: int, pix_fmt: str) -> Iterator[av.VideoFrame]:
    import av  # noqa: PLC0415 - PyAV loads only when video is decoded or encoded
    from PIL import Image

    is_remote = remote.is_url(ref.uri)
    handle = remote.open_remote(ref.uri) if is_remote and ref.member_of_zip else None
    archive = zipfile.ZipFile(handle if handle is not None else ref.uri) if ref.member_of_zip else None
    fetched = objectstore.prefetch(ref.uri, ref.frames) if is_remote and not archive else None
    scaler = av.video.reformatter.VideoReformatter()
    try:
        for name in ref.frames:
            try:
                if archive:
                    data = archive.read(name)
                elif fetched is not None:
                    data = next(fetched)
                else:
                    data = (Path(ref.uri) / name).read_bytes()
                with Image.open(io.BytesIO(data)) as img:
                    rgb = np.asarray(img.convert("RGB"))
            except Exception as exc:  # noqa: BLE001 - a missing/corrupt image is a bad input
                raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"frame {name} unreadable: {exc}") from exc
            yield scaler.reformat(av.VideoFrame.from_ndarray(rgb, format="rgb24"), width=width, height=height,
                                  format=pix_fmt)
    finally:
        if archive:
            archive.close()
        if handle is not None:
            handle.close()


def iter_frames(ref: VideoRef, width: int, height: int, pix_fmt: str = "yuv420p",
                prefetch: int = 8, threaded: bool = False) -> Iterator[av.VideoFrame]:
    """Resized frames of `ref` (optionally decoded in a background thread). Raises EpisodeError on bad media.

    If a `FrameFeed` for exactly this video and size was `offer`ed (a pipeline decoding the next episode
    while this one encodes), its frames are taken from there: same frames, decoded earlier."""
    feed = _take_feed(ref, width, height, pix_fmt)
    if feed is not None:
        yield from feed
        return
    if not threaded:
        yield from _decode(ref, width, height, pix_fmt)
        return
    feed = FrameFeed(ref, width, height, pix_fmt, maxsize=prefetch)
    thread = threading.Thread(target=feed.fill, name=f"decode-{ref.camera}", daemon=True)
    thread.start()
    try:
        yield from feed
    finally:
        feed.cancel()
        thread.join(timeout=5)


def _decode(ref: VideoRef, width: int, height: int, pix_fmt: str, threads: int = 0,
            resize: bool = True) -> Iterator[av.VideoFrame]:
    """Decoded frames of `ref`, resized unless `resize` is False (video files only: image frames are always
    resized, they are decoded one image at a time and small). `threads` caps a video file's decoder threads
    (0: FFmpeg's choice, one per core plus one)."""
    if ref.kind == "video":
        return _decode_file(ref, width, height, pix_fmt, threads, resize)
    return _decode_images(ref, width, height, pix_fmt)


class FrameFeed:
    """The resized frames of one video, decoded by a producer thread (`fill`) into a bounded queue and
    consumed, in order, by iterating. A decode error reaches the consumer at the frame where it happened,
    as it would without the thread. `cancel` stops the producer (the consumer gave up on the episode).

    Two shapes, same frames: `decoder_threads=1` decodes and resizes on the producer's thread alone (right
    when other feeds decode beside it: FFmpeg's slice threads then only add hand-offs); `resize_on_take`
    queues the frames as decoded and the consumer resizes them (same libswscale call), so a decoder with
    nothing beside it is not lengthened by the resize."""

    def __init__(self, ref: VideoRef, width: int, height: int, pix_fmt: str, maxsize: int, decoder_threads: int = 0,
                 resize_on_take: bool = False):
        self.key = _feed_key(ref, width, height, pix_fmt)
        self._ref, self._size, self._pix_fmt = ref, (width, height), pix_fmt
        self._decoder_threads = decoder_threads
        self._resize_on_take = resize_on_take and ref.kind == "video"
        self._frames: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()

    def fill(self) -> None:
        """Producer: decode every frame into the queue (blocks while it is full), then the end marker."""
        try:
            for frame in _decode(self._ref, *self._size, self._pix_fmt, self._decoder_threads,
                                 resize=not self._resize_on_take):
                if not self._put(frame):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[av.VideoFrame]:
        import av  # noqa: PLC0415 - PyAV loads only when video is decoded or encoded
        scaler = av.video.reformatter.VideoReformatter() if self._resize_on_take else None
        while True:
            item = self._frames.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            if scaler is not None:
                width, height = self._size
                item = scaler.reformat(item, width=width, height=height, format=self._pix_fmt)
            yield item

    def cancel(self) -> None:
        """Stop the producer and drop what it queued (idempotent)."""
        self._stop.set()
        while True:
            try:
                self._frames.get_nowait()
            except queue.Empty:
                return


_FEEDS: dict[tuple, list[FrameFeed]] = {}
_FEEDS_LOCK = threading.Lock()


def _feed_key(ref: VideoRef, width: int, height: int, pix_fmt: str) -> tuple:
    return (ref.kind, ref.uri, ref.camera, ref.member_of_zip, tuple(ref.frames or ()), width, height, pix_fmt)


def offer(feed: FrameFeed) -> None:
    """Make `feed` the source of the next `iter_frames` call for its video and size (first offered, first taken)."""
    with _FEEDS_LOCK:
        _FEEDS.setdefault(feed.key, []).append(feed)


def withdraw(feed: FrameFeed) -> None:
    """Take back an offered feed nobody consumed (its episode was rejected before its video was read)."""
    with _FEEDS_LOCK:
        waiting = _FEEDS.get(feed.key, [])
        if feed in waiting:
            waiting.remove(feed)
        if not waiting:
            _FEEDS.pop(feed.key, None)
    feed.cancel()


def _take_feed(ref: VideoRef, width: int, height: int, pix_fmt: str) -> FrameFeed | None:
    key = _feed_key(ref, width, height, pix_fmt)
    with _FEEDS_LOCK:
        waiting = _FEEDS.get(key)
        if not waiting:
            return None
        feed = waiting.pop(0)
        if not waiting:
            del _FEEDS[key]
        return feed


class EpisodeEncoder:
    """Encodes one episode's frames into one MP4 (the caller deletes it if the episode fails)."""

    def __init__(self, path: Path, fps: float, config: VideoConfig):
        import av  # noqa: PLC0415 - PyAV loads only when video is decoded or encoded
        if config.codec == "libsvtav1":
            # SVT-AV1 prints a 20-line banner to stderr per encoder opened (per episode) unless told not to;
            # errors only, unless the user set SVT_LOG themselves (read at SVT's first open in the process).
            os.environ.setdefault("SVT_LOG", "1")
        self.path = path
        self.config = config
        self.container = av.open(str(path), "w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream(config.codec, rate=rate, options=config.encoder_options())
        self.stream.width, self.stream.height = config.width, config.height
        self.stream.pix_fmt = config.pix_fmt
        self.time_base = Fraction(1, int(round(fps))) if float(rate).is_integer() else 1 / rate
        self.stream.codec_context.time_base = self.time_base
        # SVT-AV1 would make this thread and its own ones SCHED_FIFO 99; its own become batch threads (or this
        # thread's real-time policy inside `realtime_codecs`)
        with scheduling_kept(new_threads=encoder_threads_policy()):
            self.stream.codec_context.open()
        self.frames = 0

    def add(self, frame: av.VideoFrame) -> None:
        frame.pts = self.frames
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        """Drain the encoder, write the MP4's index, and free the codec (SVT-AV1's threads and buffers: ~3 ms)
        here, in the closing thread, rather than wherever the last reference happens to drop."""
        self.container.mux(self.stream.encode(None))
        self.container.close()
        self.container = self.stream = None

    def abort(self) -> None:
        try:
            if self.container is not None:
                self.container.close()
        except Exception:  # noqa: BLE001 - best effort; the file is deleted next
            pass
        self.container = self.stream = None
        self.path.unlink(missing_ok=True)


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")
