"""Issue 13, items 2 and 4 (dashboard): hostile websites (DNS rebinding: Host allow-list; a token and an
explicit flag for non-loopback binds), hostile data (records type-checked, symlinks out of the root not
followed, claimed frame sizes bounded and encoded once) and malformed requests (clean 4xx, never 500).
The stored-XSS payload in a real browser is tested in test_dashboard_browser.py."""
from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from dashboard.app import create_app

ROOT = Path(__file__).resolve().parent.parent
LOCAL = "http://127.0.0.1"
SHARD = "shards/humanoid_everyday-00000"
VIDEO = f"{SHARD}/videos/observation.images.egocentric/chunk-000/file-000.mp4"
PAYLOAD = '<img src=x onerror="window.__xss=1">'


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """What the ingest job writes for the Humanoid Everyday sample (one LeRobot shard)."""
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig
    from samples import humanoid_everyday as he_sample

    base = tmp_path_factory.mktemp("dashh")
    he_sample.write_sample(base / "in", resolution=(64, 48), seconds=1.0)
    run_local(JobConfig(source="humanoid_everyday", input=str(base / "in"), output=str(base / "out"),
                        episodes_per_shard=8, video_width=32, video_height=24, video_codec="libx264"))
    assert (base / "out" / VIDEO).is_file()
    return base / "out"


def _first_ingested(root: Path) -> str:
    inputs = json.loads((root / "catalog.json").read_text())["inputs"]
    return next(k for k, v in sorted(inputs.items()) if v["status"] == "ingested")


@pytest.fixture()
def out(built, tmp_path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def _client(root: Path, **kwargs) -> TestClient:
    return TestClient(create_app([root], **kwargs), base_url=LOCAL, raise_server_exceptions=False)


# ------------------------------------------------------------------------------------------ hostile websites
def test_only_the_hosts_the_server_was_started_for_are_served(out):
    c = _client(out)
    for host in ("evil.example", "evil.example:8050", "127.0.0.1.evil.example", "10.0.0.7:8050", ""):
        r = c.get("/api/overview", headers={"Host": host})
        assert r.status_code == 403 and r.json()["error"]["kind"] == "bad_host", host
        assert c.get(f"/files/0/{VIDEO}", headers={"Host": host}).status_code == 403
    for host in ("127.0.0.1:8050", "localhost:8050", "LOCALHOST", "[::1]:8050", "localhost."):
        assert c.get("/api/overview", headers={"Host": host}).status_code == 200, host
    lan = _client(out, allowed_hosts=("127.0.0.1", "lab-pc"))
    assert lan.get("/api/roots", headers={"Host": "lab-pc:8050"}).status_code == 200
    assert lan.get("/api/roots", headers={"Host": "localhost"}).status_code == 403


def test_a_token_guards_every_route_when_set(out):
    c = _client(out, token="s3cret")
    assert c.get("/api/overview").status_code == 401
    assert c.get("/").status_code == 401 and c.get(f"/files/0/{VIDEO}").status_code == 401
    assert c.get("/api/overview?token=wrong").status_code == 401
    r = c.get("/?token=s3cret")
    assert r.status_code == 200 and "psi0_dashboard_token" in r.headers["set-cookie"]
    assert c.get("/api/overview").status_code == 200                      # the cookie from now on
    fresh = _client(out, token="s3cret")
    assert fresh.get("/api/roots", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_binding_beyond_loopback_needs_an_explicit_flag(out):
    proc = subprocess.run([sys.executable, "-m", "psi0", "dashboard", str(out), "--host", "0.0.0.0", "--port", "0"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "--allow-remote" in proc.stderr
    from dashboard.cli import allowed_hosts, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    assert "192.168.1.5" in allowed_hosts("192.168.1.5", []) and "box.lan" in allowed_hosts("0.0.0.0", ["box.lan"])


# ------------------------------------------------------------------------------------------ malformed requests
def test_malformed_requests_get_a_clean_4xx(out):
    c = _client(out)
    (out / "shards" / "loop.mp4").symlink_to(out / "shards" / "loop.mp4")
    (out / "shards" / "a.mp4").symlink_to(out / "shards" / "b.mp4")
    (out / "shards" / "b.mp4").symlink_to(out / "shards" / "a.mp4")
    cases = {
        "300-char segment": c.get("/files/0/" + "a" * 300 + ".mp4"),
        "300-char folder": c.get("/files/0/shards/" + "b" * 300 + "/x.mp4"),
        "5000-digit Range": c.get(f"/files/0/{VIDEO}", headers={"Range": "bytes=" + "9" * 5000 + "-"}),
        "5000-digit Range end": c.get(f"/files/0/{VIDEO}", headers={"Range": "bytes=0-" + "9" * 5000}),
        "symlink loop": c.get("/files/0/shards/loop.mp4"),
        "symlink cycle": c.get("/files/0/shards/a.mp4"),
        "long episode id": c.get("/api/episode", params={"id": "0:" + "x" * 5000}),
    }
    for name, r in cases.items():
        assert 400 <= r.status_code < 500, (name, r.status_code)


# ------------------------------------------------------------------------------------------ hostile data
def _edit_catalog(root: Path, edit) -> None:
    catalog = json.loads((root / "catalog.json").read_text())
    edit(catalog)
    (root / "catalog.json").write_text(json.dumps(catalog))


@pytest.mark.parametrize("field", ["episodes", "frames", "inputs", "fate"])
def test_catalog_records_are_type_checked_before_use(out, field):
    sid = _first_ingested(out)

    def edit(catalog):
        if field == "fate":
            catalog["inputs"][sid]["frames"] = PAYLOAD
        elif field == "inputs":
            catalog["shards"][0]["inputs"] = [PAYLOAD, 7]
        else:
            catalog["shards"][0][field] = PAYLOAD

    _edit_catalog(out, edit)
    c = _client(out)
    o = c.get("/api/overview")
    assert o.status_code == 200
    (error,) = o.json()["errors"]
    assert error["kind"] == "bad_catalog" and o.json()["shards"] == []
    where = {"fate": f"inputs[{sid!r}].frames", "inputs": "shards[0].inputs[1]"}.get(field, f"shards[0].{field}")
    assert where in error["message"]
    for route in ("/api/episodes", "/api/rejects", "/api/histograms"):
        assert c.get(route).status_code == 200


def test_metadata_symlinks_out_of_the_root_are_not_followed(out, tmp_path):
    info = out / SHARD / "meta" / "info.json"
    secret = tmp_path / "secret.json"
    data = json.loads(info.read_text())
    data["features"]["action"]["names"] = ["SECRET_FROM_OUTSIDE"] * data["features"]["action"]["shape"][0]
    secret.write_text(json.dumps(data))
    info.unlink()
    info.symlink_to(secret)
    c = _client(out)
    o = c.get("/api/overview")
    assert o.status_code == 200 and "SECRET_FROM_OUTSIDE" not in o.text
    assert o.json()["shards"][0]["error"]["kind"] == "bad_shard_path"
    r = c.get("/api/episode", params={"id": f"0:{_first_ingested(out)}"})
    assert r.status_code == 422 and "SECRET_FROM_OUTSIDE" not in r.text


# ------------------------------------------------------------------------------------------ claimed sizes
def _claiming_store(path: Path, frames: int, height: int, width: int) -> None:
    """A replay-buffer Zarr store whose camera array claims (frames, height, width, 3) but stores no chunk
    (the files are a few KB; reading it yields zeros)."""
    import zarr

    root = zarr.open_group(zarr.storage.LocalStore(str(path)), mode="w", zarr_format=3)
    data = root.create_group("data")
    data.create_array("observation.images.cam", shape=(frames, height, width, 3), dtype="uint8",
                      chunks=(1, height, width, 3), fill_value=0)
    data.create_array("action", shape=(frames, 2), dtype="float32", chunks=(frames, 2), fill_value=0)
    ends = root.create_group("meta").create_array("episode_ends", shape=(1,), dtype="int64", chunks=(1,))
    ends[...] = np.array([frames])


def test_a_huge_claimed_frame_size_is_scaled_down_and_encoded_once(tmp_path):
    import av
    import httpx

    store = tmp_path / "cam.zarr"
    _claiming_store(store, 12, 2048, 2048)
    assert sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) < 50_000
    app = create_app([store])
    url = "/zarrvideo/0/cam/0/observation.images.cam.mp4"

    async def four_at_once() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL, timeout=300) as client:
            return await asyncio.gather(*(client.get(url) for _ in range(4)))

    start = time.monotonic()
    responses = asyncio.run(four_at_once())
    took = time.monotonic() - start
    assert [r.status_code for r in responses] == [200] * 4
    assert len({r.content for r in responses}) == 1
    with av.open(io.BytesIO(responses[0].content)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
    assert width * height <= 1280 * 720 and width == height, (width, height)     # not 2048 x 2048
    assert app.state.videos.encodes == 1
    assert took < 60


def test_an_episode_claiming_too_many_frames_is_refused_before_reading(tmp_path):
    store = tmp_path / "long.zarr"
    _claiming_store(store, 20_001, 8, 8)
    c = _client(store)
    start = time.monotonic()
    r = c.get("/zarrvideo/0/long/0/observation.images.cam.mp4")
    assert r.status_code == 413 and r.json()["error"]["kind"] == "too_large", r.text[:300]
    assert time.monotonic() - start < 5
    from dashboard.zarr_shard import MAX_FRAMES

    assert MAX_FRAMES < 20_001
