"""`teleop` front door: help, devices, clear failures for absent hardware, psi0 dispatch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psi0", "teleop", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_help_teaches_keys_and_format():
    r = run("record", "--help")
    assert r.returncode == 0
    for word in ("--episodes", "--duration", "--device", "space start/stop", "e-stop", "teleop check DIR --repair"):
        assert word in r.stdout, word


def test_devices_lists_sim_and_explains_missing_runtimes():
    r = run("devices", "--json")
    assert r.returncode == 0, r.stderr
    rows = {d["name"]: d for d in json.loads(r.stdout)}
    assert rows["sim"]["available"] and rows["replay"]["available"] and rows["sim-robot"]["available"]
    assert not rows["openvr"]["available"] and rows["openvr"]["reason"]


def test_missing_hardware_fails_with_the_runtime_named(tmp_path):
    r = run("record", "--task", "lunchbag", "--device", "openvr", "--episodes", "1", "--out", str(tmp_path))
    assert r.returncode == 3 and "SteamVR" in r.stderr
    assert not any(tmp_path.iterdir())                      # nothing half-created


def test_check_without_recording(tmp_path):
    r = run("check", str(tmp_path))
    assert r.returncode == 1 and "NO RECORDING FOUND" in r.stdout
