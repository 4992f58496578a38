"""Replay recorded `OperatorInput`s as an InputDevice (for `--device replay FILE` and open-loop checks).

The recording container belongs to the recorder: it plugs in with `register_reader(predicate, reader)`
(or passes `reader=`), or builds the device straight from samples with `ReplayInput.from_inputs(...)`.
A small built-in `.npz` format (`save_inputs` / `load_inputs`) exists for fixtures and hand-made
sessions.

Timing: the first `poll(now)` is aligned with the first sample; afterwards `poll(now)` returns the newest
sample with `t <= t_first + (now - now_first) * speed` (never blocks, like a live device). Samples come
back re-stamped with the caller's `now` (one clock per session) unless `keep_time=True`.
"""
from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from teleop.streams import BODY_SITES, HAND_SIDES, DeviceUnavailable, OperatorInput

Reader = Callable[[Path], Iterable[OperatorInput]]
_READERS: list[tuple[Callable[[Path], bool], Reader]] = []


def register_reader(accepts: Callable[[Path], bool], reader: Reader) -> None:
    """Teach `ReplayInput(path)` a container: `accepts(path)` says whether `reader(path)` can read it."""
    _READERS.insert(0, (accepts, reader))


class ReplayInput:
    """InputDevice over a finite sequence of OperatorInputs."""

    def __init__(self, path: str | Path | None = None, *, reader: Reader | None = None, speed: float = 1.0,
                 loop: bool = False, keep_time: bool = False, name: str = "replay",
                 inputs: Iterable[OperatorInput] | None = None):
        self.name = name
        self.path = Path(path) if path is not None else None
        self.speed = float(speed)
        self.loop = loop
        self.keep_time = keep_time
        self._reader = reader
        self._samples: list[OperatorInput] | None = list(inputs) if inputs is not None else None
        if self._samples is None and self.path is None:
            raise ValueError("ReplayInput needs a path or inputs")
        self._times: list[float] = []
        self._now0: float | None = None
        self.exhausted = False

    @classmethod
    def from_inputs(cls, inputs: Iterable[OperatorInput], **kw) -> ReplayInput:
        return cls(inputs=inputs, **kw)

    def _load(self) -> None:
        if self._samples is None:
            assert self.path is not None
            if not self.path.exists():
                raise DeviceUnavailable(f"replay: {self.path} does not exist")
            reader = self._reader
            if reader is None:
                for accepts, fn in _READERS:
                    if accepts(self.path):
                        reader = fn
                        break
            if reader is None:
                raise DeviceUnavailable(f"replay: no reader for {self.path} (built-in: .npz from save_inputs; the "
                                        "recorder registers its container with teleop.devices.replay.register_reader)")
            self._samples = list(reader(self.path))
        if not self._samples:
            raise DeviceUnavailable(f"replay: {self.path or 'inputs'} holds no operator inputs")
        self._samples.sort(key=lambda s: s.t)
        self._times = [s.t for s in self._samples]

    def open(self) -> None:
        if not self._times:
            self._load()
        self._now0 = None
        self.exhausted = False

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        if not self._times:
            self._load()
        return len(self._times)

    @property
    def duration(self) -> float:
        if not self._times:
            self._load()
        return self._times[-1] - self._times[0]

    def describe(self) -> dict:
        return {"name": self.name, "kind": "replay", "path": str(self.path) if self.path else None,
                "samples": len(self), "duration_s": round(self.duration, 6), "speed": self.speed, "loop": self.loop}

    def poll(self, now: float) -> OperatorInput:
        if not self._times:
            self._load()
        if self._now0 is None:
            self._now0 = float(now)
        span = self._times[-1] - self._times[0]
        elapsed = (float(now) - self._now0) * self.speed
        if self.loop and span > 0:
            elapsed %= span + (span / max(len(self._times) - 1, 1))
        target = self._times[0] + elapsed
        i = max(0, bisect.bisect_right(self._times, target + 1e-9) - 1)
        self.exhausted = not self.loop and target > self._times[-1]
        sample = self._samples[i]
        return sample if self.keep_time else replace(sample, t=float(now))


# ------------------------------------------------------------------------------- built-in .npz format
def save_inputs(path: str | Path, inputs: Iterable[OperatorInput]) -> Path:
    """Write OperatorInputs as one .npz of stacked arrays (fixtures; the recorder has its own container)."""
    inputs = list(inputs)
    if not inputs:
        raise ValueError("no inputs to save")
    sites = list(BODY_SITES)
    arrays = {
        "t": np.array([x.t for x in inputs], np.float64),
        "poses": np.stack([np.stack([x.poses.get(s, np.eye(4)) for s in sites]) for x in inputs]),
        "pose_valid": np.array([[bool(x.pose_valid.get(s, False)) for s in sites] for x in inputs]),
        "hands": np.stack([np.stack([x.hand_keypoints.get(h, np.zeros((21, 3))) for h in HAND_SIDES]) for x in inputs]),
        "hand_valid": np.array([[bool(x.hand_valid.get(h, False)) for h in HAND_SIDES] for x in inputs]),
        "axes": np.stack([np.asarray(x.axes, np.float64) for x in inputs]),
        "buttons": np.array(["|".join(sorted(x.buttons)) for x in inputs]),
        "sites": np.array(sites),
    }
    path = Path(path)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def load_inputs(path: str | Path) -> list[OperatorInput]:
    with np.load(Path(path)) as z:
        sites = [str(s) for s in z["sites"]]
        out = []
        for i in range(len(z["t"])):
            out.append(OperatorInput(
                t=float(z["t"][i]),
                poses={s: z["poses"][i, j] for j, s in enumerate(sites)},
                pose_valid={s: bool(z["pose_valid"][i, j]) for j, s in enumerate(sites)},
                hand_keypoints={h: z["hands"][i, j] for j, h in enumerate(HAND_SIDES)},
                hand_valid={h: bool(z["hand_valid"][i, j]) for j, h in enumerate(HAND_SIDES)},
                axes=z["axes"][i],
                buttons=frozenset(b for b in str(z["buttons"][i]).split("|") if b),
            ))
    return out


register_reader(lambda p: p.suffix == ".npz", load_inputs)

__all__ = ["ReplayInput", "register_reader", "save_inputs", "load_inputs"]
