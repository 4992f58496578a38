"""Where the closed loop spends its time, per part (physics, control, observation, render, policy).

Each part accumulates wall seconds (`time.perf_counter`) and CPU seconds of the whole process
(`time.process_time`, which includes the software renderer's threads). On a shared machine the wall
time grows with the load while the CPU time stays close to what an idle machine would measure, so
`psi0 sim bench` reports both: the CPU figures are the idle-equivalent cost of each part.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class PartTimes:
    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def start() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def stop(self, part: str, t0: tuple[float, float]) -> None:
        self.wall[part] = self.wall.get(part, 0.0) + time.perf_counter() - t0[0]
        self.cpu[part] = self.cpu.get(part, 0.0) + time.process_time() - t0[1]
        self.calls[part] = self.calls.get(part, 0) + 1

    def reset(self) -> None:
        self.wall.clear()
        self.cpu.clear()
        self.calls.clear()

    def per_sim_second(self, sim_seconds: float) -> dict[str, dict[str, float]]:
        """{part: {"wall_ms", "cpu_ms"}} per simulated second (ms of work for 1 s of simulated time)."""
        s = max(sim_seconds, 1e-9)
        return {p: {"wall_ms": round(1e3 * self.wall[p] / s, 1), "cpu_ms": round(1e3 * self.cpu[p] / s, 1),
                    "calls_per_s": round(self.calls[p] / s, 1)} for p in sorted(self.wall)}
