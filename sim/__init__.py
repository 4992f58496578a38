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
