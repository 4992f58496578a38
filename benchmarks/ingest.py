"""Ingest throughput: the same 1080p H.264 EgoDex-format episodes → 224×224 AV1 (libsvtav1, crf 30, g 2,
preset 12, lp=2) on every path, so the ratios compare work against work:

  floor              bare PyAV loop: decode → libswscale resize to yuv420p → encode, one episode after
                     another (no poses, parquet, stats or metadata). The codec floor psi0 must reach.
  psi0               the EgoDex job end to end (`run_local`): HDF5 read + validate + container probe +
                     decode → resize → encode + parquet + stats + metadata + per-file sha256 + commit;
                     with `--realtime` where the host allows real-time threads (see below).
  psi0_ordinary      the same job without `--realtime` (run only where that differs: real-time allowed).
  lerobot_streaming  LeRobot 0.4.4 writer as `lerobot-record` documents it for speed:
                     `streaming_encoding=True, encoder_threads=2` (its recommended flags), fed by a PyAV
                     decoder resizing to RGB 224×224. Its encoder queue is sized to hold an episode so no
                     frame is dropped (LeRobot drops frames when the queue is full; dropped frames are
                     counted and the run fails if any is).
  lerobot_default    LeRobot 0.4.4 writer with `LeRobotDataset.create` defaults (PNG per frame written
                     synchronously, then ffmpeg-style encode of the PNGs in `save_episode`).
  ffmpeg             ffmpeg CLI, one process per episode, same scaler (bilinear), same decoder threading
                     (slice threads) and the same encoder options (lp=2).
  floor_parallel     the floor's loop in one thread per core, each taking every n-th episode, each decoder on
                     its own thread (FFmpeg's slice threads only add hand-offs when every core decodes): the
                     codec work alone with no hand-offs. Not a job (it writes nothing but MP4s); it bounds what
                     any scheduling of the same work reaches here (`floor_parallel_vs_lerobot_streaming`).
  pipeline_shape     psi0's codec pieces (`FrameFeed`, `EpisodeEncoder`) in psi0's thread shape (two decoder
                     threads, one encoding thread) and nothing else: no pose reads, tables, stats, metadata or
                     commit. Splits psi0's distance to `floor_parallel` into what its shape costs
                     (`pipeline_shape_vs_floor_parallel`) and what its own work costs (`vs_pipeline_shape`).

What differs, besides the scheduling each path chooses: LeRobot computes per-channel image stats on
every frame (psi0 computes stats of vector columns only) and converts frames RGB → yuv420p in its
encoder (psi0 and the floor resize straight to yuv420p); the floor and ffmpeg write no metadata. The
ffmpeg CLI links the system's SVT-AV1 (Debian 12: 1.4.1), which encodes preset 12 as asked; every PyAV path
(psi0, both floors, LeRobot) runs PyAV's bundled SVT-AV1 3.0, which maps presets 11-13 to 10 in its
random-access mode ("Preset M12 is mapped to M10" in the log): those paths do more encoder work per frame.

Protocol: the sources are written once; one warm-up run of every path is discarded; then `--repeat`
rounds, each running every path once, the order rotating each round so no path always goes first or
in the same slot. Per path: median, min and max seconds, median CPU seconds (every thread and child process)
and cores kept busy; ratios are of medians. Machine load
(1-min load average) is printed before and after. Last line: one JSON object with `vs_floor`,
`vs_lerobot_streaming`, `vs_lerobot_default`, `vs_ffmpeg`, `vs_floor_parallel`, `vs_pipeline_shape` (psi0
frames/s ÷ the other's), `floor_parallel_vs_lerobot_streaming`, `pipeline_shape_vs_floor_parallel`, and
`pose_reads_s` / `pose_reads_cpu_s`: reading every episode's poses once (HDF5, checks, container probe), which
psi0's job does in its loader thread and the LeRobot paths in their timed region, measured apart after the rounds.

    python benchmarks/ingest.py                   # 6 episodes x 3.3 s (≈ 618 frames), 3 rounds: ~5 min on 2 cores
    python benchmarks/ingest.py --quick           # smoke test: 240p, 3 short episodes, 1 round, no warm-up
    python benchmarks/ingest.py --realtime off    # every path as an unprivileged user runs it (see below)

Real-time scheduling: SVT-AV1 makes the thread that opens an encoder, and its own threads, SCHED_FIFO 99
wherever the process may (root or CAP_SYS_NICE; an unprivileged user may not). That changes the peers' speed:
measured here, LeRobot's streaming writer runs ~10 % faster with it and the parallel floor ~2 %. psi0 never
takes it implicitly (SVT-AV1's choice is undone: shards/scheduling.py); it asks for it with `--realtime`
(`JobConfig.realtime`), which runs the whole shard pipeline (loader, decoders, writer, the encoders' threads) at
SCHED_FIFO 1, for nodes that do nothing but ingest. By default every path runs with what the host allows: as
root the peers' SVT-AV1 goes real-time by itself and psi0 runs with `--realtime` (JSON: `realtime_allowed`,
`psi0_realtime`), and `psi0_ordinary` runs psi0 without it (`psi0_ordinary_vs_lerobot_streaming`: what a root
user who does not ask for it gets). `--realtime off` first gives the privilege up for the whole process, so every
path runs as it would for an ordinary user (psi0_ordinary is then skipped: it is the psi0 run).
"""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # benchmarks/tokenize.py shadows stdlib
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")   # every path's SVT-AV1 encoders alike: errors only, no banner per episode
SIZE = 224
CRF, GOP, PRESET, LP = 30, 2, 12, 2
OPTS = {"crf": str(CRF), "g": str(GOP), "preset": str(PRESET), "svtav1-params": f"lp={LP}"}
PATHS = ("floor", "psi0", "lerobot_streaming", "lerobot_default", "ffmpeg", "floor_parallel", "pipeline_shape",
         "psi0_ordinary")


def _psi0(src: Path, out: Path, realtime: int) -> float:
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig

    cfg = JobConfig(source="egodex", input=str(src), output=str(out), formats=("lerobot",), episodes_per_shard=64,
                    video_width=SIZE, video_height=SIZE, video_crf=CRF, video_gop=GOP, tokenize=False,
                    realtime=realtime)
    t = time.perf_counter()
    run_local(cfg)
    return time.perf_counter() - t


def psi0_realtime() -> int:
    """The `--realtime` priority psi0's path runs with: `REALTIME_PRIORITY` where this process may use real-time
    threads (where the peers' SVT-AV1 makes its threads real-time by itself), else 0."""
    from shards.scheduling import REALTIME_PRIORITY, may_go_realtime

    return REALTIME_PRIORITY if may_go_realtime(REALTIME_PRIORITY) else 0


def bench_psi0(src: Path, videos: list[Path], out: Path) -> float:
    return _psi0(src, out, psi0_realtime())


def bench_psi0_ordinary(src: Path, videos: list[Path], out: Path) -> float:
    return _psi0(src, out, 0)


def _lerobot(src: Path, videos: list[Path], out: Path, **writer: object) -> float:
    import av
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from converters import egodex

    refs = _pose_refs(src, videos)
    t = time.perf_counter()
    episodes = [egodex.read(ref) for ref in refs]              # poses: same HDF5 read as psi0 does
    width = episodes[0].column("observation.state").shape[1]
    feats = {"observation.state": {"dtype": "float32", "shape": (width,), "names": None},
             "action": {"dtype": "float32", "shape": (width,), "names": None},
             "observation.images.egocentric": {"dtype": "video", "shape": (SIZE, SIZE, 3),
                                               "names": ["height", "width", "channels"]}}
    ds = LeRobotDataset.create("bench/lerobot", fps=30, features=feats, root=out, use_videos=True, **writer)
    for video, ep in zip(videos, episodes):
        state = ep.column("observation.state")
        with av.open(str(video)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "SLICE"
            for i, frame in enumerate(c.decode(stream)):
                img = frame.reformat(SIZE, SIZE, "rgb24").to_ndarray()
                ds.add_frame({"observation.state": state[i], "action": state[i],
                              "observation.images.egocentric": img, "task": ep.meta.task})
        ds.save_episode()
    ds.finalize()
    elapsed = time.perf_counter() - t
    dropped = getattr(getattr(ds, "_streaming_encoder", None), "_dropped_frames", None) or {}
    if any(dropped.values()):
        raise RuntimeError(f"LeRobot streaming encoder dropped frames {dropped}: the comparison would be unfair")
    return elapsed


def bench_lerobot_streaming(src: Path, videos: list[Path], out: Path) -> float:
    return _lerobot(src, videos, out, streaming_encoding=True, encoder_threads=LP, encoder_queue_maxsize=4096)


def bench_lerobot_default(src: Path, videos: list[Path], out: Path) -> float:
    return _lerobot(src, videos, out)


def _floor_episode(video: Path, dst_path: Path, decoder_threads: int = 0) -> None:
    import av

    with av.open(str(video)) as source, av.open(str(dst_path), "w") as dst:
        stream = dst.add_stream("libsvtav1", rate=30, options=OPTS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        decoder = source.streams.video[0]
        decoder.thread_type = "SLICE"
        if decoder_threads:
            decoder.thread_count = decoder_threads
        for frame in source.decode(decoder):
            dst.mux(stream.encode(frame.reformat(SIZE, SIZE, "yuv420p")))
        dst.mux(stream.encode(None))


def bench_floor(src: Path, videos: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for k, video in enumerate(videos):
        _floor_episode(video, out / f"{k}.mp4")
    return time.perf_counter() - t


def bench_floor_parallel(src: Path, videos: list[Path], out: Path) -> float:
    """The floor's loop in one thread per core, each on every n-th episode: the codecs' work alone, scheduled
    with no hand-offs at all. Not a path a job could take as is (nothing is written but the MP4s); it says how
    far any scheduling of the same codec work can go on this host."""
    from concurrent.futures import ThreadPoolExecutor

    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(os.cpu_count() or 1, len(videos)))
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        # one decoder thread each: with a decode per core, FFmpeg's slice threads only add hand-offs (measured
        # 372 vs 363 frames/s, 3.18 vs 3.31 CPU s per 618 frames); the serial floor keeps them, they pay there
        for done in [pool.submit(_floor_episode, video, out / f"{k}.mp4", 1) for k, video in enumerate(videos)]:
            done.result()
    return time.perf_counter() - t


def bench_pipeline_shape(src: Path, videos: list[Path], out: Path) -> float:
    """psi0's own codec pieces in psi0's thread shape, with nothing else: `DECODERS` decoder threads, each
    decoding and resizing one episode at a time into its bounded `FrameFeed` (one FFmpeg thread each, as in a
    multi-episode shard), and this thread encoding the episodes in order through `EpisodeEncoder` (its
    scheduling guard, SVT-AV1's threads as batch threads), with psi0's path's `--realtime` setting. No pose
    reads, tables, stats, metadata, hashes or commit. psi0 ÷ this is what the job's own work costs; this ÷
    `floor_parallel` is what the shape costs."""
    from shards.scheduling import realtime_codecs

    out.mkdir(parents=True, exist_ok=True)
    with realtime_codecs(psi0_realtime()):          # the decoder threads start inside: they inherit it
        return _pipeline_shape(videos, out)


def _pipeline_shape(videos: list[Path], out: Path) -> float:
    import queue
    import threading

    from pipelines.prefetch import DECODERS, frames_ahead_for
    from schemas.episode import VideoRef
    from shards.video import EpisodeEncoder, FrameFeed, VideoConfig

    config = VideoConfig(width=SIZE, height=SIZE, crf=CRF, gop=GOP, preset=PRESET)
    t = time.perf_counter()
    feeds = [FrameFeed(VideoRef("egocentric", "video", str(v), 0, 30.0, 0, 0), SIZE, SIZE, config.pix_fmt,
                       maxsize=frames_ahead_for(config), decoder_threads=1) for v in videos]
    waiting: queue.Queue = queue.Queue()
    for feed in feeds:
        waiting.put(feed)

    def decode() -> None:
        while True:
            try:
                waiting.get_nowait().fill()
            except queue.Empty:
                return

    decoders = [threading.Thread(target=decode, name=f"shape-decode-{i}") for i in range(DECODERS)]
    for thread in decoders:
        thread.start()
    try:
        for k, feed in enumerate(feeds):
            encoder = EpisodeEncoder(out / f"{k}.mp4", 30, config)
            for frame in feed:
                encoder.add(frame)
            encoder.close()
    finally:
        for feed in feeds:
            feed.cancel()
        for thread in decoders:
            thread.join()
    return time.perf_counter() - t


def time_pose_reads(src: Path, videos: list[Path]) -> tuple[float, float]:
    """(wall, CPU) seconds of reading every episode's poses the way psi0's job and the LeRobot paths both do
    (`converters.egodex.read`: HDF5, checks, container probe), one after another."""
    from converters import egodex

    refs = _pose_refs(src, videos)
    start, cpu = time.perf_counter(), _cpu_s()
    for ref in refs:
        egodex.read(ref)
    return time.perf_counter() - start, _cpu_s() - cpu


def _pose_refs(src: Path, videos: list[Path]) -> list:
    """EgoDex's refs (video + pose file) for `videos`, in their order."""
    from converters import egodex

    refs = {Path(r.get("video")): r for r in egodex.discover(str(src))}
    return [refs[v] for v in videos]


def bench_ffmpeg(src: Path, videos: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for k, video in enumerate(videos):
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-thread_type", "slice", "-i", str(video),
                        "-filter_threads", "1", "-vf", f"scale={SIZE}:{SIZE}:flags=bilinear,format=yuv420p",
                        "-c:v", "libsvtav1", "-crf", str(CRF), "-g", str(GOP), "-preset", str(PRESET),
                        "-svtav1-params", f"lp={LP}", str(out / f"{k}.mp4")], check=True)
    return time.perf_counter() - t


BENCHES: dict[str, Callable[[Path, list[Path], Path], float]] = {
    "floor": bench_floor, "psi0": bench_psi0, "psi0_ordinary": bench_psi0_ordinary,
    "lerobot_streaming": bench_lerobot_streaming, "lerobot_default": bench_lerobot_default, "ffmpeg": bench_ffmpeg, "floor_parallel": bench_floor_parallel,
    "pipeline_shape": bench_pipeline_shape}


def rotated(paths: list[str], round_index: int) -> list[str]:
    """Round r runs the paths starting at r (mod n): over n rounds each path runs once in every position
    (first, after a warm cache, last), so position effects do not favour one of them."""
    k = round_index % len(paths)
    return paths[k:] + paths[:k]


def summarize(frames: int, times: dict[str, list[float]],
              cpu: dict[str, list[float]] | None = None) -> dict[str, object]:
    """Median, min and max seconds per path; frames/s and ratios from medians. With `cpu` (CPU seconds of
    each run, all threads and child processes): the median CPU seconds and cores kept busy (CPU / wall) per
    path, which say whether a path is faster by doing less work or by overlapping it better."""
    med = {k: statistics.median(v) for k, v in times.items()}
    out: dict[str, object] = {"frames": frames, "rounds": min(len(v) for v in times.values())}
    for k, v in times.items():
        out[f"{k}_fps"] = round(frames / med[k], 1)
        out[f"{k}_fps_range"] = [round(frames / max(v), 1), round(frames / min(v), 1)]
        if cpu and cpu.get(k):
            out[f"{k}_cpu_s"] = round(statistics.median(cpu[k]), 2)
            out[f"{k}_cores_busy"] = round(statistics.median(c / w for c, w in zip(cpu[k], v)), 2)
    if "psi0" in med:
        for key, other in (("vs_floor", "floor"), ("vs_lerobot_streaming", "lerobot_streaming"),
                           ("vs_lerobot_default", "lerobot_default"), ("vs_ffmpeg", "ffmpeg"),
                           ("vs_floor_parallel", "floor_parallel"), ("vs_pipeline_shape", "pipeline_shape")):
            if other in med:
                out[key] = round(med[other] / med["psi0"], 2)
    if "floor_parallel" in med and "lerobot_streaming" in med:     # the most any scheduling of the codec work gets
        out["floor_parallel_vs_lerobot_streaming"] = round(med["lerobot_streaming"] / med["floor_parallel"], 2)
    if "psi0_ordinary" in med and "lerobot_streaming" in med:      # psi0 without `--realtime`
        out["psi0_ordinary_vs_lerobot_streaming"] = round(med["lerobot_streaming"] / med["psi0_ordinary"], 2)
    if "floor_parallel" in med and "pipeline_shape" in med:        # psi0's shape against no hand-offs at all
        out["pipeline_shape_vs_floor_parallel"] = round(med["floor_parallel"] / med["pipeline_shape"], 2)
    return out


def _cpu_s() -> float:
    """CPU seconds so far of this process (every thread: the codecs' too) and of its finished children (ffmpeg)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.3, help="seconds per episode (default: 6 x 3.3 s ≈ 618 frames)")
    ap.add_argument("--episodes-per-task", type=int, default=2, help="episodes per sample task (3 tasks)")
    ap.add_argument("--resolution", default="1920x1080", help="source video WxH (default 1920x1080)")
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds (each runs every path once; default 3)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the discarded warm-up run of each path")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {','.join(PATHS)}")
    ap.add_argument("--realtime", choices=("host", "off"), default="host",
                    help="host: every path may use real-time threads if this process may (root: SVT-AV1 makes "
                         "its threads SCHED_FIFO); off: give that privilege up first, as an ordinary user runs")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 426x240 sources, 1 episode per task of 1 s, 1 round, no warm-up")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.episodes_per_task, args.resolution, args.repeat, args.no_warmup = 1.0, 1, "426x240", 1, True
    paths = [p for p in args.paths.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        ap.error(f"unknown path(s) {sorted(unknown)}; choose from {PATHS}")
    width, height = (int(x) for x in args.resolution.lower().split("x"))

    from shards.scheduling import give_up_realtime, may_go_realtime, ordinary_scheduling
    if args.realtime == "off":
        give_up_realtime()
    if not psi0_realtime() and args.paths == ",".join(PATHS):
        paths.remove("psi0_ordinary")           # the same run as psi0's where real-time threads are not allowed

    import av

    from samples import egodex as egodex_sample

    work = Path(tempfile.mkdtemp(prefix="psi0-bench-"))
    try:
        src = work / "src"
        egodex_sample.write_sample(src, 0, (width, height), args.episodes_per_task, args.seconds)
        videos = sorted(src.rglob("*.mp4"))
        frames = 0
        for v in videos:
            with av.open(str(v)) as c:
                frames += c.streams.video[0].frames
        print(f"{len(videos)} episodes, {frames} frames of {width}x{height} H.264 -> {SIZE}x{SIZE} AV1 "
              f"(crf {CRF}, g {GOP}, preset {PRESET}, lp={LP}); {os.cpu_count()} cores; load {_load()}", flush=True)

        def once(name: str, tag: str) -> tuple[float, float]:
            """(wall seconds as the path times itself, CPU seconds of the whole call)."""
            out = work / f"{name}-{tag}"
            start = _cpu_s()
            try:
                return BENCHES[name](src, videos, out), _cpu_s() - start
            finally:
                shutil.rmtree(out, ignore_errors=True)
                # every path starts as the first did: as root, opening libsvtav1 leaves the caller SCHED_FIFO 99
                # (the floor's and LeRobot's encoders do; psi0's puts it back), which the next path would inherit
                ordinary_scheduling()

        realtime = may_go_realtime()
        print(f"SVT-AV1 can make its threads real-time here: {realtime} (CAP_SYS_NICE / RLIMIT_RTPRIO"
              f"{'; given up: --realtime off' if args.realtime == 'off' else ''}; each path starts from ordinary "
              f"scheduling); psi0 runs with --realtime {psi0_realtime()}"
              f"{' (psi0_ordinary: without)' if 'psi0_ordinary' in paths else ''}", flush=True)

        if not args.no_warmup:
            for name in paths:
                once(name, "warmup")
        times: dict[str, list[float]] = {name: [] for name in paths}
        cpu: dict[str, list[float]] = {name: [] for name in paths}
        for r in range(args.repeat):
            for name in rotated(paths, r):
                wall, used = once(name, str(r))
                times[name].append(wall)
                cpu[name].append(used)
            print(f"round {r}: " + ", ".join(f"{k} {frames / v[-1]:.0f}/s" for k, v in times.items()), flush=True)
        reads = [time_pose_reads(src, videos) for _ in range(3)]
        summary = summarize(frames, times, cpu)
        summary["pose_reads_s"] = round(statistics.median(wall for wall, _ in reads), 3)
        summary["pose_reads_cpu_s"] = round(statistics.median(used for _, used in reads), 3)
        summary["load_1min_after"] = _load()
        summary["realtime_allowed"] = realtime
        summary["psi0_realtime"] = psi0_realtime()
        for name in paths:
            lo, hi = summary[f"{name}_fps_range"]
            print(f"{name:18s} median {summary[f'{name}_fps']:7.1f} frames/s  (range {lo}-{hi}), "
                  f"{summary[f'{name}_cpu_s']:.2f} CPU s, {summary[f'{name}_cores_busy']:.2f} cores busy")
        print(f"pose reads (psi0's loader thread; the LeRobot paths in their timed region): "
              f"{summary['pose_reads_s'] * 1000:.0f} ms, {summary['pose_reads_cpu_s']:.2f} CPU s")
        print(json.dumps(summary, sort_keys=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
