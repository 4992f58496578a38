"""H.264 settings every psi0 writer of H.264 shares: ingest output (`--codec libx264`), the LeRobot v2.1
export, simulator recordings and the built-in sample.

On CPUs with AVX-512, x264 (as PyAV's wheels bundle it) encoded the same frames to different bytes from one
call to the next whenever a GOP was longer than 2 frames: the output followed what the process had
allocated before, so one of its AVX-512 routines reads memory it has not written. Capped at AVX2
(`asm=avx2`) it is a function of the frames alone, and its output equals the common one of the AVX-512 runs
(x264's SIMD levels are bit-exact with each other). psi0's outputs must be a function of their inputs (a
re-run writes the same bytes), so its writers cap x264 there; other CPUs keep x264's own choice.
`tests/test_x264_determinism.py` checks each writer.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _cpu_has_avx512() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:               # not Linux: no AVX-512 x86 path to cap (Apple silicon, or unknown)
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx2" in flags and any(f.startswith("avx512") for f in flags)


def x264_options() -> dict[str, str]:
    """Options to merge into a libx264 stream's, so that the same frames always encode to the same bytes."""
    return {"x264-params": "asm=avx2"} if _cpu_has_avx512() else {}
