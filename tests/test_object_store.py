"""Ingest jobs with `s3://` input and output against a real S3-API server (moto's server mode) on loopback.

S3 → S3 output must equal a local run's byte for byte (reject messages name their input, so the input
root is the one allowed difference), and a job killed mid-way — after some shards are published, or
after a shard's data but before its `shard.json` marker — must resume to the same bytes.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fault_injection import fault_env
from pipelines.runners import run
from pipelines.stages import JobConfig
from samples import egodex as egodex_sample
from samples import faults
from samples import humanoid_everyday as he_sample
from schemas.names import SHARD_FILE
from shards import objectstore

REPO = Path(__file__).resolve().parent.parent
BUCKET = "psi0-test"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server in its own process on 127.0.0.1, one bucket; AWS_* env pointing at it."""
    port = _free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
            break
        except OSError:
            assert server.poll() is None, "moto server exited"
            assert time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in (*S3_ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    try:
        yield {"endpoint": endpoint, "fs": fs}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def _config(source: str, src: str, out: str, **kw) -> JobConfig:
    base = dict(source=source, input=src, output=out, formats=("lerobot", "zarr"), episodes_per_shard=2,
                video_width=96, video_height=64, tokenize=True,
                token_horizon=1 if source == "egodex" else 4)
    base.update(kw)
    return JobConfig(**base)


def _local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _s3_tree(fs, url: str) -> dict[str, bytes]:
    path = url[len("s3://"):].rstrip("/")
    fs.invalidate_cache(path)
    keys = sorted(fs.find(path, withdirs=False))
    blobs = fs.cat(keys) if keys else {}
    return {k[len(path) + 1:]: blobs[k] for k in keys}


def _same_output(local: dict[str, bytes], remote: dict[str, bytes], local_src: str, remote_src: str) -> None:
    """Every file byte-identical; in the JSON records (reject messages quote their input) the input
    root is the one allowed difference."""
    assert sorted(local) == sorted(remote)
    for rel, data in local.items():
        other = remote[rel]
        if rel.endswith((SHARD_FILE, "catalog.json")):
            other = other.replace(remote_src.encode(), local_src.encode())
        if other != data:
            at = next((i for i, (a, b) in enumerate(zip(other, data)) if a != b), min(len(other), len(data)))
            pytest.fail(f"{rel} differs at byte {at}: s3 {other[at - 80:at + 80]!r} vs local {data[at - 80:at + 80]!r}")


def _upload(fs, local: Path, url: str) -> None:
    fs.put(str(local), url[len("s3://"):], recursive=True)


@pytest.fixture(scope="module")
def s3_runs(s3, tmp_path_factory):
    """Per source, once per module: a sample with every bad-input kind, run locally and S3 -> S3. The
    EgoDex pair also serves `test_readers_open_an_s3_output` (the same job twice was ~30 s of the module)."""
    done: dict[str, dict] = {}

    def get(source: str) -> dict:
        if source not in done:
            base = tmp_path_factory.mktemp(f"s3-{source}")
            src = base / "src"
            if source == "egodex":
                egodex_sample.write_sample(src, 2, (96, 64), episodes_per_task=1, seconds=1.0)
            else:
                he_sample.write_sample(src, 2, (160, 120), seconds=0.7)
            expected = faults.write_all(src, source)      # every bad-input kind, read from S3 like from disk
            remote_src, remote_out = f"s3://{BUCKET}/{source}/src", f"s3://{BUCKET}/{source}/out"
            _upload(s3["fs"], src, remote_src)
            local_catalog = run(_config(source, str(src), str(base / "out")), "local")
            started = time.monotonic()
            catalog = run(_config(source, remote_src, remote_out), "local")
            print(f"{source}: s3 job {time.monotonic() - started:.1f} s")
            done[source] = {"src": src, "remote_src": remote_src, "local_out": base / "out", "remote_out": remote_out,
                            "expected": expected, "local_catalog": local_catalog, "catalog": catalog}
        return done[source]

    return get


@pytest.mark.parametrize("source", ["egodex", pytest.param("humanoid_everyday", marks=pytest.mark.slow)])
def test_s3_to_s3_job_equals_local_run(s3, s3_runs, source):
    fs = s3["fs"]
    runs = s3_runs(source)
    remote_out, catalog, local_catalog = runs["remote_out"], runs["catalog"], runs["local_catalog"]

    _same_output(_local_tree(runs["local_out"]), _s3_tree(fs, remote_out), str(runs["src"]), runs["remote_src"])
    assert catalog.counts() == local_catalog.counts() and catalog.counts()["ingested"] >= 3
    for source_id, reason in runs["expected"].items():
        fates = [v for k, v in catalog.inputs.items() if k.split("#")[0] == source_id and v["status"] == "rejected"]
        assert fates and fates[0]["reason"] == reason.value, (source_id, fates)
    # the marker's content hash is the hash of what is on S3
    committed = objectstore.committed_shards(remote_out)                # listing fingerprint (fast path)
    assert len(committed) == len(catalog.shards)
    assert objectstore.committed_shards(remote_out, verify="content") == committed    # bytes read back
    for name, data in committed.items():
        assert objectstore.LISTING_KEY in fs.metadata(f"{remote_out[5:]}/shards/{name}/{SHARD_FILE}")
        assert objectstore.remote_content_hash(f"{remote_out}/shards/{name}") == data["record"]["content_hash"]


@pytest.mark.slow
def test_killed_s3_job_resumes_to_identical_output(s3, tmp_path):
    fs = s3["fs"]
    src = tmp_path / "src"
    egodex_sample.write_sample(src, 3, (96, 64), episodes_per_task=1, seconds=1.0)
    faults.write_egodex_fault(src, "nan_transform")
    remote_src = f"s3://{BUCKET}/resume/src"
    _upload(fs, src, remote_src)
    reference_url = f"s3://{BUCKET}/resume/reference"
    run(_config("egodex", remote_src, reference_url), "local")
    reference = _s3_tree(fs, reference_url)

    script = str(REPO / "pipelines" / "egodex_tokenize.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # shard-start:2 — killed after the first shard is published; upload:2 — killed after the second
    # format directory's data is uploaded but before its shard.json (lerobot twin already committed).
    for point in ("shard-start:2", "upload:2"):
        out = f"s3://{BUCKET}/resume/killed-{point.replace(':', '-')}"
        args = [sys.executable, script, "--input", remote_src, "--output", out, "--episodes-per-shard", "2",
                "--video-size", "96x64", "--runner", "local"]
        first = subprocess.run(args, cwd=REPO, env=fault_env(point, env), capture_output=True, timeout=300)
        assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
        partial = _s3_tree(fs, out)
        assert "catalog.json" not in partial
        markers = [k for k in partial if k.endswith("/" + SHARD_FILE)]
        if point == "upload:2":      # data of egodex-00000.zarr is up, its marker is not
            assert "shards/egodex-00000/shard.json" in markers
            assert any(k.startswith("shards/egodex-00000.zarr/") for k in partial)
            assert "shards/egodex-00000.zarr/shard.json" not in markers
            assert set(objectstore.committed_shards(out)) == {"egodex-00000"}
        else:
            assert set(objectstore.committed_shards(out)) == {"egodex-00000", "egodex-00000.zarr"}
        # resume, with the endpoint given as a storage option instead of the environment
        resume_env = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"}
        second = subprocess.run(args + ["--storage-option", f"endpoint_url={s3['endpoint']}"], cwd=REPO,
                                env=resume_env, capture_output=True, timeout=300)
        assert second.returncode == 0, second.stderr[-3000:]
        assert _s3_tree(fs, out) == reference, point

    # a committed shard whose bytes changed afterwards is not trusted: redone on rerun
    out = f"s3://{BUCKET}/resume/killed-shard-start-2"
    victim = f"{out[5:]}/shards/egodex-00001/meta/info.json"
    fs.pipe_file(victim, fs.cat_file(victim) + b" ")
    assert "egodex-00001" not in objectstore.committed_shards(out)
    assert objectstore.committed_shard(f"{out}/shards/egodex-00001", verify="content") is None
    assert objectstore.committed_shard(f"{out}/shards/egodex-00001.zarr", verify="content") is not None
    run(_config("egodex", remote_src, out), "local")
    assert _s3_tree(fs, out) == reference
    catalog = json.loads(reference["catalog.json"])
    assert catalog["counts"]["rejected"] == 1


def test_storage_options_reach_fsspec_config_and_bad_ones_are_refused(monkeypatch, capsys):
    """The refusals go through the entry script's own `main` in this process: argparse's exit 2 and its
    message are the same as from a fresh `python pipelines/egodex_tokenize.py` (whose start-up, ~4 s of
    imports each, the kill-and-resume tests run anyway)."""
    import fsspec.config

    from pipelines.jobcli import configure_storage, main

    monkeypatch.delenv("FSSPEC_S3", raising=False)
    monkeypatch.setattr(fsspec.config, "conf", {})
    got = configure_storage(["s3://b/in", "/local/out"], ["endpoint_url=http://127.0.0.1:9", "anon=true",
                                                          'client_kwargs={"region_name": "eu-west-1"}'])
    want = {"endpoint_url": "http://127.0.0.1:9", "anon": True, "client_kwargs": {"region_name": "eu-west-1"}}
    assert got == {"s3": want} and fsspec.config.conf["s3"] == want
    assert json.loads(os.environ["FSSPEC_S3"]) == want          # what Ray / Beam workers inherit
    for argv in (["--storage-option", "novalue"], ["--storage-option", "anon=true"]):   # 2nd: no URL given
        with pytest.raises(SystemExit) as refused:
            main(["--input", "/x", "--output", "/y", *argv], source="egodex", prog="pipelines/egodex_tokenize.py")
        stderr = capsys.readouterr().err
        assert refused.value.code == 2 and "--storage-option" in stderr, stderr


def test_readers_open_an_s3_output(s3_runs):
    """Training (`make_loader`), the dashboard, `validate` and `shards.reader` read an s3:// output root
    exactly like its local twin."""
    import torch
    from fastapi.testclient import TestClient

    from dashboard.app import create_app
    from shards.reader import open_output, open_shard
    from shards.validate import validate
    from training.data import DataConfig, make_loader

    runs = s3_runs("egodex")          # the same job pair as the S3 -> S3 test (its inputs include bad ones)
    remote_out, local_out = runs["remote_out"], runs["local_out"]

    remote, local = open_output(remote_out), open_output(local_out)
    assert remote.catalog.shards == local.catalog.shards and remote.fates().keys() == local.fates().keys()
    assert remote.tokenizer().config == local.tokenizer().config
    shard = next(r.shard_id for r in remote.catalog.shards if r.episodes)    # not a shard of rejects only
    for fmt in ("lerobot", "zarr"):
        r, l = remote.open_shard(shard, fmt), local.open_shard(shard, fmt)
        assert r.location.is_url and r.episodes() == [e for e in l.episodes()]
        for key, values in l.columns().items():
            np.testing.assert_array_equal(r.columns([key])[key], values)
        cam = r.info().cameras[0].key
        np.testing.assert_array_equal(r.frame(cam, 0, 5), l.frame(cam, 0, 5))
    bare = open_output(f"{remote_out}/shards/{shard}.zarr")          # one shard, its catalog synthesized
    assert bare.synthesized and bare.catalog.shards[0].shard_id == shard and bare.tokenizer() is not None
    assert open_shard(f"{remote_out}/shards/{shard}").format == "lerobot"

    for fmt in ("lerobot", "zarr"):
        cfg = DataConfig(horizon=4, image_size=(32, 48), format=fmt)
        loader_r, _ = make_loader([remote_out], cfg, batch_size=8, seed=3)
        loader_l, _ = make_loader([local_out], cfg, batch_size=8, seed=3)
        assert all(isinstance(p, str) and p.startswith("s3://") for s in loader_r.dataset.shards for p in s.paths.values())
        for k, (a, b) in enumerate(zip(loader_r, loader_l)):
            for key in ("images", "actions", "state", "tokens", "action_pad", "episode_index", "frame_index"):
                assert torch.equal(a[key], b[key]), (fmt, key)
            if k == 2:
                break

    assert validate(remote_out) == []
    client = TestClient(create_app([remote_out]), base_url="http://127.0.0.1")
    twin = TestClient(create_app([local_out]), base_url="http://127.0.0.1")
    o, lo = client.get("/api/overview").json(), twin.get("/api/overview").json()
    assert {k: v for k, v in o.items() if k != "roots"} == {k: v for k, v in lo.items() if k != "roots"}
    row = client.get("/api/episodes", params={"status": "ingested", "limit": 1}).json()["items"][0]
    e, le = (c.get("/api/episode", params={"id": row["id"]}).json() for c in (client, twin))
    assert e == le
    url = e["videos"][0]["url"]
    assert url.startswith("/files/0/shards/")
    local_mp4 = (local_out / url.split("/", 3)[3]).read_bytes()
    part = client.get(url, headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == local_mp4[4:12] == b"ftypisom"
    assert client.get(url).content == local_mp4
    for bad in ("..%2Fsecret.mp4", "%2e%2e/%2e%2e/x.mp4", "shards/%2e%2e/%2e%2e/x.mp4"):   # outside the root URL
        assert client.get(f"/files/0/{bad}").status_code == 403, bad
    tokens = client.get("/api/tokens", params={"id": row["id"], "frame": 2}).json()
    assert tokens == twin.get("/api/tokens", params={"id": row["id"], "frame": 2}).json() and tokens["valid"]
