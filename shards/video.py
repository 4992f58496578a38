"""Streaming video: decode a `VideoRef` → resize → encode, never through image files.

Decoder and encoder each run their own codec threads (PyAV releases the GIL inside
libavcodec/libswscale/SVT-AV1), so decode, resize and encode overlap across cores; an extra Python
decode thread is optional (`VideoConfig.decode_thread`) for hosts with cores to spare. Frames stay `av.VideoFrame`s end to end
(resized by libswscale straight to the encoder's pixel format); numpy copies are made only when
a consumer (the Zarr writer) asks for them.
"""
from __future__ import annotations

import io
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
from shards import objectstore

if TYPE_CHECKING:          # PyAV is imported where video is decoded or encoded, not by readers of vectors
    import av


@dataclass(frozen=True)
class VideoConfig:
    """Output video settings. Defaults are LeRobot's: AV1 (SVT), crf 30, GOP 2, preset 12."""

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
        return opts


_END = object()


def _decode_file(ref: VideoRef, width: int, height: int, pix_fmt: str) -> Iterator[av.VideoFrame]:
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
        try:
            for frame in container.decode(stream):
                yield frame.reformat(width=width, height=height, format=pix_fmt)
        except av.FFmpegError as exc:
            raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, f"video {ref.uri} is corrupt: {exc}") from exc


def _decode_images(ref: VideoRef, width: int, height: int, pix_fmt: str) -> Iterator[av.VideoFrame]:
    import av  # noqa: PLC0415 - PyAV loads only when video is decoded or encoded
    from PIL import Image

    is_remote = remote.is_url(ref.uri)
    handle = remote.open_remote(ref.uri) if is_remote and ref.member_of_zip else None
    archive = zipfile.ZipFile(handle if handle is not None else ref.uri) if ref.member_of_zip else None
    fetched = objectstore.prefetch(ref.uri, ref.frames) if is_remote and not archive else None
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
            yield av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=width, height=height, format=pix_fmt)
    finally:
        if archive:
            archive.close()
        if handle is not None:
            handle.close()


def iter_frames(ref: VideoRef, width: int, height: int, pix_fmt: str = "yuv420p",
                prefetch: int = 8, threaded: bool = False) -> Iterator[av.VideoFrame]:
    """Resized frames of `ref` (optionally decoded in a background thread). Raises EpisodeError on bad media."""
    source = _decode_file if ref.kind == "video" else _decode_images
    if not threaded:
        yield from source(ref, width, height, pix_fmt)
        return
    frames: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        try:
            for frame in source(ref, width, height, pix_fmt):
                while not stop.is_set():
                    try:
                        frames.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            frames.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            frames.put(exc)

    thread = threading.Thread(target=produce, name=f"decode-{ref.camera}", daemon=True)
    thread.start()
    try:
        while True:
            item = frames.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class EpisodeEncoder:
    """Encodes one episode's frames into one MP4 (the caller deletes it if the episode fails)."""

    def __init__(self, path: Path, fps: float, config: VideoConfig):
        import av  # noqa: PLC0415 - PyAV loads only when video is decoded or encoded
        self.path = path
        self.config = config
        self.container = av.open(str(path), "w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream(config.codec, rate=rate, options=config.encoder_options())
        self.stream.width, self.stream.height = config.width, config.height
        self.stream.pix_fmt = config.pix_fmt
        self.time_base = Fraction(1, int(round(fps))) if float(rate).is_integer() else 1 / rate
        self.stream.codec_context.time_base = self.time_base
        self.frames = 0

    def add(self, frame: av.VideoFrame) -> None:
        frame.pts = self.frames
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - best effort; the file is deleted next
            pass
        self.path.unlink(missing_ok=True)


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")
