"""Assemble MediaPipe's `hand_landmarker.task` offline.

MediaPipe >= 0.10.30 ships no hand model and downloads one at run time (impossible offline).
The `mediapipe==0.10.21` wheel still carries the two TFLite graphs; zipped *uncompressed* as
`hand_detector.tflite` + `hand_landmarks_detector.tflite` they form a task bundle that the new
Tasks API loads. We only download that wheel (never install it: it pins numpy<2).

Usage: python tools/build_hand_model.py [--out PATH] [--quiet]
The default output is `<sys.prefix>/share/psi0/hand_landmarker.task`, where
`converters.handqa` looks for it (override with PSI0_HAND_MODEL).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_SPEC = "mediapipe==0.10.21"
MEMBERS = {
    "hand_detector.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmarks_detector.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
DEFAULT_OUT = Path(sys.prefix) / "share" / "psi0" / "hand_landmarker.task"


def assemble(wheel: Path, out: Path) -> Path:
    """Copy the two graphs out of the wheel into an uncompressed task zip at `out` (atomically)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as dst:
        for name, member in MEMBERS.items():
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            dst.writestr(info, src.read(member))
    tmp.replace(out)
    return out


def download_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "-d", str(dest), WHEEL_SPEC], check=True)
    wheels = sorted(dest.glob("mediapipe-0.10.21-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download {WHEEL_SPEC} produced no wheel in {dest}")
    return wheels[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--wheel", type=Path, help="use this mediapipe 0.10.21 wheel instead of downloading it")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if args.out.exists() and not args.force:
        if not args.quiet:
            print(f"hand model already at {args.out}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        path = assemble(wheel, args.out)
    print(f"[setup] hand model assembled: {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
