"""Quiet FFmpeg's expected warnings for the length of one call, without silencing its errors.

A header-only probe (converters.egodex) asks FFmpeg for a stream's shape without decoding a frame; FFmpeg
then warns "Could not find codec parameters ... Consider increasing the value for the 'analyzeduration'"
for every file: two lines per episode that would bury the real ones (300 k EgoDex episodes). PyAV drops
FFmpeg's messages until someone puts FFmpeg's own printer back (LeRobot's video code does, so any process
that has used it prints them, as `benchmarks/ingest.py` did). PyAV's switch (`av.logging.set_level`) would
route every message through Python, taking the GIL from the codec threads, or drop errors too; here
FFmpeg's own threshold (`av_log_set_level`, a plain int) is raised to errors while the call runs and put
back after, counting nested and concurrent users.
"""
from __future__ import annotations

import ctypes
import importlib
import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator

AV_LOG_ERROR = 16

_LOCK = threading.Lock()
_state: dict[str, Any] = {"users": 0, "saved": ()}


@lru_cache(maxsize=1)
def _libavutils() -> tuple[ctypes.CDLL, ...]:
    """Every libavutil loaded in this process, PyAV's among them (its wheels bundle their own; torchcodec, if
    loaded first, brings the system's, and each copy keeps its own threshold), found in the memory map."""
    importlib.import_module("av")                      # loads PyAV's libavutil, the one its probes log through
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "libavutil" in line and "/" in line})
    except OSError:           # not Linux: leave FFmpeg's logging as it is
        return ()
    libs = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.av_log_get_level.restype = ctypes.c_int
            lib.av_log_set_level.argtypes = [ctypes.c_int]
        except (OSError, AttributeError):
            continue
        libs.append(lib)
    return tuple(libs)


@contextmanager
def ffmpeg_warnings_muted() -> Iterator[None]:
    """FFmpeg logs only errors inside the block (process-wide: a warning another thread's codec emits in
    that window is dropped too; the probes this wraps last ~1-3 ms)."""
    libs = _libavutils()
    with _LOCK:
        if _state["users"] == 0:
            _state["saved"] = tuple(lib.av_log_get_level() for lib in libs)
            for lib, level in zip(libs, _state["saved"]):
                lib.av_log_set_level(min(AV_LOG_ERROR, level))
        _state["users"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _state["users"] -= 1
            if _state["users"] == 0:
                for lib, level in zip(libs, _state["saved"]):
                    lib.av_log_set_level(level)
