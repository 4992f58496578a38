"""Closed-loop MuJoCo benchmark: a G1 + Dex3-1 robot built from the embodiment tables, procedurally
generated indoor scenes, task templates with success predicates, scripted experts, headless rendering.

Importing `sim` picks the headless EGL backend for MuJoCo's renderer unless the caller chose one
(`MUJOCO_GL` is read once, when mujoco is first imported, so it must be set before that).
"""
from __future__ import annotations

import os
import sys

if sys.platform.startswith("linux"):
    os.environ.setdefault("MUJOCO_GL", "egl")
# Mesa's software rasterizer (llvmpipe) hands each frame to worker threads; for one small 224x224 frame
# between physics steps the hand-off costs more than it saves, and on a busy machine the wake-up waits
# for a free core (measured: 14 ms -> 7 ms per frame under load). 0 = rasterize in the calling thread.
# Ignored by GPU EGL drivers.
os.environ.setdefault("LP_NUM_THREADS", "0")
