"""The user's first command, for real: `ray start --head` on loopback + `ray job submit --working-dir .`."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from samples import egodex as egodex_sample

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_job_api(url: str, token: str, head: subprocess.Popen) -> None:
    """Until the head's job API answers an authenticated `GET /api/jobs/` (the request `ray job list`
    makes): polled in-process every 0.25 s, not with a `ray job list` process every 2 s (~3 s of imports
    each, on the cores the head is starting on)."""
    request = urllib.request.Request(f"{url}/api/jobs/", headers={"Authorization": f"Bearer {token}"})
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))      # loopback: never via a proxy
    deadline = time.monotonic() + 120
    while True:
        try:
            with direct.open(request, timeout=10) as answer:
                if answer.status == 200:
                    return
        except OSError:           # refused while the dashboard starts; HTTPError until the job module is up
            pass
        assert head.poll() is None, "ray start --head exited"
        assert time.monotonic() < deadline, "the head's job API did not come up in 120 s"
        time.sleep(0.25)


README_SUBMIT = ("RAY_AUTH_MODE=token ray job submit --working-dir . -- python pipelines/egodex_tokenize.py "
                 "--input /data/egodex --output /data/shards/egodex --runner ray")


def test_readme_shows_the_secure_submit_line():
    assert README_SUBMIT in (REPO / "README.md").read_text()


@pytest.mark.slow
def test_ray_job_submit_against_a_local_head(tmp_path):
    """README's `RAY_AUTH_MODE=token ray job submit ...` line, word for word, against `ray start --head` as a
    user types it (Ray 2.60: the head runs with token auth once ~/.ray/auth_token exists)."""
    src, out = tmp_path / "src", tmp_path / "out"
    egodex_sample.write_sample(src, 1, (96, 64), episodes_per_task=1, seconds=1.0)
    port, dash = _free_port(), _free_port()
    # The job's `python` must be this environment's, as for a user who activated the venv. HOME is a
    # throw-away one, so the head's token goes to <tmp>/home/.ray/auth_token, not the real ~/.ray.
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH") and not k.startswith("RAY_AUTH")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")
    # A user's first `--runner ray` run (a local `ray.init`) or `ray get-auth-token --generate` writes the
    # token; from then on `ray start --head` runs with token auth on.
    made = subprocess.run([str(BIN / "ray"), "get-auth-token", "--generate"], capture_output=True, env=env, timeout=120)
    token = Path(env["HOME"]) / ".ray" / "auth_token"
    assert made.returncode == 0 and token.is_file(), made.stderr[-2000:]
    # Our own head, in its own process group: stopped by signalling that group, never `ray stop`
    # (which would kill every Ray process on the machine). RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0 (the
    # head's environment only): Ray 2.60's SIGTERM drain (for Serve on Kubernetes) asks the GCS, which the
    # same group signal has just stopped, and waits out its whole 30 s budget before shutting down.
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
                             "--dashboard-port", str(dash), "--disable-usage-stats", "--temp-dir", tempfile.mkdtemp(prefix="ray", dir="/tmp")],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "head.log", "w"),
                            env={**env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}, start_new_session=True)
    # The client finds the head through RAY_API_SERVER_ADDRESS, so the command line stays README's.
    client = {**env, "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{dash}"}
    try:
        _wait_for_job_api(f"http://127.0.0.1:{dash}", token.read_text().strip(), head)
        argv = ["--input", str(src), "--output", str(out), "--runner", "ray", "--video-size", "96x64",
                "--episodes-per-shard", "2"]
        # Without RAY_AUTH_MODE=token the client sends no token and the head refuses the job.
        refused = subprocess.run([str(BIN / "ray"), "job", "submit", "--working-dir", ".", "--", "python",
                                  "pipelines/egodex_tokenize.py", *argv], cwd=REPO, capture_output=True, text=True,
                                 timeout=300, env=client)
        assert refused.returncode != 0 and not out.exists(), refused.stdout[-2000:]
        assert "no authentication token was found" in refused.stdout + refused.stderr, refused.stderr[-2000:]
        words = README_SUBMIT.split()
        assert words[0] == "RAY_AUTH_MODE=token" and words[-6:-4] == ["--input", "/data/egodex"]
        submit = subprocess.run(
            [str(BIN / "ray"), *words[2:-6], *argv], cwd=REPO, capture_output=True, text=True, timeout=600,
            env={**client, "RAY_AUTH_MODE": "token"})
        (tmp_path.parent / "ray_submit.log").write_text(submit.stdout + submit.stderr)
        assert submit.returncode == 0, (submit.stdout[-3000:], submit.stderr[-3000:])
        assert "succeeded" in submit.stdout.lower()
        catalog = json.loads((out / "catalog.json").read_text())
        assert catalog["counts"] == {"inputs": 3, "ingested": 3, "rejected": 0}
        assert len({s["shard_id"] for s in catalog["shards"]}) == 2
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


@pytest.mark.slow
def test_beam_multiprocessing_direct_runner_matches_local(tmp_path):
    from pipelines.runners import run
    from pipelines.stages import JobConfig

    src = tmp_path / "src"
    egodex_sample.write_sample(src, 2, (96, 64), episodes_per_task=1, seconds=1.0)
    outs = {}
    for name, runner, beam_args in (("local", "local", None),
                                    ("beam", "beam", ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                                                      "--direct_num_workers=2"])):
        outs[name] = tmp_path / name
        cfg = JobConfig(source="egodex", input=str(src), output=str(outs[name]), formats=("lerobot", "zarr"),
                        episodes_per_shard=1, video_width=96, video_height=64, tokenize=True,
                        token_horizon=1)
        run(cfg, runner, beam_args=beam_args)
    files = lambda root: {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert files(outs["local"]) == files(outs["beam"])
    shutil.rmtree(tmp_path / "src")
