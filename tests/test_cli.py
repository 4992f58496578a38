import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args", [
    ["-m", "psi0", "--help"], ["-m", "psi0", "sample", "--help"], ["-m", "psi0", "inspect", "--help"],
    ["-m", "psi0", "validate", "--help"], ["-m", "psi0", "tokenizer", "--help"], ["-m", "psi0", "dashboard", "--help"],
    ["pipelines/egodex_tokenize.py", "--help"], ["pipelines/humanoid_everyday.py", "--help"],
    ["pipelines/teleop_ingest.py", "--help"], ["-m", "psi0", "ingest", "--help"],
    ["-m", "psi0", "ingest", "teleop", "--help"],
])
def test_help_teaches(args):
    out = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()


def test_unknown_command_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "psi0", "frobnicate"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command" in out.stderr
