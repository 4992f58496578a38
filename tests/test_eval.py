"""`psi0 eval`: Wilson intervals, the episode loop for chunk policies (RTC engine on the simulator clock),
the JSONL / summary / video / curve outputs, and the scripted expert vs the zero policy on a template."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploy.metrics import jerk_rms, summarize, wilson
from serve_fixture import tiny_run

ROOT = Path(__file__).resolve().parent.parent


def test_wilson_interval_matches_known_values_and_stays_in_bounds():
    lo, hi = wilson(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-3)
    lo, hi = wilson(20, 20)
    assert hi == 1.0 and lo == pytest.approx(0.8389, abs=1e-3)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_jerk_is_zero_for_constant_velocity_and_grows_with_steps():
    t = np.arange(30)[:, None] / 30.0
    assert jerk_rms(np.hstack([t, 2 * t]), 30.0) == pytest.approx(0.0, abs=1e-6)
    step = np.zeros((30, 2))
    step[15:] = 0.1
    assert jerk_rms(step, 30.0) > 100


def test_summary_is_per_task_and_overall():
    recs = [{"task": "a", "success": True, "jerk": 1.0}, {"task": "a", "success": False, "jerk": 3.0},
            {"task": "b", "success": True}]
    s = summarize(recs)
    assert s["episodes"] == 3 and s["successes"] == 2 and s["tasks"]["a"]["mean_jerk"] == 2.0
    assert s["tasks"]["b"]["ci95"] == pytest.approx(list(wilson(1, 1)), abs=1e-4)


def test_eval_of_a_served_checkpoint_writes_every_output(tmp_path, one_torch_thread):
    from deploy.eval import EvalConfig, evaluate
    run = tiny_run(tmp_path)
    out = tmp_path / "ev"
    cfg = EvalConfig(tasks=["bimanual_lift"], episodes=2, policy="run", run=str(run), latency_ms=160.0,
                     videos=1, out=str(out), max_seconds=1.0)
    summary = evaluate(cfg)
    lines = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and summary["episodes"] == 2
    for r in lines:
        for key in ("task", "seed", "success", "steps", "wall_s", "chunk_switch_jump", "jerk", "latency_ms_p50",
                    "latency_ms_p99", "late", "underruns", "grasp_assist"):
            assert key in r, key
        assert r["latency_ms_p50"] == pytest.approx(1000 * 5 / 30)       # 160 ms -> 5 ticks at 30 Hz
        assert r["steps"] == 50 and r["chunks"] >= 3
    assert (out / "videos" / "bimanual_lift_s1000.mp4").stat().st_size > 1000
    assert not (out / "videos" / "bimanual_lift_s1001.mp4").exists()
    curves = json.loads((out / "curves" / "bimanual_lift_s1000.json").read_text())
    assert len(curves["curves"]["t"]) == len(curves["curves"]["right_arm"]["right_shoulder_pitch"])
    saved = json.loads((out / "summary.json").read_text())
    assert saved["tasks"]["bimanual_lift"]["ci95"] == summary["ci95"]


@pytest.mark.slow
def test_expert_succeeds_and_zero_fails_on_a_template(tmp_path):
    """CLI end to end; 5 episodes each here (benchmarks/eval_scripted.py runs the 20-episode sweep)."""
    def run(policy: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "psi0", "eval", "--policy", policy, "--tasks", "bimanual_lift",
                               "--episodes", "5", "--videos", "0", "--quiet", "--out", str(tmp_path / policy)],
                              capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])
    expert, zero = run("expert"), run("zero")
    assert expert["success_rate"] >= 0.8 and expert["episodes"] == 5
    assert zero["success_rate"] <= 0.1
    assert {"success_rate", "ci95", "episodes"} <= set(expert)
