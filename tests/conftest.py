"""Fixtures shared by several test modules."""
from __future__ import annotations

import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two xdist workers share 2 cores: one BLAS/OpenMP thread each (and in the processes they start)
    # instead of 2 x 2 threads fighting over the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _ordinary_scheduling_after_each_test():
    """A library that turns the test's thread real-time (SVT-AV1 does, as root, inside LeRobot's encoder;
    psi0's own encoder guards itself: shards/scheduling.py) must not leak it into later tests: every process
    they start (a browser, a job) would inherit SCHED_FIFO 99 and starve the machine."""
    yield
    from shards.scheduling import ordinary_scheduling

    ordinary_scheduling()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models are latency-bound: one intra-op thread is ~10x faster on a shared 2-core box."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TIMING_MODULES = frozenset({
    "test_amo.py", "test_rtc_engine.py", "test_safety_supervisor.py", "test_serve.py", "test_teleop_keys.py",
    "test_teleop_loop.py", "test_teleop_loop_process.py", "test_teleop_mapping.py", "test_teleop_record.py",
    "test_teleop_recording.py", "test_unitree_bridge.py",
})
"""Modules that assert wall-clock figures (50 Hz deadlines, loop jitter, link latency, publish rates).
`make test` runs them after the parallel part, alone on the machine, so their bounds measure the code
and not a neighbouring test: `pytest -m timing` / `pytest -m "not timing"`."""


LONGEST_FIRST = (
    "test_recipe.py", "test_object_store.py", "test_trainer.py", "test_ingest_job.py", "test_ray_cluster.py",
    "test_gpu_full.py", "test_ray_worker_death.py", "test_dashboard.py", "test_dashboard_browser.py",
    "test_sim_record.py", "test_view_export.py", "test_deploy_rtc_policy.py", "test_bench_ingest.py",
)
"""Modules by measured wall time, longest first (the CI rehearsal's `--durations`: the quick recipe alone
380 s). `make test` passes `--no-loadscope-reorder`, so xdist hands files out in this order: the longest
start first instead of last (by test count, test_recipe.py's one test started after 13 min and the pass
waited 6 more minutes for it alone)."""


UNTIMED_IN_TIMING_MODULES = frozenset({
    ("test_rtc_engine.py", "test_trained_expert_switches_chunks_smoothly_with_prefix"),   # stepped clock, 20 s training
    ("test_teleop_mapping.py", "test_optimised_solvers_match_the_reference_numpy_solvers"),  # pure computation, 2 x 9 s
})
"""Tests in those modules that assert no wall-clock figure: they run in the parallel pass (~37 s off the
serial one)."""


def pytest_collection_modifyitems(config, items):
    for item in items:
        untimed = (item.path.name, getattr(item, "originalname", item.name)) in UNTIMED_IN_TIMING_MODULES
        if item.path.name in TIMING_MODULES and not untimed:
            item.add_marker(pytest.mark.timing)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))      # stable: the rest keep their order
