"""Every psi0 writer of H.264 gives the same bytes for the same frames, whatever this process did before.

On this project's AVX-512 machines x264 made the same frames encode to different bytes from one call to the
next once a GOP was longer than 2 frames: the output followed the heap's earlier contents
(schemas/video_codecs.py). Found as a flaky `psi0 sample` same-seed test. Each writer here encodes the same
frames 24 times with the heap disturbed between calls; without `schemas.video_codecs.x264_options` the module
failed in 13 of 15 runs (2-3 of its 3 tests each time). On a CPU without AVX-512 it passes either way."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from samples import egodex as egodex_sample
from shards.video import EpisodeEncoder, VideoConfig
from sim.media import write_mp4 as sim_write_mp4

REPEATS = 24


def _frames(width: int, height: int, n: int = 20) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def _digests_with_the_heap_disturbed(write, tmp_path: Path) -> set[str]:
    digests, held = set(), []
    for k in range(REPEATS):
        held.append(np.random.default_rng(k).integers(0, 255, (k * 977) % 50_000 + 1_000, dtype=np.uint8).tobytes())
        path = tmp_path / f"{k}.mp4"
        write(path)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return digests


def test_sim_recordings_are_deterministic(tmp_path):
    frames = _frames(96, 54)
    assert len(_digests_with_the_heap_disturbed(lambda p: sim_write_mp4(p, frames), tmp_path)) == 1


def test_sample_videos_are_deterministic(tmp_path):
    rng = np.random.default_rng([7, 2, 0])
    ep = egodex_sample.make_episode(rng, sorted(egodex_sample.TASKS)[2], 0, 24, (96, 54))
    assert len(_digests_with_the_heap_disturbed(lambda p: egodex_sample.write_mp4(p, ep, seed=7002), tmp_path)) == 1


def test_ingest_h264_with_a_long_gop_is_deterministic(tmp_path):
    import av

    frames = [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p") for f in _frames(96, 54)]
    config = VideoConfig(width=96, height=54, codec="libx264", gop=30)

    def write(path: Path) -> None:
        encoder = EpisodeEncoder(path, 30.0, config)
        for frame in frames:
            encoder.add(frame)
        encoder.close()

    assert len(_digests_with_the_heap_disturbed(write, tmp_path)) == 1
