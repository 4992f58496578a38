"""Training-sample throughput: psi0 `ChunkDataset` vs `LeRobotDataset` on the same LeRobot v3 shard.

Both read random frames (same indices, single process): images of the egocentric camera at t plus
the action chunk [t, t+H). LeRobot runs as documented for training (`video_backend="pyav"`,
`delta_timestamps` for the chunk). Rounds alternate between the two so machine noise hits both;
the median round counts. The shard is generated once from the EgoDex sample at 224x224 (cached in
--work). Both run with one torch thread, as in DataLoader workers. The last line is one JSON object.

    python benchmarks/loader.py                      # ~2 min on 2 cores incl. generating the shard
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
    args = parser.parse_args(argv)

    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    torch.set_num_threads(1)        # as inside DataLoader workers; keeps intra-op threads from fighting for cores

    from training.data import ChunkDataset, DataConfig, open_shards

    shard = args.shard or build_shard(args.work, args.seconds)
    info = json.loads((shard / "meta" / "info.json").read_text())
    fps, cam = info["fps"], "observation.images.egocentric"
    size = info["features"][cam]["shape"]
    lerobot = LeRobotDataset("psi0/bench", root=shard, video_backend="pyav",
                             delta_timestamps={"action": [k / fps for k in range(args.horizon)]})
    index = open_shards([shard])
    ours = ChunkDataset(index, DataConfig(horizon=args.horizon, image_size=None, format="lerobot"))
    n = len(ours)
    assert n == len(lerobot), (n, len(lerobot))
    codec = info["features"][cam]["info"]["video.codec"]
    print(f"shard {shard}: {n} frames ({n / fps:.1f} s) of {size[1]}x{size[0]} {codec}, {info['total_episodes']} "
          f"episodes; horizon {args.horizon}; {args.samples} random samples x {args.rounds} rounds")
    zarr_path = shard.with_name(shard.name + ".zarr")
    ours_zarr = None
    if zarr_path.exists():
        zarr_cfg = DataConfig(horizon=args.horizon, image_size=None, format="zarr")
        ours_zarr = ChunkDataset(open_shards([zarr_path]), zarr_cfg)
    ours_resized = ChunkDataset(index, DataConfig(horizon=args.horizon, image_size=(240, 320)))
    rng = np.random.default_rng(args.seed)
    rates: dict[str, list[float]] = {"lerobot": [], "psi0": [], "psi0_240x320": [], "psi0_zarr": []}
    for r in range(args.rounds):
        indices = rng.integers(0, n, args.samples).tolist()
        rates["lerobot"].append(time_samples(lerobot, indices, cam))
        rates["psi0"].append(time_samples(ours, indices, "images"))
        rates["psi0_240x320"].append(time_samples(ours_resized, indices, "images"))
        if ours_zarr is not None:
            rates["psi0_zarr"].append(time_samples(ours_zarr, indices, "images"))
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items() if v))
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    ratio = med["psi0"] / med["lerobot"]
    print(f"median: LeRobotDataset {med['lerobot']:.1f} samples/s, psi0 ChunkDataset {med['psi0']:.1f} samples/s "
          f"-> {ratio:.1f}x  (psi0 at 240x320: {med['psi0_240x320']:.1f}/s"
          + (f", psi0 from zarr: {med['psi0_zarr']:.1f}/s)" if "psi0_zarr" in med else ")"))
    result = {"vs_lerobot": round(ratio, 2), "psi0_samples_per_s": round(med["psi0"], 1),
              "lerobot_samples_per_s": round(med["lerobot"], 1),
              "psi0_240x320_samples_per_s": round(med["psi0_240x320"], 1), "frames": n, "horizon": args.horizon,
              "samples": args.samples, "rounds": args.rounds}
    if "psi0_zarr" in med:
        result["psi0_zarr_samples_per_s"] = round(med["psi0_zarr"], 1)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
