"""Crash-test fault injection, kept out of production code.

A test that wants an ingest job to die at a chosen point starts it with this folder on PYTHONPATH
and `PSI0_FAULT=<point>:<n>` (see `fault_injection.fault_env`). Python imports `sitecustomize` at
start-up, in the job's process and in every Ray worker (they inherit PYTHONPATH); when PSI0_FAULT is
set it wraps the job's stage functions as their modules load, and SIGKILLs the process the n-th time
the point is reached:

    shard-start  a shard that is not committed yet is about to be written   OutputRoot.write_shard
    episode      the shard writer takes its n-th episode                     OutputRoot.write_shard's input
    upload       a shard format's files are uploaded, its shard.json not yet  shards.objectstore.publish_shard
    finalize     catalog.json is about to be written                         pipelines.stages.finalize

With `PSI0_FAULT_ONCE=<file>` only the first process to get there dies (it creates the file first):
how a test kills one Ray worker mid-episode and lets the retried task succeed.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import signal
import sys
from typing import Any, Callable

SPEC = os.environ.get("PSI0_FAULT", "")
_COUNTS: dict[str, int] = {}


def reached(point: str) -> None:
    """Count `point`; SIGKILL this process when PSI0_FAULT names it and the count is reached."""
    name, _, n = SPEC.partition(":")
    if name != point:
        return
    _COUNTS[point] = _COUNTS.get(point, 0) + 1
    if _COUNTS[point] < int(n):
        return
    once = os.environ.get("PSI0_FAULT_ONCE")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)


def _patch_output(module: Any) -> None:
    write_shard = module.OutputRoot.write_shard

    def counted(episodes: Any) -> Any:
        for item in episodes:
            reached("episode")
            yield item

    def faulty_write_shard(self: Any, shard_id: str, episodes: Any, config: Any) -> Any:
        reached("shard-start")
        return write_shard(self, shard_id, counted(episodes), config)

    module.OutputRoot.write_shard = faulty_write_shard


def _patch_objectstore(module: Any) -> None:
    publish_shard = module.publish_shard

    def faulty_publish_shard(local_shard: Any, url: str, after_data: Any = None) -> None:
        return publish_shard(local_shard, url, after_data=lambda: reached("upload"))

    module.publish_shard = faulty_publish_shard


def _patch_stages(module: Any) -> None:
    finalize = module.finalize

    def faulty_finalize(*args: Any, **kwargs: Any) -> Any:
        reached("finalize")
        return finalize(*args, **kwargs)

    module.finalize = faulty_finalize


PATCHES: dict[str, Callable[[Any], None]] = {
    "pipelines.output": _patch_output, "shards.objectstore": _patch_objectstore, "pipelines.stages": _patch_stages,
}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Runs `PATCHES[name](module)` right after `name` is executed, before anyone imports names from it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


if SPEC:
    sys.meta_path.insert(0, _PatchAfterImport())
