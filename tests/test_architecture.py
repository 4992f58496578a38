"""The import rules of docs/architecture.md, checked on the source tree (and, for the dashboard, at run time).

Data flows one way: contracts (schemas) at the bottom, readers and storage above them, orchestration,
training, serving and the web view on top. A layer may import only the layers this table names; an import
outside the table is an architecture change and belongs in docs/architecture.md first.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT = ("schemas", "converters", "shards", "samples", "pipelines", "teleop", "sim", "training", "deploy",
           "dashboard", "psi0")

ALLOWED: dict[str, tuple[str, ...]] = {
    "schemas": (),
    "converters": ("schemas",),
    "shards": ("schemas",),
    "samples": ("schemas",),
    "teleop": ("schemas", "converters.retarget", "sim"),
    "sim": ("schemas",),
    "pipelines": ("schemas", "converters", "shards", "sim", "teleop"),
    "training": ("schemas", "shards", "converters.tokenize"),
    "deploy": ("schemas", "shards", "converters.tokenize", "training", "sim", "teleop.devices", "teleop.streams"),
    "dashboard": ("schemas", "shards", "converters.tokenize"),
}
"""package -> the other project packages (or sub-packages) it may import. `psi0` (the front door, lazy
imports only), benchmarks/ and tests/ may import anything."""

SCHEMAS_THIRD_PARTY = ("numpy", "pyarrow")
"""schemas/ is imported by everything: at module level it needs only these (fsspec loads lazily)."""


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(module, at module level, line) for every absolute import in a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in top, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, id(node) in top, node.lineno))
    return out


def _allowed(package: str, module: str) -> bool:
    root = module.split(".")[0]
    if root not in PROJECT or root == package:
        return True
    return any(module == rule or module.startswith(rule + ".") for rule in ALLOWED[package])


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layers_import_only_what_the_table_allows(package):
    bad = [f"{path.relative_to(REPO)}:{line} imports {module}"
           for path in sorted((REPO / package).rglob("*.py"))
           for module, _, line in _imports(path) if not _allowed(package, module)]
    assert not bad, "imports outside docs/architecture.md's table:\n" + "\n".join(bad)


def test_schemas_load_with_numpy_and_pyarrow_only():
    allowed = set(sys.stdlib_module_names) | set(SCHEMAS_THIRD_PARTY) | {"schemas"}
    bad = [f"{path.relative_to(REPO)}:{line} imports {module} at module level"
           for path in sorted((REPO / "schemas").rglob("*.py"))
           for module, top, line in _imports(path) if top and module.split(".")[0] not in allowed]
    assert not bad, "\n".join(bad)


def test_dashboard_never_imports_torch():
    """Statically (no `torch` anywhere in dashboard/) and at run time (nothing it imports pulls torch in)."""
    static = [f"{path.relative_to(REPO)}:{line}" for path in sorted((REPO / "dashboard").rglob("*.py"))
              for module, _, line in _imports(path) if module.split(".")[0] == "torch"]
    assert not static, static
    code = "import sys, dashboard.app, dashboard.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ingest_entry_points_load_without_torch():
    """The converters and the ingest CLI need torch only where an episode is retargeted (`converters.retarget`
    loads its torch stage lazily): `--help` of an ingest job, and the Ray workers of sources that do not
    retarget, are spared ~4.5 s of torch imports."""
    code = "import sys, pipelines.jobcli, converters.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "importing the ingest entry points pulled torch in"
