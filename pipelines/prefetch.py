"""Overlap the next episode's reading and video decoding with the current episode's encoding.

On a 2-core host the serial codec loop (decode → resize → encode, one episode after another) leaves a
core idle whenever one side waits for the other: the 1080p H.264 decoder is single-threaded (one
slice), container opening costs a decoder start-up per file, and the HDF5 read, validation and
container probe of the next episode sit between two episodes' codec work. Here one background thread
runs, for each episode in order, `load` (read + transforms) and then decodes its cameras into bounded
`shards.video.FrameFeed`s, while the caller's thread (the shard writer) resizes and encodes. The writer
finds the frames through `shards.video.iter_frames` exactly as if it had decoded them itself, so the
output bytes do not depend on this module: only when the work happens does.

Why the resize runs on the writer's side: the decoder is the critical path (1080p H.264: ~5 ms a frame,
against ~3 ms of encoding spread over the encoder's threads), and libswscale's 1080p → 224 resize
(~1.9 ms a frame) done in the decoding thread made that path ~35 % longer while the writer's thread
sat waiting for frames.

Memory: at most `EPISODES_AHEAD` loaded episodes plus `FRAMES_AHEAD` decoded, not yet resized frames
per camera (1080p yuv420p: 3.1 MB a frame, so ~100 MB) wait for the writer.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, Sequence

from schemas.episode import Episode, Rejected, SourceRef
from shards.video import FrameFeed, VideoConfig, offer, withdraw

EPISODES_AHEAD = 1      # loaded episodes waiting for the writer (beyond the one it is writing)
FRAMES_AHEAD = 32       # decoded, not yet resized frames per camera waiting for the encoder

_END = object()


def decoded_ahead(refs: Sequence[SourceRef], load: Callable[[SourceRef], Episode | Rejected], video: VideoConfig,
                  frames_ahead: int = FRAMES_AHEAD) -> Iterator[Episode | Rejected]:
    """`load(ref)` for each ref, in order, with each loaded episode's frames already decoding.

    A loaded episode is yielded as soon as it is read, and its decode continues while the writer works
    on it; the next one is read and decoded as soon as the producer has finished this one's frames. An
    episode's frames that the writer never asked for (it rejected the episode before the video, or gave up
    in the middle) are dropped when the writer asks for the next episode."""
    if not refs:
        return
    items: queue.Queue = queue.Queue(maxsize=EPISODES_AHEAD)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for ref in refs:
                item = load(ref)
                feeds = _feeds_for(item, video, frames_ahead)
                if not put((item, feeds)):
                    for feed in feeds:     # stopped: nobody will take them
                        withdraw(feed)
                    return
                for feed in feeds:         # the writer reads cameras in this order too
                    if stop.is_set():
                        return
                    feed.fill()
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer's thread
            put(exc)

    thread = threading.Thread(target=produce, name="load-decode", daemon=True)
    thread.start()
    previous: list[FrameFeed] = []
    try:
        while True:
            for feed in previous:       # the writer is done with that episode: free the producer
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
        _drain(items)               # unblocks a producer waiting to hand over the next episode
        thread.join(timeout=10)
        _drain(items)


def _feeds_for(item: Episode | Rejected, video: VideoConfig, frames_ahead: int) -> list[FrameFeed]:
    """One offered feed per camera of a loaded episode, in the writer's camera order (sorted keys)."""
    if isinstance(item, Rejected):
        return []
    feeds = []
    for _, ref in sorted(item.videos.items()):
        feed = FrameFeed(ref, video.width, video.height, video.pix_fmt, maxsize=frames_ahead, resize_on_take=True)
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
