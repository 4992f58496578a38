"""Humanoid Everyday (task zips or folders, Unitree G1/H1) → LeRobot v3 / Zarr v3 shards, 36-D Ψ₀ actions.

    python pipelines/humanoid_everyday.py --input /data/he --output /data/shards/he --runner ray
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.jobcli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main("humanoid_everyday", __doc__.split("\n")[0], "pipelines/humanoid_everyday.py",
                          defaults={"token_column": "action", "token_horizon": 16, "episodes_per_shard": 32}))
