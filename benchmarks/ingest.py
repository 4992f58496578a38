"""Ingest throughput on 1080p H.264 EgoDex-format episodes → 224×224 AV1 (libsvtav1, crf 30, g 2, preset 12).

  (a) psi0: the EgoDex job end to end (read HDF5 + validate + decode → resize → encode + parquet + metadata)
  (b) LeRobot 0.4.4: LeRobotDataset.create + add_frame + save_episode, fed by a PyAV decoder
  (c) floor: one bare PyAV decode → resize → encode loop (no poses, parquet or metadata)
  (d) ffmpeg CLI doing the same transcode

Run: python benchmarks/ingest.py [--seconds 3.3] [--episodes-per-task 2]. Last line: one JSON object.
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
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from fractions import Fraction  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SIZE = 224
OPTS = {"crf": "30", "g": "2", "preset": "12", "svtav1-params": "lp=2"}


def bench_psi0(src: Path, out: Path) -> float:
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig

    cfg = JobConfig(source="egodex", input=str(src), output=str(out), formats=("lerobot",), episodes_per_shard=64,
                    video_width=SIZE, video_height=SIZE, tokenize=False)
    t = time.perf_counter()
    run_local(cfg)
    return time.perf_counter() - t


def bench_lerobot(videos: list[Path], out: Path) -> float:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from converters import egodex

    t = time.perf_counter()
    feats = {"observation.state": {"dtype": "float32", "shape": (48,), "names": None},
             "action": {"dtype": "float32", "shape": (48,), "names": None},
             "observation.images.egocentric": {"dtype": "video", "shape": (SIZE, SIZE, 3),
                                               "names": ["height", "width", "channels"]}}
    ds = LeRobotDataset.create("bench/lerobot", fps=30, features=feats, root=out, use_videos=True)
    for video in videos:
        ref = next(r for r in egodex.discover(str(video.parent.parent.parent)) if r.uri.endswith(video.stem + ".hdf5")
                   and Path(r.uri).parent == video.parent)
        ep = egodex.read(ref)
        state = ep.column("observation.state")
        with av.open(str(video)) as c:
            for i, frame in enumerate(c.decode(video=0)):
                img = frame.reformat(SIZE, SIZE, "rgb24").to_ndarray()
                ds.add_frame({"observation.state": state[i], "action": state[i],
                              "observation.images.egocentric": img, "task": ep.meta.task})
        ds.save_episode()
    ds.finalize()
    return time.perf_counter() - t


def bench_floor(videos: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for k, video in enumerate(videos):
        with av.open(str(video)) as src, av.open(str(out / f"{k}.mp4"), "w") as dst:
            stream = dst.add_stream("libsvtav1", rate=30, options=OPTS)
            stream.width = stream.height = SIZE
            stream.pix_fmt = "yuv420p"
            for frame in src.decode(video=0):
                dst.mux(stream.encode(frame.reformat(SIZE, SIZE, "yuv420p")))
            dst.mux(stream.encode(None))
    return time.perf_counter() - t


def bench_ffmpeg(videos: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for k, video in enumerate(videos):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-vf", f"scale={SIZE}:{SIZE}",
                        "-c:v", "libsvtav1", "-crf", "30", "-g", "2", "-preset", "12", "-pix_fmt", "yuv420p",
                        str(out / f"{k}.mp4")], check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.3, help="seconds per episode (default: 6 x 3.3 s ≈ 600 frames)")
    ap.add_argument("--episodes-per-task", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="take the best of N runs of each")
    args = ap.parse_args()
    from samples import egodex as egodex_sample

    work = Path(tempfile.mkdtemp(prefix="psi0-bench-"))
    try:
        src = work / "src"
        print(f"writing 1080p H.264 sources to {src} ...", flush=True)
        egodex_sample.write_sample(src, 0, (1920, 1080), args.episodes_per_task, args.seconds)
        videos = sorted(src.rglob("*.mp4"))
        frames = 0
        for v in videos:
            with av.open(str(v)) as c:
                frames += c.streams.video[0].frames
        results: dict[str, float] = {}
        for name, fn, arg in (("psi0", bench_psi0, src), ("lerobot", bench_lerobot, videos),
                              ("floor", bench_floor, videos), ("ffmpeg", bench_ffmpeg, videos)):
            best = float("inf")
            for r in range(args.repeat):
                out = work / f"{name}-{r}"
                best = min(best, fn(arg, out))
                shutil.rmtree(out, ignore_errors=True)
            results[name] = best
            print(f"{name:8s} {best:6.2f} s  {frames / best:7.1f} frames/s", flush=True)
        summary = {"frames": frames, **{f"{k}_fps": round(frames / v, 1) for k, v in results.items()},
                   "vs_lerobot": round(results["lerobot"] / results["psi0"], 2),
                   "vs_floor": round(results["floor"] / results["psi0"], 2),
                   "vs_ffmpeg": round(results["ffmpeg"] / results["psi0"], 2)}
        print(json.dumps(summary))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
