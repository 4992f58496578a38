import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


HELP_COMMANDS = [
    ["-m", "psi0", "--help"], ["-m", "psi0", "sample", "--help"], ["-m", "psi0", "inspect", "--help"],
    ["-m", "psi0", "validate", "--help"], ["-m", "psi0", "tokenizer", "--help"], ["-m", "psi0", "dashboard", "--help"],
    ["pipelines/egodex_tokenize.py", "--help"], ["pipelines/humanoid_everyday.py", "--help"],
    ["pipelines/teleop_ingest.py", "--help"], ["-m", "psi0", "ingest", "--help"],
    ["-m", "psi0", "ingest", "teleop", "--help"],
]

# Runs every command of HELP_COMMANDS as `python ARGS` would: a module as __main__ (runpy.run_module), a
# script as __main__ with its own folder first on sys.path (runpy.run_path); prints one JSON line per command.
_HELP_RUNNER = """
import contextlib, io, json, os, runpy, sys
for args in json.loads(sys.argv[1]):
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if args[0] == "-m":
                sys.argv = [args[1], *args[2:]]
                runpy.run_module(args[1], run_name="__main__", alter_sys=True)
            else:
                sys.argv = list(args)
                sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))
                runpy.run_path(args[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    print(json.dumps({"args": args, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()[-2000:]}))
"""


def test_help_teaches():
    """Every entry point's --help exits 0 with a usage text. One interpreter runs them all: 11 fresh processes
    paid their imports 11 times (~25 s of the suite when the ingest entries still imported torch)."""
    import json

    out = subprocess.run([sys.executable, "-c", _HELP_RUNNER, json.dumps(HELP_COMMANDS)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["args"] for r in results] == HELP_COMMANDS
    for r in results:
        assert r["code"] == 0, (r["args"], r["stderr"])
        assert "usage" in r["stdout"].lower(), (r["args"], r["stdout"][:500])


def test_unknown_command_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "psi0", "frobnicate"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command" in out.stderr
