"""Overlap the next episodes' reading and video decoding with the current episode's encoding.

On a 2-core host the serial codec loop (decode → resize → encode, one episode after another) leaves a
core idle whenever one side waits for the other: one video's H.264 decode is largely one thread's serial
work (FFmpeg's slice threads help only as far as the stream has slices); each file costs a container open
and a decoder start-up; SVT-AV1 drains its last frames at each episode's end before the next encoder fills; and the
HDF5 read, validation and container probe of the next episode sit between two episodes' codec work.

Here a loader thread runs `load` (read + transforms) for each episode in order and hands it to the
caller's thread (the shard writer), while `DECODERS` decoder threads decode and resize the loaded
episodes' cameras, each into its own bounded `shards.video.FrameFeed`, taking the feeds in episode order.
So while the writer encodes episode n (decoded by one thread), the next thread is already decoding
episode n+1: two decoders run side by side, as two independent serial loops would, and every boundary
(encoder drain, container open, HDF5 read) has other work beside it. The writer finds the frames
through `shards.video.iter_frames` exactly as if it had decoded them itself, so the output bytes do not
depend on this module: only when the work happens does.

Why the resize runs in the decoder threads: with one decoder thread, decode was the critical path and
the resize (libswscale 1080p → 224, ~1 ms a frame) ran on the writer's side to keep it short; with two,
neither decoder is the pace, and a resized frame is ~40x smaller to keep queued (224² yuv420p: 75 kB).
Why each decoder runs on its own thread only (FFmpeg's slice threads off): two decoders already keep the
cores busy, and slice threads cost ~4 % more CPU in hand-offs (same frames). A shard of one episode has
nothing to decode beside it, so its feed keeps the one-decoder shape instead (FFmpeg's threads, the
writer resizes): 277 vs 262 frames/s for one-episode shards, level with stop 29's code (272-273 vs
270-272 in alternated processes).

Memory: the writer's episode, `EPISODES_AHEAD` loaded episodes waiting for it and the one the loader
holds, each with at most `EPISODE_BYTES` of resized frames queued (split between its cameras, at least
`MIN_FRAMES_AHEAD` a camera; a one-episode shard's source-size frames count the same bytes: ~10 at 1080p):
~100 MB whatever the episodes' length (one decoder with 32 source-sized 1080p frames queued held about as
much).
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, Sequence

from schemas.episode import Episode, Rejected, SourceRef, VideoRef
from shards.video import FrameFeed, VideoConfig, offer, withdraw

EPISODES_AHEAD = 1       # loaded episodes waiting for the writer (beyond the one it is writing)
DECODERS = 2             # episodes decoded at once: the writer's and the next one
EPISODE_BYTES = 32 << 20  # resized frames queued per episode (224² yuv420p, one camera: 445 frames, ~15 s)
MIN_FRAMES_AHEAD = 8

_END = object()


def frames_ahead_for(video: VideoConfig, cameras: int = 1) -> int:
    """Frames each of an episode's camera feeds may queue: `EPISODE_BYTES` of frames at the output size
    shared by its cameras."""
    return _frames_in_budget(video.width, video.height, cameras)


def _source_frames_ahead(ref: VideoRef, cameras: int, video: VideoConfig) -> int:
    """Frames a resize-on-take feed may queue: they wait at the source's size (an image feed's are resized)."""
    if ref.kind != "video" or not ref.width or not ref.height:
        return frames_ahead_for(video, cameras)
    return _frames_in_budget(ref.width, ref.height, cameras)


def _frames_in_budget(width: int, height: int, cameras: int) -> int:
    """How many yuv420p frames (1.5 bytes a pixel) of one camera fit its share of `EPISODE_BYTES`."""
    frame_bytes = max(1, width * height * 3 // 2) * max(1, cameras)
    return max(MIN_FRAMES_AHEAD, EPISODE_BYTES // frame_bytes)


def decoded_ahead(refs: Sequence[SourceRef], load: Callable[[SourceRef], Episode | Rejected], video: VideoConfig,
                  frames_ahead: int | None = None, decoders: int = DECODERS,
                  early: Callable[[SourceRef], dict[str, VideoRef] | None] | None = None) -> Iterator[Episode | Rejected]:
    """`load(ref)` for each ref, in order, with each loaded episode's frames already decoding.

    A loaded episode is yielded as soon as it is read, and its decode continues while the writer works
    on it. An episode's frames that the writer never asked for (it rejected the episode before the video,
    or gave up in the middle) are dropped when the writer asks for the next episode. `frames_ahead`: the
    frames each camera feed may queue (default: `frames_ahead_for` the episode's cameras). `early` (a source's
    `videos`): the first episode's cameras before it is loaded, so its decode starts while `load` runs
    (nothing else is decoding yet); dropped unless `load` returns exactly those cameras."""
    if not refs:
        return
    decoders = max(1, decoders)
    items: queue.Queue = queue.Queue(maxsize=EPISODES_AHEAD)
    to_decode: queue.Queue = queue.Queue()       # feeds in episode and camera order; None ends a decoder
    stop = threading.Event()
    alone = len(refs) == 1 or decoders < 2        # no episode decodes beside another

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def load_all() -> None:
        try:
            for k, ref in enumerate(refs):
                if stop.is_set():
                    return
                announced = _announced(early, ref) if k == 0 and early is not None else None
                started = _feeds_for(announced, video, frames_ahead, alone) if announced else []
                for feed in started:
                    to_decode.put(feed)
                item: Episode | Rejected | None = None
                try:
                    item = load(ref)
                finally:        # an early decode is kept only if load returned exactly those cameras
                    if started and not (isinstance(item, Episode) and item.videos == announced):
                        for feed in started:
                            withdraw(feed)
                        started = []
                feeds = started
                if not feeds and isinstance(item, Episode):
                    feeds = _feeds_for(item.videos, video, frames_ahead, alone)
                    for feed in feeds:
                        to_decode.put(feed)
                if not put((item, feeds)):
                    for feed in feeds:     # stopped: nobody will take them
                        withdraw(feed)
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer's thread
            put(exc)
        finally:
            for _ in range(decoders):
                to_decode.put(None)

    def decode_all() -> None:
        while (feed := to_decode.get()) is not None:
            if not stop.is_set():
                feed.fill()              # errors travel in the feed, to the writer at that frame

    threads = [threading.Thread(target=load_all, name="prefetch-load", daemon=True)]
    threads += [threading.Thread(target=decode_all, name=f"prefetch-decode-{i}", daemon=True)
                for i in range(decoders)]
    for thread in threads:
        thread.start()
    previous: list[FrameFeed] = []
    try:
        while True:
            for feed in previous:       # the writer is done with that episode: free its decoder
                withdraw(feed)
            previous = []
            got = items.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            item, previous = got
            yield item
    finally:
        stop.set()
        for feed in previous:
            withdraw(feed)
        _drain(items)               # unblocks a loader waiting to hand over the next episode
        threads[0].join(timeout=10)
        _drain(items)
        _cancel_queued(to_decode)   # feeds loaded but never handed over: their decoders stop at once
        for thread in threads[1:]:
            thread.join(timeout=10)


def _announced(early: Callable[[SourceRef], dict[str, VideoRef] | None], ref: SourceRef) -> dict[str, VideoRef] | None:
    """The source's early view of an episode's cameras; None if it has none or fails (`load` then decides)."""
    try:
        return early(ref) or None
    except Exception:  # noqa: BLE001 - only a head start: `load` reads the episode and rejects it with a reason
        return None


def _feeds_for(videos: dict[str, VideoRef], video: VideoConfig, frames_ahead: int | None,
               alone: bool) -> list[FrameFeed]:
    """One offered feed per camera of an episode, in the writer's camera order (sorted keys)."""
    feeds = []
    for _, ref in sorted(videos.items()):
        if alone:       # no other episode decodes beside this one: FFmpeg's threads, and the writer resizes
            ahead = frames_ahead or _source_frames_ahead(ref, len(videos), video)
            feed = FrameFeed(ref, video.width, video.height, video.pix_fmt, maxsize=ahead, resize_on_take=True)
        else:
            ahead = frames_ahead or frames_ahead_for(video, len(videos))
            feed = FrameFeed(ref, video.width, video.height, video.pix_fmt, maxsize=ahead, decoder_threads=1)
        offer(feed)
        feeds.append(feed)
    return feeds


def _drain(items: queue.Queue) -> None:
    while True:
        try:
            got = items.get_nowait()
        except queue.Empty:
            return
        if isinstance(got, tuple):
            for feed in got[1]:
                withdraw(feed)


def _cancel_queued(to_decode: queue.Queue) -> None:
    """Withdraw the feeds still waiting for a decoder, keeping the decoders' end markers in the queue."""
    kept = 0
    while True:
        try:
            feed = to_decode.get_nowait()
        except queue.Empty:
            break
        if feed is None:
            kept += 1
        else:
            withdraw(feed)
    for _ in range(kept):
        to_decode.put(None)
