"""Real-time chunking engine: inference runs asynchronously with execution.

The robot executes one action per control tick from the current chunk. Every `execute_horizon`
ticks the engine starts inference for the next chunk in the background. Inference takes `d`
ticks (~160 ms for the 2.5 B model, i.e. 5 ticks at 30 Hz), during which the robot keeps
executing the *current* chunk, so those `d` actions are already committed: they are passed to
the policy as a prefix (training-time RTC hard-sets them), and the new chunk starts where the
prefix ends. The delay `d` is predicted from recent measured latencies (a high quantile, capped
at the largest delay training drew, max_delay - 1: `schemas.chunking`, whose values a trained
policy carries; `RTCConfig.from_chunking`); if inference is slower than predicted the engine skips ahead in the
new chunk and counts a `late` event, if the chunk runs out it holds the last action and counts an
`underrun`. Clock-free core: `tick()` is driven by the control loop, `InferenceRunner`s decide
when results arrive (a thread for real time, a fixed step latency for deterministic tests).
"""
from __future__ import annotations

import math
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from schemas.actions import PSI0_ACTION
from schemas.chunking import REFERENCE_CHUNKING, ChunkingSpec


class ChunkPolicy(Protocol):
    """policy(obs, prefix (d, A), delay d) -> chunk (H, A) whose first d rows equal the prefix."""

    def __call__(self, obs: Any, prefix: np.ndarray, delay: int) -> np.ndarray: ...


@dataclass(frozen=True)
class RTCConfig:
    control_hz: float = 30.0          # reference: chunks of 30 steps at 30 Hz
    horizon: int = REFERENCE_CHUNKING.horizon
    action_dim: int = PSI0_ACTION.size
    execute_horizon: int = REFERENCE_CHUNKING.min_execute_horizon   # next inference after this many ticks
    max_delay: int = REFERENCE_CHUNKING.max_delay   # the model's training-time RTC max_delay (d <= max_delay - 1)
    initial_latency_s: float = 0.16   # before any measurement (2.5 B params on one GPU)
    latency_quantile: float = 0.9
    latency_window: int = 20
    use_prefix: bool = True           # False = naive chunking (baseline: no conditioning)

    def __post_init__(self) -> None:
        if not 0 < self.execute_horizon <= self.horizon:
            raise ValueError("execute_horizon must be in (0, horizon]")
        if not 1 <= self.max_delay <= self.horizon:
            raise ValueError("max_delay must be in [1, horizon]")

    @classmethod
    def from_chunking(cls, spec: ChunkingSpec, **overrides: Any) -> "RTCConfig":
        """The engine for a policy trained with `spec` (`PolicyConfig.chunking()`): its chunk length, its
        max_delay, its minimum execution horizon as the execute horizon; `overrides` set the rest."""
        values = {"horizon": spec.horizon, "max_delay": spec.max_delay, "execute_horizon": spec.min_execute_horizon}
        values.update(overrides)
        return cls(**values)

    @property
    def largest_delay(self) -> int:
        """The largest delay training drew: the engine never predicts more."""
        return self.max_delay - 1


@dataclass(frozen=True)
class InferenceRequest:
    obs: Any
    start_step: int          # chunk row 0 is executed at this tick
    delay: int               # predicted ticks until the result is usable
    prefix: np.ndarray       # (delay, A) actions already committed for ticks start_step..+delay
    submitted_at: float      # runner clock


@dataclass
class EngineStats:
    ticks: int = 0
    chunks: int = 0
    late: int = 0                       # result arrived after the predicted delay
    underruns: int = 0                  # ticks with no fresh action (held the last one)
    dropped: int = 0                    # results that arrived after their whole chunk expired
    delays_predicted: list[int] = field(default_factory=list)
    delays_actual: list[int] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    boundary_jumps: list[float] = field(default_factory=list)  # |a_k - a_{k-1}| at chunk switches

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_s) * 1e3
        return {
            "ticks": self.ticks, "chunks": self.chunks, "late": self.late, "underruns": self.underruns,
            "dropped": self.dropped,
            "delay_mean": float(np.mean(self.delays_actual)) if self.delays_actual else 0.0,
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None,
            "boundary_jump_mean": float(np.mean(self.boundary_jumps)) if self.boundary_jumps else 0.0,
        }


class InferenceRunner(Protocol):
    def submit(self, policy: ChunkPolicy, request: InferenceRequest) -> None: ...
    def poll(self, step: int) -> tuple[InferenceRequest, np.ndarray, float] | None: ...
    def busy(self) -> bool: ...
    def close(self) -> None: ...


class ThreadedRunner:
    """Real asynchrony: one background thread (torch releases the GIL in its kernels)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtc-inference")
        self._job: tuple[InferenceRequest, Future] | None = None
        self.clock = clock

    def submit(self, policy: ChunkPolicy, request: InferenceRequest) -> None:
        def run() -> tuple[np.ndarray, float]:
            out = policy(request.obs, request.prefix, request.delay)
            return out, self.clock()
        self._job = (request, self._pool.submit(run))

    def poll(self, step: int):
        if self._job is None or not self._job[1].done():
            return None
        request, fut = self._job
        self._job = None
        chunk, done_at = fut.result()  # re-raises a policy error in the control thread
        return request, chunk, done_at - request.submitted_at

    def busy(self) -> bool:
        return self._job is not None

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class SteppedRunner:
    """Deterministic latency in ticks: the result is computed at submit and released `latency(step)`
    ticks later. Used by tests and simulations to pin down the engine's semantics exactly."""

    def __init__(self, latency_steps: int | Callable[[int], int], control_hz: float = 30.0):
        self.latency = latency_steps if callable(latency_steps) else (lambda _s: latency_steps)
        self.control_hz = control_hz
        self._job: tuple[InferenceRequest, np.ndarray, int] | None = None

    def submit(self, policy: ChunkPolicy, request: InferenceRequest) -> None:
        chunk = policy(request.obs, request.prefix, request.delay)
        self._job = (request, chunk, request.start_step + int(self.latency(request.start_step)))

    def poll(self, step: int):
        if self._job is None or step < self._job[2]:
            return None
        request, chunk, ready = self._job
        self._job = None
        return request, chunk, (ready - request.start_step) / self.control_hz

    def busy(self) -> bool:
        return self._job is not None

    def close(self) -> None:
        self._job = None


class RTCEngine:
    """Drive with `start(obs)` once, then `tick(obs)` once per control period -> action to execute."""

    def __init__(self, policy: ChunkPolicy, cfg: RTCConfig = RTCConfig(),
                 runner: InferenceRunner | None = None, clock: Callable[[], float] = time.monotonic):
        self.policy, self.cfg = policy, cfg
        self.runner = runner if runner is not None else ThreadedRunner(clock)
        self.clock = clock
        self.stats = EngineStats()
        self.step = 0
        self._chunk: np.ndarray | None = None
        self._chunk_start = 0
        self._last: np.ndarray | None = None
        self._recent_delays: deque[int] = deque(maxlen=cfg.latency_window)

    # -- delay prediction ------------------------------------------------------------------
    def predicted_delay(self) -> int:
        """Ticks the next inference will take: a high quantile of recent ones, capped at the largest delay
        training drew (max_delay - 1); a slower inference is counted `late` and skipped ahead of."""
        if self._recent_delays:
            d = float(np.quantile(np.asarray(self._recent_delays), self.cfg.latency_quantile))
        else:
            d = self.cfg.initial_latency_s * self.cfg.control_hz
        return int(min(self.cfg.largest_delay, max(0, math.ceil(d - 1e-9))))

    # -- control-loop API ------------------------------------------------------------------
    def start(self, obs: Any) -> None:
        """First chunk, synchronously (the robot is standing still; nothing is committed yet)."""
        obs = obs() if callable(obs) else obs
        chunk = np.asarray(self.policy(obs, np.zeros((0, self.cfg.action_dim), np.float32), 0))
        self._check(chunk)
        self._chunk, self._chunk_start = chunk, self.step
        self.stats.chunks += 1

    def tick(self, obs: Any) -> np.ndarray:
        if self._chunk is None:
            raise RuntimeError("RTCEngine.start(obs) must be called before tick()")
        k = self.step
        result = self.runner.poll(k)
        if result is not None:
            self._install(*result, step=k)
        if not self.runner.busy() and k - self._chunk_start >= self.cfg.execute_horizon:
            self._submit(obs, k)
        offset = k - self._chunk_start
        if offset < len(self._chunk):
            action = self._chunk[offset]
        else:
            self.stats.underruns += 1
            action = self._last if self._last is not None else self._chunk[-1]
        self._last = action
        self.step += 1
        self.stats.ticks += 1
        return action

    def close(self) -> None:
        self.runner.close()

    # -- internals -------------------------------------------------------------------------
    def _submit(self, obs: Any, k: int) -> None:
        if callable(obs):       # a thunk: the observation is built (rendered) only when a request needs it
            obs = obs()
        d = self.predicted_delay() if self.cfg.use_prefix else 0
        offset = k - self._chunk_start
        rows = self._chunk[offset: offset + d]
        if len(rows) < d:  # the current chunk ends inside the delay: the robot will hold its last row
            pad = np.repeat(self._chunk[-1:], d - len(rows), axis=0)
            rows = np.concatenate([rows, pad]) if len(rows) else pad
        request = InferenceRequest(obs=obs, start_step=k, delay=d, prefix=np.array(rows, copy=True),
                                   submitted_at=self.clock())
        self.stats.delays_predicted.append(d)
        self.runner.submit(self.policy, request)

    def _install(self, request: InferenceRequest, chunk: np.ndarray, latency_s: float, step: int) -> None:
        chunk = np.asarray(chunk)
        self._check(chunk)
        actual = step - request.start_step
        self._recent_delays.append(actual)
        self.stats.delays_actual.append(actual)
        self.stats.latencies_s.append(latency_s)
        if actual >= len(chunk):
            self.stats.dropped += 1
            return
        if actual > request.delay:
            self.stats.late += 1
        if self._last is not None:
            self.stats.boundary_jumps.append(float(np.abs(chunk[actual] - self._last).mean()))
        self._chunk, self._chunk_start = chunk, request.start_step
        self.stats.chunks += 1

    def _check(self, chunk: np.ndarray) -> None:
        if chunk.shape != (self.cfg.horizon, self.cfg.action_dim):
            raise ValueError(f"policy returned {chunk.shape}, expected ({self.cfg.horizon}, {self.cfg.action_dim})")
        if not np.isfinite(chunk).all():
            raise ValueError("policy returned non-finite actions")


def run_realtime(engine: RTCEngine, observe: Callable[[], Any], act: Callable[[np.ndarray], None],
                 ticks: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> list[float]:
    """Fixed-rate control loop (deadline scheduling, no drift). Returns tick periods in seconds."""
    period = 1.0 / engine.cfg.control_hz
    engine.start(observe())
    next_t = clock()
    stamps: list[float] = []
    for _ in range(ticks):
        now = clock()
        if now < next_t:
            sleep(next_t - now)
        stamps.append(clock())
        act(engine.tick(observe()))
        next_t += period
        if clock() > next_t + period:  # overran by more than a period: re-anchor, don't burst
            next_t = clock()
    return list(np.diff(stamps))
