"""Start a subprocess that SIGKILLs itself at a chosen point of an ingest job (see `sitecustomize`)."""
from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def fault_env(point: str, base: dict[str, str] | None = None, once: str | Path | None = None) -> dict[str, str]:
    """`base` (default: this environment) plus PSI0_FAULT=`point` ("<name>:<n>") and this folder first on
    PYTHONPATH, so the subprocess and the Ray workers it starts load the fault hooks."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["PSI0_FAULT"] = point
    if once is not None:
        env["PSI0_FAULT_ONCE"] = str(once)
    return env
