"""Issue 18 items 1-3: the decode-ahead ingest pipeline writes what the serial path writes, survives
rejects and early stops without leaking threads; the direct Zarr frame reader returns zarr's frames;
the benchmarks' protocol helpers and JSON keys."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipelines.prefetch import decoded_ahead
from pipelines.stages import JobConfig, build_transforms, discover, load
from samples import egodex as egodex_sample
from shards import video as video_mod
from shards.formats.zarr_frames import ShardedFrames
from shards.writer import write_shard

REPO = Path(__file__).resolve().parent.parent


def _benchmark(name: str):
    """Import benchmarks/<name>.py by path (putting benchmarks/ on sys.path would shadow stdlib `tokenize`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def egodex_src(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("egodex-src")
    egodex_sample.write_sample(src, 0, (160, 120), episodes_per_task=1, seconds=1.0)
    return src


def _job(src: Path, out: Path) -> tuple[JobConfig, list, object]:
    cfg = JobConfig(source="egodex", input=str(src), output=str(out), formats=("lerobot", "zarr"), tokenize=False,
                    video_width=64, video_height=64)
    return cfg, discover(cfg), build_transforms(cfg, None)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _loader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("prefetch-") and t.is_alive()]


def _wait_no_loader_threads(limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while _loader_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _loader_threads()


def test_decode_ahead_writes_the_serial_paths_bytes(egodex_src, tmp_path):
    cfg, refs, transforms = _job(egodex_src, tmp_path / "a")
    serial = write_shard((load(r, cfg, transforms) for r in refs), tmp_path / "serial", "s-00000",
                         cfg.shard_config())
    ahead = write_shard(decoded_ahead(refs, lambda r: load(r, cfg, transforms), cfg.shard_config().video),
                        tmp_path / "ahead", "s-00000", cfg.shard_config())
    assert serial.fates == ahead.fates and all(f["status"] == "ingested" for f in ahead.fates.values())
    assert len(ahead.fates) == len(refs) == 3
    assert _files(tmp_path / "serial" / "shards") == _files(tmp_path / "ahead" / "shards")
    assert not video_mod._FEEDS
    _wait_no_loader_threads()


def test_an_episode_rejected_before_its_video_frees_its_decoded_frames(egodex_src, tmp_path):
    """The writer rejects episode 1 (fps differs from the shard's) without reading its frames; with a
    frame queue smaller than an episode the producer would block forever on them if they were not dropped."""
    cfg, refs, transforms = _job(egodex_src, tmp_path / "a")

    def load_with_odd_fps(ref):
        ep = load(ref, cfg, transforms)
        if ref is refs[1]:
            ep.meta.fps = ep.meta.fps * 2
        return ep

    result = write_shard(decoded_ahead(refs, load_with_odd_fps, cfg.shard_config().video, frames_ahead=2),
                         tmp_path / "out", "s-00000", cfg.shard_config())
    statuses = [result.fates[r.source_id]["status"] for r in refs]
    assert statuses == ["ingested", "rejected", "ingested"]
    assert result.fates[refs[1].source_id]["reason"] == "fps_mismatch"
    assert not video_mod._FEEDS
    _wait_no_loader_threads()


def test_a_decode_error_reaches_the_writer_as_that_episodes_reject(egodex_src, tmp_path):
    src = tmp_path / "src"
    egodex_sample.write_sample(src, 0, (160, 120), episodes_per_task=1, seconds=1.0)
    cfg, refs, transforms = _job(src, tmp_path / "a")
    episodes = [load(r, cfg, transforms) for r in refs]
    video = Path(episodes[0].videos["observation.images.egocentric"].uri)
    data = bytearray(video.read_bytes())
    start = len(data) // 3
    data[start:start + len(data) // 3] = bytes(len(data) // 3)   # header intact, frames garbage
    video.write_bytes(bytes(data))
    ahead = write_shard(decoded_ahead(refs, lambda r: episodes[refs.index(r)], cfg.shard_config().video),
                        tmp_path / "ahead", "s-00000", cfg.shard_config())
    serial = write_shard(iter(episodes), tmp_path / "serial", "s-00000", cfg.shard_config())
    assert ahead.fates == serial.fates
    assert ahead.fates[refs[0].source_id]["status"] == "rejected"
    assert [ahead.fates[r.source_id]["status"] for r in refs[1:]] == ["ingested", "ingested"]
    _wait_no_loader_threads()


def test_stopping_early_stops_the_producer(egodex_src, tmp_path):
    cfg, refs, transforms = _job(egodex_src, tmp_path / "a")
    items = decoded_ahead(refs, lambda r: load(r, cfg, transforms), cfg.shard_config().video, frames_ahead=1)
    first = next(items)
    assert first.meta.source_id == refs[0].source_id
    items.close()                       # the writer failed: nobody reads the rest
    assert not video_mod._FEEDS
    _wait_no_loader_threads()


def test_direct_zarr_frames_equal_zarrs_and_other_layouts_fall_back(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (37, 8, 6, 3), dtype=np.uint8)
    frames[5] = 0                                    # written as all fill value: zarr may store no chunk
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    from zarr.codecs import BloscCodec
    arr = group.create_array("img", shape=frames.shape, dtype=np.uint8, chunks=(1, 8, 6, 3), shards=(16, 8, 6, 3),
                             compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"), fill_value=0)
    arr[...] = frames
    direct = ShardedFrames.open(tmp_path / "s.zarr" / "img")
    assert direct is not None
    for row in range(len(frames)):
        assert np.array_equal(direct.frame(row), frames[row]), row
    with pytest.raises(IndexError):
        direct.frame(len(frames))
    plain = group.create_array("plain", shape=frames.shape, dtype=np.uint8, chunks=(4, 8, 6, 3), fill_value=0)
    plain[...] = frames
    assert ShardedFrames.open(tmp_path / "s.zarr" / "plain") is None         # not sharded: zarr reads it
    assert ShardedFrames.open(tmp_path / "s.zarr" / "missing") is None


def test_benchmark_protocol_rotates_order_and_reports_every_ratio():
    ingest = _benchmark("ingest")

    paths = list(ingest.PATHS)
    orders = [ingest.rotated(paths, r) for r in range(len(paths))]
    for name in paths:                   # every path visits every position once over len(paths) rounds
        assert sorted(o.index(name) for o in orders) == list(range(len(paths)))
    times = {name: [2.0, 1.0, 3.0] for name in paths}
    times["psi0"] = [1.0, 1.5, 0.5]
    cpu = {name: [3.0, 1.0, 6.0] for name in paths}
    cpu["psi0"] = [1.8, 2.7, 1.0]
    out = ingest.summarize(600, times, cpu)
    assert out["psi0_fps"] == 600.0 and out["psi0_fps_range"] == [400.0, 1200.0]
    for key in ("vs_floor", "vs_lerobot_streaming", "vs_lerobot_default", "vs_ffmpeg", "vs_floor_parallel"):
        assert out[key] == 2.0
    assert out["vs_pipeline_shape"] == 2.0 and out["pipeline_shape_vs_floor_parallel"] == 1.0
    assert out["psi0_ordinary_vs_lerobot_streaming"] == 1.0
    times["floor_parallel"] = [1.0, 0.5, 2.0]                                 # median 1.0 vs streaming's 2.0
    again = ingest.summarize(600, times, cpu)
    assert again["floor_parallel_vs_lerobot_streaming"] == 2.0 and again["pipeline_shape_vs_floor_parallel"] == 0.5
    assert out["psi0_cpu_s"] == 1.8 and out["psi0_cores_busy"] == 1.8        # medians of 1.8/1, 2.7/1.5, 1/0.5
    assert out["floor_cpu_s"] == 3.0 and out["floor_cores_busy"] == 1.5


@pytest.mark.slow
def test_ingest_benchmark_quick_prints_the_ratios():
    """`--realtime off` (every path as an unprivileged user's): the default differs by not giving it up."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ingest.py"), "--quick", "--realtime", "off"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("vs_floor", "vs_lerobot_streaming", "vs_lerobot_default", "vs_ffmpeg", "vs_floor_parallel",
                "vs_pipeline_shape", "floor_parallel_vs_lerobot_streaming", "pipeline_shape_vs_floor_parallel",
                "pose_reads_s", "pose_reads_cpu_s"):
        assert result[key] > 0
    assert result["frames"] > 0 and result["rounds"] == 1 and result["realtime_allowed"] is False
    assert result["psi0_realtime"] == 0 and "psi0_ordinary_fps" not in result       # the psi0 run, here
    for path in set(_benchmark("ingest").PATHS) - {"psi0_ordinary"}:                   # ffmpeg's in its children
        assert result[f"{path}_cpu_s"] > 0 and result[f"{path}_cores_busy"] > 0


def test_floor_parallel_does_the_floors_work(egodex_src, tmp_path):
    """The parallel floor bounds what scheduling alone can gain, so it must do exactly the floor's work:
    the same MP4 bytes for every episode, only in another order of time."""
    ingest = _benchmark("ingest")
    videos = sorted(egodex_src.rglob("*.mp4"))
    ingest.bench_floor(egodex_src, videos, tmp_path / "serial")
    ingest.bench_floor_parallel(egodex_src, videos, tmp_path / "parallel")
    serial, parallel = _files(tmp_path / "serial"), _files(tmp_path / "parallel")
    assert len(serial) == len(videos) >= 2 and serial == parallel


def _av1_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(video=0) if packet.size]


def test_pipeline_shape_does_the_floors_codec_work(egodex_src, tmp_path):
    """The shape path splits psi0's distance to the parallel floor, so it must encode exactly the floor's
    frames: the same AV1 packets for every episode (the MP4 boxes around them are psi0's muxer settings)."""
    ingest = _benchmark("ingest")
    videos = sorted(egodex_src.rglob("*.mp4"))
    ingest.bench_floor(egodex_src, videos, tmp_path / "serial")
    ingest.bench_pipeline_shape(egodex_src, videos, tmp_path / "shape")
    assert not [t for t in threading.enumerate() if t.name.startswith("shape-")]     # its decoders ended
    for k in range(len(videos)):
        floor = _av1_packets(tmp_path / "serial" / f"{k}.mp4")
        assert len(floor) > 1 and _av1_packets(tmp_path / "shape" / f"{k}.mp4") == floor


def test_scale_reports_each_childs_own_peak_rss(tmp_path):
    """A small child run after a big one reports its own peak, not the big one's (RUSAGE_CHILDREN would),
    and not this test process's (a forked child's ru_maxrss would)."""
    scale = _benchmark("scale")
    for mb in (300, 10):
        (tmp_path / f"alloc{mb}.py").write_text(f"import numpy as np\nprint(np.ones(({mb} << 20,), np.uint8).sum())\n")
    big = scale.run_child([str(tmp_path / "alloc300.py")])[1] / 1024
    small = scale.run_child([str(tmp_path / "alloc10.py")])[1] / 1024
    assert big > 300 and small < 100, (big, small)
    (tmp_path / "fail.py").write_text("raise SystemExit(3)\n")
    with pytest.raises(subprocess.CalledProcessError):
        scale.run_child([str(tmp_path / "fail.py")])


def test_a_single_threaded_decoder_gives_ffmpegs_frames(egodex_src):
    """The decode-ahead feeds turn FFmpeg's slice threads off (two decoders already keep the cores busy);
    the frames must be byte for byte those of the default decoder, through the feed's queue."""
    cfg, refs, transforms = _job(egodex_src, egodex_src / "unused")
    ref = load(refs[0], cfg, transforms).videos["observation.images.egocentric"]
    serial = [f.to_ndarray().tobytes() for f in video_mod.iter_frames(ref, 64, 64)]
    feed = video_mod.FrameFeed(ref, 64, 64, "yuv420p", maxsize=len(serial) + 1, decoder_threads=1)
    feed.fill()                                   # decodes everything into the queue (it has room)
    queued = list(feed._frames.queue)[:-1]        # the last item is the end marker: the frames wait resized
    assert len(queued) == len(serial) and {(f.width, f.height) for f in queued} == {(64, 64)}
    assert [f.to_ndarray().tobytes() for f in feed] == serial


def test_resize_on_take_queues_decoded_frames_and_yields_the_resized_ones(egodex_src):
    """A one-episode shard's feed keeps the resize off the decoding thread: what waits in its queue is the
    source-sized frame, what the writer gets is byte for byte the frame the serial path resizes."""
    cfg, refs, transforms = _job(egodex_src, egodex_src / "unused")
    ref = load(refs[0], cfg, transforms).videos["observation.images.egocentric"]
    serial = [f.to_ndarray().tobytes() for f in video_mod.iter_frames(ref, 64, 64)]
    feed = video_mod.FrameFeed(ref, 64, 64, "yuv420p", maxsize=len(serial) + 1, resize_on_take=True)
    feed.fill()                                   # decodes everything into the queue (it has room)
    queued = list(feed._frames.queue)[:-1]        # the last item is the end marker
    assert len(queued) == len(serial) and {(f.width, f.height) for f in queued} == {(160, 120)}
    assert [f.to_ndarray().tobytes() for f in feed] == serial


def test_a_one_episode_shard_decodes_ahead_to_the_serial_bytes(egodex_src, tmp_path):
    cfg, refs, transforms = _job(egodex_src, tmp_path / "a")
    serial = write_shard((load(r, cfg, transforms) for r in refs[:1]), tmp_path / "serial", "s-00000",
                         cfg.shard_config())
    ahead = write_shard(decoded_ahead(refs[:1], lambda r: load(r, cfg, transforms), cfg.shard_config().video),
                        tmp_path / "ahead", "s-00000", cfg.shard_config())
    assert serial.fates == ahead.fates and [f["status"] for f in ahead.fates.values()] == ["ingested"]
    assert _files(tmp_path / "serial" / "shards") == _files(tmp_path / "ahead" / "shards")
    assert not video_mod._FEEDS
    _wait_no_loader_threads()


def test_the_next_episode_decodes_while_the_writer_holds_this_one(egodex_src, tmp_path):
    """Two episodes decode at once: with a frame queue far smaller than an episode and the writer not yet
    reading episode 0's frames, episode 1's frames are decoded anyway (a single decoder would sit blocked
    on episode 0's full queue). Then every frame still arrives, in order."""
    cfg, refs, transforms = _job(egodex_src, tmp_path / "a")
    items = decoded_ahead(refs, lambda r: load(r, cfg, transforms), cfg.shard_config().video, frames_ahead=2)
    first = next(items)
    second_video = load(refs[1], cfg, transforms).videos["observation.images.egocentric"].uri
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with video_mod._FEEDS_LOCK:
            waiting = [feed for feeds in video_mod._FEEDS.values() for feed in feeds]
        queued = {feed.key[1]: feed._frames.qsize() for feed in waiting}
        if queued.get(second_video, 0) == 2:
            break
        time.sleep(0.02)
    assert queued.get(second_video) == 2, queued
    ref = first.videos["observation.images.egocentric"]
    serial = [f.to_ndarray().tobytes() for f in video_mod._decode(ref, 64, 64, "yuv420p")]
    assert [f.to_ndarray().tobytes() for f in video_mod.iter_frames(ref, 64, 64)] == serial
    rest = list(items)
    assert [ep.meta.source_id for ep in rest] == [r.source_id for r in refs[1:]]
    assert not video_mod._FEEDS
    _wait_no_loader_threads()


def test_frames_queued_ahead_are_bounded_in_bytes_per_episode():
    from pipelines.prefetch import EPISODE_BYTES, MIN_FRAMES_AHEAD, frames_ahead_for
    from shards.video import VideoConfig

    frame = 224 * 224 * 3 // 2
    one = frames_ahead_for(VideoConfig(width=224, height=224))
    assert one * frame <= EPISODE_BYTES < (one + 1) * frame
    assert one >= 300                                     # ~10 s of 30 fps video: a typical episode fits
    four = frames_ahead_for(VideoConfig(width=224, height=224), cameras=4)
    assert 4 * four * frame <= EPISODE_BYTES < 4 * (four + 1) * frame       # cameras share the budget
    assert frames_ahead_for(VideoConfig(width=3840, height=2160)) == MIN_FRAMES_AHEAD
    from pipelines.prefetch import _source_frames_ahead           # a one-episode shard queues source frames
    from schemas.episode import VideoRef

    source = VideoRef(camera="egocentric", kind="video", uri="x.mp4", frame_count=300, fps=30.0, width=1920,
                      height=1080)
    queued = _source_frames_ahead(source, 1, VideoConfig())
    assert queued * 1920 * 1080 * 3 // 2 <= EPISODE_BYTES < (queued + 1) * 1920 * 1080 * 3 // 2


@pytest.mark.timeout(60)              # a wrong order hangs; it passes in ~2 s
def test_three_camera_episodes_decode_ahead_to_the_serial_bytes(egodex_src, tmp_path):
    """Two decoders take the feeds in episode and camera order while the writer reads one camera after the
    other, so the feed the writer waits on is always one a decoder holds: with one frame of queue per camera
    and more cameras than decoders, any other order would leave both decoders blocked on feeds the writer
    is not reading yet (a hang). Every frame must land where the serial path puts it."""
    import dataclasses

    cfg, refs, transforms = _job(egodex_src, tmp_path / "a")

    def three_cameras(ref):
        ep = load(ref, cfg, transforms)
        main = ep.videos["observation.images.egocentric"]
        for camera in ("left_wrist", "right_wrist"):
            ep.videos[f"observation.images.{camera}"] = dataclasses.replace(main, camera=camera)
        return ep

    serial = write_shard((three_cameras(r) for r in refs), tmp_path / "serial", "s-00000", cfg.shard_config())
    ahead = write_shard(decoded_ahead(refs, three_cameras, cfg.shard_config().video, frames_ahead=1),
                        tmp_path / "ahead", "s-00000", cfg.shard_config())
    assert serial.fates == ahead.fates and all(f["status"] == "ingested" for f in ahead.fates.values())
    files = _files(tmp_path / "ahead" / "shards")
    assert sum(name.endswith(".mp4") for name in files) == 3 * len(refs)
    assert _files(tmp_path / "serial" / "shards") == files
    assert not video_mod._FEEDS
    _wait_no_loader_threads()


def _queued(video_uri: str) -> int:
    with video_mod._FEEDS_LOCK:
        return sum(feed._frames.qsize() for feeds in video_mod._FEEDS.values() for feed in feeds
                   if feed.key[1] == video_uri)


def test_the_first_episode_decodes_while_it_is_still_loading(egodex_src, tmp_path):
    """With the source's `videos` (its header-only view of the cameras) the first episode's frames are
    decoded before its `load` returns: this load waits for them (a decode that starts after load would
    never come). Same bytes as the serial path."""
    from converters.egodex import EgoDex

    cfg, refs, transforms = _job(egodex_src, tmp_path / "a")
    first_video = refs[0].get("video")
    saw: list[int] = []

    def load_waiting_for_frames(ref):
        if ref is refs[0]:
            deadline = time.monotonic() + 10
            while _queued(first_video) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            saw.append(_queued(first_video))
        return load(ref, cfg, transforms)

    serial = write_shard((load(r, cfg, transforms) for r in refs), tmp_path / "serial", "s-00000", cfg.shard_config())
    ahead = write_shard(decoded_ahead(refs, load_waiting_for_frames, cfg.shard_config().video, frames_ahead=2,
                                      early=EgoDex().videos), tmp_path / "ahead", "s-00000", cfg.shard_config())
    assert saw == [2]
    assert serial.fates == ahead.fates and _files(tmp_path / "serial" / "shards") == _files(tmp_path / "ahead" / "shards")
    assert not video_mod._FEEDS
    _wait_no_loader_threads()


def test_an_early_decode_is_dropped_when_load_rejects_or_names_other_cameras(egodex_src, tmp_path):
    """`early` announces the wrong video for the first episode, then (second run) load rejects it: the
    started decode is withdrawn either way, the writer gets the right frames, and nothing stays offered."""
    from schemas.episode import Rejected, RejectReason

    cfg, refs, transforms = _job(egodex_src, tmp_path / "a")
    episodes = [load(r, cfg, transforms) for r in refs]
    wrong = {"observation.images.egocentric": episodes[2].videos["observation.images.egocentric"]}
    write_shard(iter(episodes), tmp_path / "serial", "s-00000", cfg.shard_config())
    write_shard(decoded_ahead(refs, lambda r: episodes[refs.index(r)], cfg.shard_config().video,
                              frames_ahead=2, early=lambda ref: wrong),
                tmp_path / "ahead", "s-00000", cfg.shard_config())
    assert _files(tmp_path / "serial" / "shards") == _files(tmp_path / "ahead" / "shards")
    assert not video_mod._FEEDS

    refused = Rejected(refs[0].source_id, "read", RejectReason.MISSING_KEY, "no /transforms")
    result = write_shard(decoded_ahead(refs, lambda r: refused if r is refs[0] else episodes[refs.index(r)],
                                       cfg.shard_config().video, frames_ahead=2,
                                       early=lambda ref: dict(episodes[0].videos)),
                         tmp_path / "rejected", "s-00000", cfg.shard_config())
    assert [result.fates[r.source_id]["status"] for r in refs] == ["rejected", "ingested", "ingested"]
    assert not video_mod._FEEDS
    _wait_no_loader_threads()


def test_a_load_that_raises_withdraws_the_early_decode(egodex_src, tmp_path):
    cfg, refs, transforms = _job(egodex_src, tmp_path / "a")
    first = load(refs[0], cfg, transforms)

    def exploding(ref):
        raise RuntimeError("loader bug")

    items = decoded_ahead(refs, exploding, cfg.shard_config().video, frames_ahead=1, early=lambda ref: dict(first.videos))
    with pytest.raises(RuntimeError, match="loader bug"):
        next(items)
    assert not video_mod._FEEDS
    _wait_no_loader_threads()
