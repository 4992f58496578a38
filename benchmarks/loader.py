"""Training-sample throughput: psi0 `ChunkDataset` vs `LeRobotDataset` on the same shard (AV1, 224x224).

Every loader reads the same random frames (single process, one torch thread, as in a DataLoader
worker): the egocentric camera image at t plus the action chunk [t, t+H) (H = --horizon, default 30).
LeRobot runs twice: with its default video backend (torchcodec, with its decoder cache) and with
`video_backend="pyav"`; the chunk comes from `delta_timestamps` as LeRobot documents for training.
psi0 reads the LeRobot v3 shard, the same at 240x320, and the Zarr twin of the shard (raw frames).
What differs: LeRobot also returns padding masks and the task string; psi0 returns the chunk, its
mask and the image. A warm-up pass (--samples/4 reads per loader) is discarded; then --rounds rounds,
the loaders' order rotating each round; median and range per loader. The shard is generated once from
the EgoDex sample by the real job (cached in --work). Last line: one JSON object with
`vs_lerobot_torchcodec` and `vs_lerobot_pyav` (psi0 LeRobot-format samples/s ÷ LeRobot's) and
`zarr_vs_lerobot_format` (psi0 from Zarr ÷ psi0 from the LeRobot format).

    python benchmarks/loader.py                      # ~3 min on 2 cores incl. generating the shard
    python benchmarks/loader.py --quick              # smoke test: 2 s episodes, 20 samples, 1 round
    python benchmarks/loader.py --shard out/demo/egodex/shards/egodex-00000 --samples 500
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # benchmarks/tokenize.py shadows stdlib
sys.path.insert(0, str(_HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


def build_shard(work: Path, seconds: float) -> Path:
    """An EgoDex sample (6 episodes) ingested by the real job at 224x224 AV1, one shard."""
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig
    from samples import egodex as egodex_sample

    shard = work / "egodex" / "shards" / "egodex-00000"
    if (shard / "shard.json").is_file():
        return shard
    egodex_sample.write_sample(work / "in", episodes_per_task=2, seconds=seconds)
    run_local(JobConfig(source="egodex", input=str(work / "in"), output=str(work / "egodex"),
                        formats=("lerobot", "zarr"), episodes_per_shard=64, video_width=224, video_height=224,
                        tokenize=True, token_horizon=1))
    return shard


def time_samples(ds, indices: list[int], key) -> float:
    start = time.perf_counter()
    for i in indices:
        sample = ds[i]
        assert sample[key] is not None
    return len(indices) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shard", type=Path, help="an existing LeRobot v3 shard dir (default: generate one)")
    parser.add_argument("--work", type=Path, default=Path("out/bench-loader"), help="where the generated shard lives")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per generated episode (6 episodes)")
    parser.add_argument("--samples", type=int, default=300, help="random samples per round and loader")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 s episodes, 20 samples, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.samples, args.rounds = 2.0, 20, 1
        if args.work == Path("out/bench-loader"):
            args.work = Path("out/bench-loader-quick")

    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    torch.set_num_threads(1)        # as inside DataLoader workers; keeps intra-op threads from fighting for cores

    from training.data import ChunkDataset, DataConfig, open_shards

    shard = args.shard or build_shard(args.work, args.seconds)
    info = json.loads((shard / "meta" / "info.json").read_text())
    fps, cam = info["fps"], "observation.images.egocentric"
    size = info["features"][cam]["shape"]
    chunk = {"action": [k / fps for k in range(args.horizon)]}
    loaders: dict[str, tuple[object, str]] = {
        "lerobot_torchcodec": (LeRobotDataset("psi0/bench", root=shard, delta_timestamps=chunk), cam),
        "lerobot_pyav": (LeRobotDataset("psi0/bench", root=shard, video_backend="pyav", delta_timestamps=chunk), cam),
    }
    backend = getattr(loaders["lerobot_torchcodec"][0], "video_backend", "?")
    index = open_shards([shard])
    ours = ChunkDataset(index, DataConfig(horizon=args.horizon, image_size=None, format="lerobot"))
    n = len(ours)
    assert n == len(loaders["lerobot_pyav"][0]), (n, len(loaders["lerobot_pyav"][0]))
    loaders["psi0"] = (ours, "images")
    loaders["psi0_240x320"] = (ChunkDataset(index, DataConfig(horizon=args.horizon, image_size=(240, 320))), "images")
    zarr_path = shard.with_name(shard.name + ".zarr")
    if zarr_path.exists():
        zarr_cfg = DataConfig(horizon=args.horizon, image_size=None, format="zarr")
        loaders["psi0_zarr"] = (ChunkDataset(open_shards([zarr_path]), zarr_cfg), "images")
    codec = info["features"][cam]["info"]["video.codec"]
    print(f"shard {shard}: {n} frames ({n / fps:.1f} s) of {size[1]}x{size[0]} {codec}, {info['total_episodes']} "
          f"episodes; horizon {args.horizon}; {args.samples} random samples x {args.rounds} rounds; LeRobot default "
          f"video backend: {backend}; load {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(args.seed)
    names = list(loaders)
    warm = rng.integers(0, n, max(1, args.samples // 4)).tolist()
    for name in names:
        time_samples(loaders[name][0], warm, loaders[name][1])
    rates: dict[str, list[float]] = {k: [] for k in names}
    for r in range(args.rounds):
        indices = rng.integers(0, n, args.samples).tolist()
        k = r % len(names)
        order = names[k:] + names[:k]
        for name in order:
            rates[name].append(time_samples(loaders[name][0], indices, loaders[name][1]))
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()))
    med = {k: statistics.median(v) for k, v in rates.items()}
    result: dict[str, object] = {
        "vs_lerobot_torchcodec": round(med["psi0"] / med["lerobot_torchcodec"], 2),
        "vs_lerobot_pyav": round(med["psi0"] / med["lerobot_pyav"], 2),
        "lerobot_default_backend": backend, "frames": n, "horizon": args.horizon, "samples": args.samples,
        "rounds": args.rounds, "load_1min_after": round(os.getloadavg()[0], 2)}
    for name in names:
        result[f"{name}_samples_per_s"] = round(med[name], 1)
        result[f"{name}_range"] = [round(min(rates[name]), 1), round(max(rates[name]), 1)]
        print(f"{name:20s} median {med[name]:7.1f} samples/s (range {min(rates[name]):.1f}-{max(rates[name]):.1f})")
    if "psi0_zarr" in med:
        result["zarr_vs_lerobot_format"] = round(med["psi0_zarr"] / med["psi0"], 2)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
