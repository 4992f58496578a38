"""Interactive `teleop record` driven through a real terminal (tmux): start/stop, mark, discard, e-stop, quit."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from schemas.recording import episode_info, read_stream, table_to_commands

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def _wait(what, predicate, timeout=90.0, pane=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", pane], capture_output=True, text=True).stdout if pane else ""
    raise AssertionError(f"timed out waiting for {what}\n{screen}")


def test_interactive_keys_through_tmux(tmp_path):
    name = f"psi0-teleop-keys-{os.getpid()}"
    out = tmp_path / "rec"
    rc = tmp_path / "rc"
    cmd = (f"cd {ROOT} && HF_HUB_OFFLINE=1 {sys.executable} -m psi0 teleop record --task lunchbag --out {out} "
           f"--session keys --countdown 0.3; echo $? > {rc}; sleep 30")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "220", "-y", "50", cmd], check=True)
    session = out / "keys"

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout

    def key(*keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", name, *keys], check=True)

    try:
        _wait("ready prompt", lambda: "press space" in screen(), pane=name)
        assert "keys: space start/stop" in screen()
        key("Space")                                       # episode 0: start, mark success, stop
        _wait("episode 0", lambda: (session / "episode_000000" / "commands").is_dir(), pane=name)
        time.sleep(1.0)
        key("s")
        _wait("mark shown", lambda: "[success]" in screen() or "marked this episode" in screen(), pane=name)
        key("Space")
        _wait("episode 0 stopped", lambda: (session / "episode_000000" / "episode.json").is_file(), pane=name)
        key("Space")                                       # episode 1: start, then discard (stops it)
        _wait("episode 1", lambda: (session / "episode_000001" / "commands").is_dir(), pane=name)
        time.sleep(0.5)
        key("d")
        _wait("episode 1 discarded", lambda: (session / "episode_000001" / "episode.json").is_file(), pane=name)
        key("f")                                           # after a stop, a mark relabels the last episode
        _wait("relabel", lambda: episode_info(session / "episode_000001")["outcome"] == "failure", pane=name)
        key("e")                                           # e-stop, then episode 2 under e-stop, then quit
        _wait("e-stop shown", lambda: "E-STOP" in screen(), pane=name)
        key("Space")
        _wait("episode 2", lambda: (session / "episode_000002" / "commands").is_dir(), pane=name)
        time.sleep(0.5)
        key("q")
        _wait("exit", rc.is_file, pane=name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    assert rc.read_text().strip() == "0"
    assert episode_info(session / "episode_000000")["outcome"] == "success"
    assert episode_info(session / "episode_000001")["outcome"] == "failure"
    assert episode_info(session / "episode_000002")["outcome"] == "unlabeled"     # quit stops it cleanly
    events = read_stream(session / "episode_000000" / "events").to_pylist()
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "episode_start" and "mark" in kinds and kinds[-1] == "episode_stop"
    assert json.loads(events[-1]["detail"])["outcome"] == "success"
    session_events = read_stream(session / "events").to_pylist()
    assert {"estop", "mark"} <= {e["kind"] for e in session_events}
    commands = table_to_commands(read_stream(session / "episode_000002" / "commands"))
    assert commands and all("estop" in c.flags for c in commands)
    velocities = np.stack([c.action[32:35] for c in commands])
    np.testing.assert_allclose(velocities, 0.0, atol=1e-6)          # e-stop: no locomotion
