"""Dashboard API: counts from a real LeRobot-written shard, filters, ranged video, path traversal,
corrupt shards, no torch, 10k-episode timing, and the Rerun export."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
    return TestClient(create_app([out]), base_url="http://127.0.0.1")


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
    c = TestClient(create_app([bad]), base_url="http://127.0.0.1")
    r = c.get("/api/episode", params={"id": "0:demo/ep000"})
    assert r.status_code == 422 and r.json()["error"]["kind"] == "corrupt_shard"
    assert r.json()["error"]["shard"] == "demo-000"
    (bad / "shards/demo-000/meta/info.json").write_text("{not json")
    c = TestClient(create_app([bad]), base_url="http://127.0.0.1")
    o = c.get("/api/overview")
    assert o.status_code == 200 and o.json()["shards"][0]["error"]["kind"] == "corrupt_shard"
    (bad / "catalog.json").write_text("[]")
    o = TestClient(create_app([bad]), base_url="http://127.0.0.1").get("/api/overview").json()
    assert o["errors"][0]["kind"] == "bad_catalog" and o["episodes"] == 0


def test_no_torch_imported(out):
    code = ("import sys; from fastapi.testclient import TestClient; from dashboard.app import create_app;"
            f"c = TestClient(create_app([{str(out)!r}]), base_url='http://127.0.0.1');"
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
    c = TestClient(create_app([big]), base_url="http://127.0.0.1")
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
    # generous bounds: a guard against pathological (e.g. per-episode file) regressions on a loaded
    # 2-core CI box; the measured numbers are printed above and reported in docs/dashboard.md
    assert first < 10.0 and warm < 2.0 and listing < 2.0


def test_export_rerun(out, tmp_path):
    rrd = tmp_path / "ep.rrd"
    r = subprocess.run([sys.executable, "-m", "psi0", "dashboard", "export-rerun", str(out), "--episode",
                        "demo/ep001", "--out", str(rrd)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "220 scalars, 40 images" in r.stdout, r.stdout
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
    from pipelines.runners import run
    from pipelines.stages import JobConfig
    from samples import faults
    from samples import humanoid_everyday as he_sample

    src, out = tmp_path / "src", tmp_path / "out"
    he_sample.write_sample(src, 0)
    faults.write_all(src, "humanoid_everyday")
    catalog = run(JobConfig(source="humanoid_everyday", input=str(src), output=str(out), formats=("lerobot", "zarr"),
                            episodes_per_shard=4, video_width=96, video_height=64, tokenize=True,
                            token_horizon=4, video_codec="libx264"), "local")
    c = TestClient(create_app([out]), base_url="http://127.0.0.1")
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


# ---------------------------------------------------------------- pipeline-written EgoDex roots
# (marked slow: the fixture runs two real pipeline jobs, hand QA and retargeting included)
@pytest.fixture(scope="module")
def egodex(tmp_path_factory) -> tuple[Path, Path]:
    from dashboard_fixture import build_egodex_roots

    return build_egodex_roots(tmp_path_factory.mktemp("egodex"))


@pytest.fixture(scope="module")
def eclient(egodex) -> TestClient:
    return TestClient(create_app(list(egodex)), base_url="http://127.0.0.1")


def _zarr_episodes(root: Path) -> list[dict]:
    import zarr

    return zarr.open_group(str(root / "shards/egodex-00000.zarr"), mode="r").attrs["episodes"]


@pytest.mark.slow  # shares the ~40 s pipeline fixture (two real EgoDex jobs)
def test_quality_filter_and_sort(eclient, egodex):
    key = "retarget.left_arm.position_m.p95"
    truth = {e["source_id"]: e["meta"]["quality"][key] for e in _zarr_episodes(egodex[1])}
    assert len(truth) == 3 and len(set(truth.values())) == 3
    assert key in eclient.get("/api/overview").json()["quality_keys"]
    r = eclient.get("/api/episodes", params={"score": key, "sort": "-score", "source": "egodex"}).json()
    zarr_items = [i for i in r["items"] if i["root"] == 1]
    assert [i["source_id"] for i in zarr_items] == sorted(truth, key=truth.get, reverse=True)
    assert [i["score"] for i in zarr_items] == sorted(truth.values(), reverse=True)
    assert all(i["score"] is None for i in r["items"][3:])           # episodes without the score sort last
    mid = sorted(truth.values())[1]
    r = eclient.get("/api/episodes", params={"score": key, "min_score": mid}).json()
    assert r["total"] == 2 and {i["source_id"] for i in r["items"]} == {k for k, v in truth.items() if v >= mid}
    assert eclient.get("/api/episodes", params={"score": key, "sort": "bogus"}).status_code == 422


def _ingested(client: TestClient, root: int) -> dict:
    items = client.get("/api/episodes", params={"status": "ingested", "limit": 1000}).json()["items"]
    return next(i for i in items if i["root"] == root)


@pytest.mark.slow  # shares the ~40 s pipeline fixture (two real EgoDex jobs)
def test_residuals_hand_qa_and_overlay(eclient, egodex):
    import zarr
    from converters.handqa import project, scaled_intrinsics

    row = _ingested(eclient, 1)                                  # zarr root: retargeted
    e = eclient.get("/api/episode", params={"id": row["id"]}).json()
    assert set(e["residuals"]["retarget.residual"]) == {"position_m", "rotation_rad", "tip_m"}
    g = zarr.open_group(str(egodex[1] / "shards/egodex-00000.zarr"), mode="r")
    ends = [0] + list(g["meta/episode_ends"][...])
    res = np.asarray(g["data/retarget.residual"][ends[row["episode_index"]]:ends[row["episode_index"] + 1]])
    assert e["residuals"]["retarget.residual"]["tip_m"]["right_hand.tip_m"] == pytest.approx(res[:, 5].tolist())
    assert "retarget.residual" not in e["groups"] and "retarget.left_arm.position_m.p95" in e["quality"]
    assert e["hand_qa"] == {}
    row = _ingested(eclient, 0)                                  # LeRobot root: hand QA, overlay
    e = eclient.get("/api/episode", params={"id": row["id"]}).json()
    assert set(e["hand_qa"]) >= {"hand_qa.detection_rate", "hand_qa.mean_px_error"}
    assert e["hand_qa"] == {k: v for k, v in e["episode_meta"]["quality"].items() if k.startswith("hand_qa.")}
    t = pq.read_table(egodex[0] / "shards/egodex-00000/data/chunk-000/file-000.parquet",
                      filters=[("episode_index", "=", row["episode_index"])])
    ov, extra = e["overlay"], e["episode_meta"]["extra"]
    assert (ov["width"], ov["height"]) == (96, 64) and e["videos"][0]["width"] == 96
    native = (extra["video_width"], extra["video_height"])
    k = scaled_intrinsics(np.asarray(extra["camera_intrinsic"]), native, (96, 64))
    kp = np.asarray(t.column("human.left_hand.keypoints").to_pylist()[7]).reshape(25, 3)
    assert np.asarray(ov["hands"]["left"][7], float).reshape(25, 2) == pytest.approx(project(kp, k), abs=0.06)
    assert len(ov["hands"]["right"]) == e["length"] and len(ov["edges"]) == 24
    qa = eclient.get("/api/episodes", params={"score": "hand_qa.detection_rate", "min_score": 0}).json()
    assert qa["total"] >= 1 and all(i["root"] == 0 and i["score"] >= 0 for i in qa["items"])


@pytest.mark.slow  # shares the ~40 s pipeline fixture (two real EgoDex jobs)
def test_token_decode_vs_truth(eclient, egodex):
    from converters.retarget.human_action import HumanActionConfig, delta_chunks
    from converters.tokenize.fast import FastTokenizer

    row = _ingested(eclient, 1)                                  # zarr-only root
    e = eclient.get("/api/episode", params={"id": row["id"]}).json()
    assert e["format"] == "zarr" and e["tokens"]["tokenizer"]
    c = eclient.get("/api/tokens", params={"id": row["id"], "frame": 6}).json()
    tok = FastTokenizer.load(egodex[1] / "tokenizer")
    assert (c["horizon"], c["dims"], c["valid"]) == (4, 48, True) and len(c["ids"]) == e["tokens"]["lengths"][6]
    assert np.asarray(c["decoded"]) == pytest.approx(tok.decode([c["ids"]])[0])
    import zarr

    g = zarr.open_group(str(egodex[1] / "shards/egodex-00000.zarr"), mode="r")
    ends = [0] + list(g["meta/episode_ends"][...])
    s0, s1 = ends[row["episode_index"]], ends[row["episode_index"] + 1]
    kps = {s: np.asarray(g[f"data/human.{s}_hand.keypoints"][s0:s1], np.float64).reshape(-1, 25, 3)
           for s in ("left", "right")}
    cam = np.asarray(g["data/human.camera.pose"][s0:s1], np.float64).reshape(-1, 4, 4)
    _, ref = delta_chunks(kps, cam, HumanActionConfig(source_rate=30.0, rate=10.0, chunk=4), every_frame=True)
    truth = np.array([[np.nan if v is None else v for v in r] for r in c["truth"]])
    known = np.isfinite(truth)
    assert known.sum() == 4 * 42 and truth[known] == pytest.approx(ref[6][known], abs=1e-5)
    err = np.abs(np.asarray(c["decoded"]) - ref[6]).max(axis=0)
    assert (err <= np.asarray(c["error_bound"]) + 1e-6).all() and c["max_abs_error"] <= max(c["error_bound"])
    assert c["dim_names"][3] == "left_hand.wrist.droll"
    assert eclient.get("/api/tokens", params={"id": row["id"], "frame": 10_000}).json()["frame"] == e["length"] - 1


@pytest.mark.slow  # shares the ~40 s pipeline fixture (two real EgoDex jobs)
def test_zarr_only_episode_and_video(eclient, egodex):
    import av
    import io
    import zarr

    o = eclient.get("/api/overview").json()
    assert all(s["error"] is None for s in o["shards"]) and o["hours"] > 0
    row = _ingested(eclient, 1)
    e = eclient.get("/api/episode", params={"id": row["id"]}).json()
    g = zarr.open_group(str(egodex[1] / "shards/egodex-00000.zarr"), mode="r")
    ends = [0] + list(g["meta/episode_ends"][...])
    s0, s1 = ends[row["episode_index"]], ends[row["episode_index"] + 1]
    assert e["length"] == s1 - s0 and e["fps"] == 30
    act = np.asarray(g["data/action"][s0:s1])
    assert e["groups"]["action"]["left_hand.wrist"]["left_hand.wrist.x"] == pytest.approx(act[:, 0].tolist())
    assert e["episode_meta"]["source_id"] == row["source_id"] and e["overlay"] is not None
    v = e["videos"][0]
    assert v["url"].startswith("/zarrvideo/1/") and (v["width"], v["height"]) == (96, 64)
    full = eclient.get(v["url"])
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    part = eclient.get(v["url"], headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == full.content[4:12] == b"ftypisom"
    frames = [f.to_ndarray(format="rgb24") for f in av.open(io.BytesIO(full.content)).decode(video=0)]
    imgs = np.asarray(g["data/observation.images.egocentric"][s0:s1])
    assert len(frames) == e["length"] and np.abs(frames[3].astype(int) - imgs[3]).mean() < 6
    assert eclient.get(v["url"].replace(f"/{row['episode_index']}/", "/99/")).status_code == 404
    assert eclient.get("/zarrvideo/1/nope/0/x.mp4").status_code == 404


@pytest.mark.slow  # shares the ~40 s pipeline fixture (two real EgoDex jobs)
def test_histograms_from_grids(eclient, egodex, client):
    h = eclient.get("/api/histograms", params={"bins": 16}).json()
    a = h["1:action"]
    assert a["source"] == "grid" and len(a["counts"]) == 48 and len(a["counts"][0]) == 16
    import zarr

    vals = np.asarray(zarr.open_group(str(egodex[1] / "shards/egodex-00000.zarr"), mode="r")["data/action"][...],
                      np.float64)
    for d in (0, 10, 20):
        edges = np.linspace(a["lo"][d], a["hi"][d], 17)
        true, _ = np.histogram(vals[:, d], bins=edges)
        assert sum(a["counts"][d]) == pytest.approx(len(vals), abs=0.05)
        assert np.abs(np.asarray(a["counts"][d]) - true).max() <= 2 * len(vals) / 400 + 1
    assert "1:action.tokens" not in h and "1:frame_index" not in h
    q = client.get("/api/histograms").json()["action"]          # hand-made catalog: no shard.json grids
    assert q["source"] == "quantiles" and sum(q["counts"][0]) == pytest.approx(40, abs=0.05)


def test_two_cameras(client):
    e = client.get("/api/episode", params={"id": "0:demo/ep000"}).json()
    assert [v["key"] for v in e["videos"]] == ["observation.images.head", "observation.images.wrist"]
    assert all(client.get(v["url"], headers={"Range": "bytes=0-7"}).status_code == 206 for v in e["videos"])


@pytest.mark.slow
def test_no_torch_for_tokens_zarr_and_histograms(egodex):
    """Token decoding, Zarr-only episodes, their MP4s and grid histograms all work without torch."""
    code = ("import sys; from fastapi.testclient import TestClient; from dashboard.app import create_app;"
            f"c = TestClient(create_app([{str(egodex[0])!r}, {str(egodex[1])!r}]), base_url='http://127.0.0.1');"
            "rows = c.get('/api/episodes', params={'status': 'ingested', 'score': 'hand_qa.pairs'}).json()['items'];"
            "z = next(r for r in rows if r['root'] == 1)['id'];"
            "e = c.get('/api/episode', params={'id': z}).json();"
            "assert c.get(e['videos'][0]['url'], headers={'Range': 'bytes=0-9'}).status_code == 206;"
            "assert c.get('/api/tokens', params={'id': z, 'frame': 3}).json()['valid'];"
            "assert c.get('/api/histograms').json()['1:action']['source'] == 'grid';"
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


@pytest.mark.slow
def test_export_rerun_zarr_only(egodex, tmp_path):
    rrd = tmp_path / "z.rrd"
    row = _ingested(TestClient(create_app([egodex[1]]), base_url="http://127.0.0.1"), 0)
    r = subprocess.run([sys.executable, "-m", "psi0", "dashboard", "export-rerun", str(egodex[1]), "--episode",
                        row["source_id"], "--out", str(rrd)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{row['frames']} images" in r.stdout
    import rerun.dataframe as rdf

    cols = rdf.load_recording(str(rrd)).view(index="time", contents="/**").select().read_all().column_names
    assert "/retarget.residual/tip_m/left_hand.tip_m:Scalars:scalars" in cols
    assert any(c.startswith("/camera/observation.images.egocentric") for c in cols)


@pytest.mark.slow
def test_corrupt_zarr_shard_is_an_error_panel(egodex, tmp_path):
    bad = tmp_path / "badz"
    shutil.copytree(egodex[1], bad)
    store = bad / "shards/egodex-00000.zarr"
    for f in (store / "data").rglob("*"):       # every chunk / shard file of every array
        if f.is_file() and "c" in f.relative_to(store).parts:
            f.write_bytes(b"garbage")
    c = TestClient(create_app([bad]), base_url="http://127.0.0.1")
    row = _ingested(c, 0)
    r = c.get("/api/episode", params={"id": row["id"]})
    assert r.status_code == 422 and r.json()["error"]["kind"] == "corrupt_shard"
    v = c.get(f"/zarrvideo/0/egodex-00000/{row['episode_index']}/observation.images.egocentric.mp4")
    assert v.status_code == 422 and v.json()["error"]["shard"] == "egodex-00000"
    (store / "zarr.json").write_text("{not json")
    o = TestClient(create_app([bad]), base_url="http://127.0.0.1").get("/api/overview")
    assert o.status_code == 200 and o.json()["shards"][0]["error"]["kind"] == "corrupt_shard"
