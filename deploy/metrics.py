"""Numbers an evaluation reports: Wilson intervals for success rates, jerk of executed motion, and
per-task / overall summaries of episode records."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable

import numpy as np

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default). Unlike the normal approximation
    it stays inside [0, 1] and is honest at 0/20 or 20/20, which is where robot evals live."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def jerk_rms(actions: np.ndarray, hz: float) -> float:
    """RMS of the third time-difference of an action sequence (units / s^3), over all its dims: how
    abruptly the commanded motion changes. 0 for fewer than 4 rows."""
    a = np.asarray(actions, np.float64)
    if a.ndim != 2 or len(a) < 4:
        return 0.0
    d3 = np.diff(a, n=3, axis=0) * hz ** 3
    return float(np.sqrt(np.mean(d3 ** 2)))


_MEANS = ("chunk_switch_jump", "jerk", "latency_ms_p50", "latency_ms_p99", "late", "underruns", "wall_s", "steps")


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per task and overall: episodes, successes, success_rate, ci95 (Wilson), and means of the metrics."""
    records = list(records)
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_task[r["task"]].append(r)

    def block(rs: list[dict]) -> dict[str, Any]:
        k = sum(bool(r["success"]) for r in rs)
        lo, hi = wilson(k, len(rs))
        out: dict[str, Any] = {"episodes": len(rs), "successes": k, "success_rate": k / len(rs) if rs else 0.0,
                               "ci95": [round(lo, 4), round(hi, 4)]}
        for key in _MEANS:
            vals = [float(r[key]) for r in rs if r.get(key) is not None]
            if vals:
                out[f"mean_{key}"] = float(np.mean(vals))
        return out

    return {"tasks": {t: block(rs) for t, rs in sorted(by_task.items())}, **block(records)}
