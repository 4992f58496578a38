"""Humanoid Everyday (task zips or folders, Unitree G1/H1) → LeRobot v3 / Zarr v3 shards, Ψ₀ actions.

    python pipelines/humanoid_everyday.py --input /data/he --output /data/shards/he --runner ray

Same as `psi0 ingest humanoid_everyday ...` (run from the repository root with the environment active).
"""
from pipelines.jobcli import main

if __name__ == "__main__":
    raise SystemExit(main(source="humanoid_everyday", prog="pipelines/humanoid_everyday.py"))
