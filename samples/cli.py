"""`psi0 sample --out DIR [--seed S]`: a small sample of every source in its real on-disk format.

Writes DIR/egodex/ (<split>/<task>/<n>.hdf5 + .mp4, H.264 30 fps) and DIR/humanoid_everyday/
(per-task zips and extracted folders with data.json, JPEG/PNG frames, LZMA depth, PCD lidar).
Nothing is downloaded; the same seed gives byte-identical files.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SOURCES = ("egodex", "humanoid_everyday")


def _resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError("width and height must be positive and even (H.264 4:2:0)")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="psi0 sample", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="output folder (one subfolder per source)")
    ap.add_argument("--seed", type=int, default=0, help="random seed; same seed => identical bytes (default 0)")
    ap.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES), help="which sources to write")
    ap.add_argument("--resolution", type=_resolution, default=None,
                    help="EgoDex video size WxH (default 480x270; real EgoDex is 1920x1080, use it for benchmarks)")
    ap.add_argument("--he-resolution", type=_resolution, default=None,
                    help="Humanoid Everyday frame size WxH (default 320x240; the real camera is 640x480)")
    ap.add_argument("--seconds", type=float, default=None, help="approximate episode length (default 2.5 / 2.0 s)")
    ap.add_argument("--episodes-per-task", type=int, default=2, help="EgoDex episodes per task (3 tasks; default 2)")
    ap.add_argument("--with-faults", action="store_true",
                    help="also write one bad input of every kind (samples/faults.py)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from samples import egodex, faults, humanoid_everyday

    out: Path = args.out
    if "egodex" in args.sources:
        t0 = time.perf_counter()
        kw = {"seconds": args.seconds} if args.seconds else {}
        eps = egodex.write_sample(out / "egodex", args.seed, args.resolution or egodex.DEFAULT_RESOLUTION,
                                  args.episodes_per_task, **kw)
        print(f"egodex: {len(eps)} episodes, {sum(e.length for e in eps)} frames -> {out / 'egodex'} "
              f"({time.perf_counter() - t0:.1f} s)")
        if args.with_faults:
            print(f"egodex: {len(faults.write_all(out / 'egodex', 'egodex', args.seed))} bad inputs added")
    if "humanoid_everyday" in args.sources:
        t0 = time.perf_counter()
        kw = {"seconds": args.seconds} if args.seconds else {}
        eps = humanoid_everyday.write_sample(out / "humanoid_everyday", args.seed,
                                             args.he_resolution or humanoid_everyday.DEFAULT_RESOLUTION, **kw)
        print(f"humanoid_everyday: {len(eps)} episodes, {sum(len(e.frames) for e in eps)} frames -> "
              f"{out / 'humanoid_everyday'} ({time.perf_counter() - t0:.1f} s)")
        if args.with_faults:
            n = len(faults.write_all(out / "humanoid_everyday", "humanoid_everyday", args.seed))
            print(f"humanoid_everyday: {n} bad inputs added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
