"""EgoDex → LeRobot v3 / Zarr v3 shards with FAST action tokens (two passes: fit, then write).

    python pipelines/egodex_tokenize.py --input /data/egodex --output /data/shards/egodex --runner ray
    ray job submit --working-dir . -- python pipelines/egodex_tokenize.py --input ... --output ...
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # runnable as a script / under `ray job submit`

from pipelines.jobcli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main("egodex", __doc__.split("\n")[0], "pipelines/egodex_tokenize.py",
                          defaults={"token_column": None, "token_horizon": 1, "episodes_per_shard": 64}))
