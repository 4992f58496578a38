"""Teleop recordings (`teleop record` sessions) → LeRobot v3 / Zarr v3 shards at 30 fps, 36-D Ψ₀ actions.

    python pipelines/teleop_ingest.py --input recordings/ --output /data/shards/teleop --runner ray
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.jobcli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main("teleop", __doc__.split("\n")[0], "pipelines/teleop_ingest.py",
                          defaults={"token_column": "action", "token_horizon": 16, "episodes_per_shard": 32}))
