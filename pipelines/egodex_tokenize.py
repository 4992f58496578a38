"""EgoDex → LeRobot v3 / Zarr v3 shards with FAST action tokens (two passes: fit, then write).

    python pipelines/egodex_tokenize.py --input /data/egodex --output /data/shards/egodex --runner ray
    RAY_AUTH_MODE=token ray job submit --working-dir . -- \
        python pipelines/egodex_tokenize.py --input /data/egodex --output /data/shards/egodex --runner ray

Same as `psi0 ingest egodex ...` (run from the repository root with the environment active).
"""
from pipelines.jobcli import main

if __name__ == "__main__":
    raise SystemExit(main(source="egodex", prog="pipelines/egodex_tokenize.py"))
