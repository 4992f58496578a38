"""Output roots of the built-in samples, written by the real ingest job once per test process, for the view
tests: Humanoid Everyday (LeRobot + Zarr twins, 2 episodes a shard: G1 and H1 episodes, 3 tasks) and EgoDex
(LeRobot, 2 episodes a shard, 5 tasks). Episode tables are cached in a temporary PSI0_CACHE_DIR."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def sample_roots() -> dict[str, Path]:
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig
    from samples import egodex as eg_sample
    from samples import humanoid_everyday as he_sample

    base = Path(tempfile.mkdtemp(prefix="psi0-views-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    os.environ["PSI0_CACHE_DIR"] = str(base / "cache")
    he_sample.write_sample(base / "src_he", resolution=(96, 64), seconds=0.8)
    eg_sample.write_sample(base / "src_eg", 0, (96, 64), 2, seconds=0.8)
    run_local(JobConfig(source="humanoid_everyday", input=str(base / "src_he"), output=str(base / "he"),
                        formats=("lerobot", "zarr"), episodes_per_shard=2, video_width=64, video_height=48))
    run_local(JobConfig(source="egodex", input=str(base / "src_eg"), output=str(base / "eg"), formats=("lerobot",),
                        episodes_per_shard=2, video_width=64, video_height=48))
    return {"base": base, "he": base / "he", "eg": base / "eg"}


def copy_root(src: Path, dst: Path) -> Path:
    """A second output root with the same bytes at another place (a re-ingest of the same data)."""
    shutil.copytree(src, dst)
    return dst


def reseal(root: Path) -> Path:
    """Record the current bytes of every shard of `root` as written (shard.json `files`/`content_hash` and the
    catalog's `content_hash`), the way the writer does: for a test that builds a *different* dataset by editing
    a copy, not one that simulates tampering (integrity checks on open would refuse the edited copy)."""
    import json

    from schemas.catalog import Catalog
    from schemas.episode import canonical_json
    from schemas.names import CATALOG_FILE, SHARD_FILE
    from shards import integrity

    hashes: dict[str, str] = {}
    for marker in sorted(root.glob(f"shards/*/{SHARD_FILE}")):
        data = json.loads(marker.read_text())
        content_hash, files = integrity.hash_files(marker.parent)
        data["files"], data["record"]["content_hash"] = files, content_hash
        marker.write_text(canonical_json(data))
        hashes[data["record"]["path"]] = content_hash
    catalog = root / CATALOG_FILE
    data = json.loads(catalog.read_text())
    for rec in data.get("shards", []):
        rec["content_hash"] = hashes.get(rec["path"], rec.get("content_hash"))
    catalog.write_text(Catalog.from_json(data).dumps())
    integrity.forget()
    return root
