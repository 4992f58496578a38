"""benchmarks/dataset_views.py runs end to end at a small size: its generated shards pass the integrity
check every verb now makes (they once carried a placeholder content hash and the benchmark could not run),
and its last line carries the export comparison."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_dataset_views_benchmark_runs_small_and_prints_the_export_ratio(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "dataset_views.py"), "--episodes", "2000",
                           "--per-shard", "250", "--export-shards", "1", "--seconds", "1", "--repeat", "1",
                           "--work", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 2000 and result["shards"] == 8
    assert result["export_frames"] > 0 and result["export_vs_lerobot_aggregate"] > 0
    assert len(result["psi0_export_lerobot_s"]) == len(result["lerobot_aggregate_s"]) == 1
    for verb in ("merge_s", "filter_where_s", "sample_10pct_stratified_s", "split_80_10_10_s",
                 "merge_with_sketch_stats_warm_s"):
        assert result[verb] >= 0
