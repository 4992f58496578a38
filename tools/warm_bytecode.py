"""Write the .pyc files of what psi0 imports, and nothing else, right after the install.

Why: byte-compiling the whole ~30 000-file environment at install (`uv pip install --compile-bytecode`)
took ~70 s of the set-up, most of it for modules psi0 never imports (transformers' other models, torch's
test helpers). Importing psi0's own modules and the dependencies it imports lazily, once, with bytecode
writing on, compiles exactly those (~10 s); anything rarer is compiled on its first import. The .pyc files
are then read by every later process, even where the environment sets PYTHONDONTWRITEBYTECODE (that stops
writing caches, not reading them).

Run by tools/setup_env.sh; `python tools/warm_bytecode.py --list` prints the modules it imports.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import time
from pathlib import Path

PSI0_PACKAGES = ("psi0", "schemas", "converters", "shards", "pipelines", "teleop", "training", "deploy",
                 "dashboard", "samples", "sim")
"""psi0's top-level packages (pyproject.toml's packages.find)."""

LAZY_DEPENDENCIES = (
    "transformers.models.qwen3_vl.modeling_qwen3_vl", "transformers.modeling_utils",
    "lerobot.datasets.lerobot_dataset", "lerobot.policies.factory", "lerobot.policies.act.modeling_act",
    "lerobot.policies.diffusion.modeling_diffusion", "lerobot.scripts.lerobot_train",
    "ray", "ray.data", "ray.dashboard.modules.job.sdk", "apache_beam", "apache_beam.options.pipeline_options",
    "mediapipe.tasks.python.vision", "aiohttp", "uvicorn", "fastapi", "numba", "scipy.optimize",
    "pyarrow.parquet", "pyarrow.json", "zarr", "zarr.codecs", "numcodecs", "h5py", "av", "cv2",
    "tokenizers", "safetensors.torch", "fsspec", "s3fs", "websocket", "mujoco", "rerun",
    # the test suite's own
    "pytest", "xdist", "selenium.webdriver", "moto.server",
)
"""Dependencies psi0 (or its tests) import inside functions, which importing psi0's modules does not reach."""


def psi0_modules(root: Path) -> list[str]:
    """Every module of psi0's packages under `root` (the checkout), in a stable order."""
    names = []
    for package in PSI0_PACKAGES:
        if not (root / package / "__init__.py").exists():
            continue
        names.append(package)
        for info in pkgutil.walk_packages([str(root / package)], prefix=package + "."):
            if not info.name.endswith(".__main__"):          # `python -m` entry points run on import
                names.append(info.name)
    return sorted(names)


def warm(modules: list[str]) -> tuple[int, list[str]]:
    """Import each module; returns (imported, failures as 'module: reason'). A failure is not an error:
    optional hardware SDKs (openvr, unitree_sdk2py) are absent on most machines."""
    ok, failed = 0, []
    for name in modules:
        try:
            importlib.import_module(name)
            ok += 1
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a script module counts as a failure too
            failed.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return ok, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the modules it would import, and exit")
    parser.add_argument("--verbose", action="store_true", help="print each module that failed to import")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    modules = psi0_modules(root) + list(LAZY_DEPENDENCIES)
    if args.list:
        print("\n".join(modules))
        return 0
    if os.environ.get("PYTHONDONTWRITEBYTECODE") or sys.dont_write_bytecode:
        print("warm_bytecode: PYTHONDONTWRITEBYTECODE is set, nothing would be written; run with it cleared",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    os.environ.setdefault("MUJOCO_GL", "egl")
    logging.disable(logging.WARNING)                     # apache_beam warns about absent GCS/BigQuery clients
    start = time.perf_counter()
    ok, failed = warm(modules)
    print(f"warm_bytecode: {ok} modules imported and compiled, {len(failed)} skipped, "
          f"{time.perf_counter() - start:.1f} s")
    if args.verbose:
        print("\n".join("  " + line for line in failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
