"""Teleop recordings (`teleop record` sessions) → LeRobot v3 / Zarr v3 shards at 30 fps, Ψ₀ actions.

    python pipelines/teleop_ingest.py --input recordings/ --output /data/shards/teleop --runner ray

Same as `psi0 ingest teleop ...` (run from the repository root with the environment active).
"""
from pipelines.jobcli import main

if __name__ == "__main__":
    raise SystemExit(main(source="teleop", prog="pipelines/teleop_ingest.py"))
