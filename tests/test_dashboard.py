"""Dashboard API: counts from a real LeRobot-written shard, filters, ranged video, path traversal,
corrupt shards, no torch, 10k-episode timing, and the Rerun export."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from dashboard.app import create_app
from dashboard.data import body_part
from schemas.catalog import Catalog, Ingested, ShardRecord
from schemas.episode import Rejected, RejectReason
from dashboard_fixture import ACTION_NAMES, build_output_root

REPO = Path(__file__).resolve().parents[1]
VIDEO = "shards/demo-000/videos/observation.images.head/chunk-000/file-000.mp4"


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return build_output_root(tmp_path_factory.mktemp("dash") / "out")


@pytest.fixture(scope="module")
def client(out) -> TestClient:
    return TestClient(create_app([out]))


def test_overview_counts(client):
    o = client.get("/api/overview").json()
    assert (o["episodes"], o["inputs"], o["rejected"], o["frames"]) == (2, 4, 2, 40)
    assert o["rejects_by_reason"] == {"non_finite": 1, "missing_video": 1}
    assert o["tasks"] == {"pick the cube": 1, "wave hello": 1}
    assert o["hours"] == pytest.approx(40 / 10 / 3600)
    assert o["shards"][0]["fps"] == 10 and o["shards"][0]["error"] is None
    assert o["names"]["action"] == ACTION_NAMES and "q50" in o["stats"]["action"]


def test_episode_list_filters_and_pages(client):
    assert client.get("/api/episodes").json()["total"] == 4
    assert [r["source_id"] for r in client.get("/api/episodes?status=rejected").json()["items"]] == \
        ["demo/bad001", "demo/bad002"]
    assert client.get("/api/episodes", params={"task": "wave hello"}).json()["items"][0]["episode_index"] == 1
    page = client.get("/api/episodes?limit=3&offset=3").json()
    assert page["total"] == 4 and len(page["items"]) == 1
    assert client.get("/api/episodes?source=nope").json()["total"] == 0


def test_episode_detail_matches_shard(client, out):
    e = client.get("/api/episode", params={"id": "0:demo/ep001"}).json()
    assert e["length"] == 20 and e["fps"] == 10 and len(e["timestamp"]) == 20
    assert list(e["groups"]["action"]) == ["left_arm", "right_arm", "other"]
    assert list(e["groups"]["action"]["other"]) == ["left_hand_g", "right_hand_g", "torso_yaw"]
    t = pq.read_table(out / "shards/demo-000/data/chunk-000/file-000.parquet",
                      filters=[("episode_index", "=", 1)])
    truth = [row[2] for row in t.column("action").to_pylist()]
    assert e["groups"]["action"]["right_arm"]["right_arm_j0"] == pytest.approx(truth)
    v = e["videos"][0]
    assert v["url"] == f"/files/0/{VIDEO}" and (v["from_timestamp"], v["to_timestamp"]) == (2.0, 4.0)
    assert e["input"]["status"] == "ingested"
    r = client.get("/api/episode", params={"id": "0:demo/bad002"}).json()
    assert r["rejected"] and r["row"]["reason"] == "missing_video"
    assert client.get("/api/episode", params={"id": "0:nope"}).status_code == 404
    assert client.get("/api/episode", params={"id": "7:demo/ep001"}).status_code == 404


def test_body_part_grouping():
    assert body_part("left_arm_j0") == "left_arm" and body_part("head.yaw") == "head" and body_part("x") == "all"


def test_rejects_view(client):
    r = client.get("/api/rejects").json()
    assert r["total"] == 2 and r["items"][0]["details"] == {"frame": 3} and r["items"][0]["stage"] == "read"
    assert client.get("/api/rejects?reason=missing_video").json()["total"] == 1


def test_video_range_requests(client, out):
    blob = (out / VIDEO).read_bytes()
    url = f"/files/0/{VIDEO}"
    full = client.get(url)
    assert full.status_code == 200 and full.content == blob and full.headers["accept-ranges"] == "bytes"
    r = client.get(url, headers={"Range": "bytes=10-109"})
    assert r.status_code == 206 and r.content == blob[10:110]
    assert r.headers["content-range"] == f"bytes 10-109/{len(blob)}" and r.headers["content-type"] == "video/mp4"
    r = client.get(url, headers={"Range": "bytes=-50"})
    assert r.status_code == 206 and r.content == blob[-50:]
    r = client.get(url, headers={"Range": f"bytes=100-{len(blob) + 999}"})
    assert r.status_code == 206 and r.content == blob[100:]
    assert client.get(url, headers={"Range": f"bytes={len(blob)}-"}).status_code == 416
    assert client.get(url, headers={"Range": "bits=0-1"}).status_code == 416


def test_path_traversal_refused(client, out, tmp_path):
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not yours")
    (out / "shards" / "leak.mp4").symlink_to(secret)
    try:
        for bad in ["../secret.mp4", "..%2Fsecret.mp4", "%2e%2e/%2e%2e/etc/passwd", "%252e%252e%252fsecret.mp4",
                    "shards/../../secret.mp4", "shards/leak.mp4", f"%2F{str(secret).lstrip('/')}"]:
            r = client.get(f"/files/0/{bad}")
            assert r.status_code in (403, 404, 422), bad  # 422: client-normalized path lost its root
            assert b"not yours" not in r.content, bad
        for bad in ["..%2Fsecret.mp4", "%2e%2e/secret.mp4", "%252e%252e%252fsecret.mp4", "shards/%2e%2e/%2e%2e/secret.mp4"]:
            assert client.get(f"/files/0/{bad}").status_code == 403, bad
        assert client.get("/files/0/shards/leak.mp4").status_code == 403
        assert client.get("/files/0/catalog.json").status_code == 403          # only video is served
        assert client.get("/files/0/shards/demo-000/meta/info.json").status_code == 403
        assert client.get("/files/5/x.mp4").status_code == 404
        assert client.post(f"/files/0/{VIDEO}").status_code == 405              # read-only
    finally:
        (out / "shards" / "leak.mp4").unlink()


def test_corrupt_shard_is_an_error_panel(out, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "shards/demo-000/data/chunk-000/file-000.parquet").write_bytes(b"PAR1garbage")
    c = TestClient(create_app([bad]))
    r = c.get("/api/episode", params={"id": "0:demo/ep000"})
    assert r.status_code == 422 and r.json()["error"]["kind"] == "corrupt_shard"
    assert r.json()["error"]["shard"] == "demo-000"
    (bad / "shards/demo-000/meta/info.json").write_text("{not json")
    c = TestClient(create_app([bad]))
    o = c.get("/api/overview")
    assert o.status_code == 200 and o.json()["shards"][0]["error"]["kind"] == "corrupt_shard"
    (bad / "catalog.json").write_text("[]")
    o = TestClient(create_app([bad])).get("/api/overview").json()
    assert o["errors"][0]["kind"] == "bad_catalog" and o["episodes"] == 0


def test_no_torch_imported(out):
    code = ("import sys; from fastapi.testclient import TestClient; from dashboard.app import create_app;"
            f"c = TestClient(create_app([{str(out)!r}]));"
            "assert c.get('/api/overview').status_code == 200;"
            "assert c.get('/api/episode', params={'id': '0:demo/ep000'}).status_code == 200;"
            f"assert c.get('/files/0/{VIDEO}', headers={{'Range': 'bytes=0-9'}}).status_code == 206;"
            "import dashboard.cli;"
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_10k_episode_catalog_is_fast(out, tmp_path):
    big = tmp_path / "big"
    cat = Catalog()
    for s in range(10):
        sid = f"syn-{s:03d}"
        d = big / "shards" / sid / "meta"
        d.mkdir(parents=True)
        shutil.copy(out / "shards/demo-000/meta/info.json", d / "info.json")
        ids = tuple(f"syn/{s:03d}/{k:05d}" for k in range(1000))
        cat.shards.append(ShardRecord(sid, "lerobot", f"shards/{sid}", "syn", 1000, 1000 * 300, ids, "0" * 64))
        for k, i in enumerate(ids):
            cat.record(i, Ingested(sid, k, 300, f"task {k % 37}"))
    for k in range(500):
        cat.record(f"syn/bad/{k:04d}", Rejected(f"syn/bad/{k:04d}", "read", list(RejectReason)[k % 17], "x"))
    (big / "catalog.json").write_text(cat.dumps())
    c = TestClient(create_app([big]))
    t0 = time.perf_counter()
    o = c.get("/api/overview").json()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    c.get("/api/overview")
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    page = c.get("/api/episodes", params={"task": "task 3", "offset": 50, "limit": 50}).json()
    listing = time.perf_counter() - t0
    assert o["episodes"] == 10_000 and o["rejected"] == 500 and len(o["rejects_by_reason"]) == 17
    assert page["total"] == 270 and len(page["items"]) == 50
    print(json.dumps({"overview_cold_s": round(first, 4), "overview_warm_s": round(warm, 4),
                      "episodes_filtered_page_s": round(listing, 4)}))
    assert first < 2.0 and warm < 0.5 and listing < 0.5


def test_export_rerun(out, tmp_path):
    rrd = tmp_path / "ep.rrd"
    r = subprocess.run([sys.executable, "-m", "psi0", "dashboard", "export-rerun", str(out), "--episode",
                        "demo/ep001", "--out", str(rrd)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "140 scalars, 20 images" in r.stdout or "220 scalars, 20 images" in r.stdout
    import rerun.dataframe as rdf

    rec = rdf.load_recording(str(rrd))
    cols = rec.view(index="time", contents="/**").select().read_all().column_names
    assert "/action/right_arm/right_arm_j0:Scalars:scalars" in cols
    assert any(c.startswith("/camera/observation.images.head") for c in cols)
    bad = subprocess.run([sys.executable, "-m", "psi0", "dashboard", "export-rerun", str(out), "--episode",
                          "demo/bad001", "--out", str(rrd)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "rejected" in bad.stderr


def test_real_ingest_job_output(tmp_path):
    """The dashboard over what the psi0 pipeline really writes: LeRobot + Zarr twins, psi0/meta, tokens."""
    from converters.samples import faults
    from converters.samples import humanoid_everyday as he_sample
    from pipelines.runners import run
    from pipelines.stages import JobConfig

    src, out = tmp_path / "src", tmp_path / "out"
    he_sample.write_sample(src, 0)
    faults.write_all(src, "humanoid_everyday")
    catalog = run(JobConfig(source="humanoid_everyday", input=str(src), output=str(out), formats=("lerobot", "zarr"),
                            episodes_per_shard=4, video_width=96, video_height=64, tokenize=True,
                            token_column="action", token_horizon=4, video_codec="libx264"), "local")
    c = TestClient(create_app([out]))
    o = c.get("/api/overview").json()
    assert o["episodes"] == catalog.counts()["ingested"] and o["rejected"] == catalog.counts()["rejected"]
    assert all(s["error"] is None for s in o["shards"]), o["shards"]
    lerobot_frames = sum(s.frames for s in catalog.shards if s.format == "lerobot")
    assert o["hours"] == pytest.approx(lerobot_frames / 30 / 3600)       # Zarr twins not double counted
    row = c.get("/api/episodes", params={"status": "ingested", "limit": 1}).json()["items"][0]
    e = c.get("/api/episode", params={"id": row["id"]}).json()
    assert e["episode_meta"]["source_id"] == row["source_id"] and e["episode_meta"]["embodiment"]
    assert e["tokens"]["column"] == "action.tokens" and len(e["tokens"]["lengths"]) == e["length"]
    assert {"left_arm", "right_arm"} <= set(e["groups"]["action"])
    v = c.get(e["videos"][0]["url"], headers={"Range": "bytes=0-15"})
    assert v.status_code == 206 and v.content[4:8] == b"ftyp"
