"""The dashboard's eval page over `psi0 eval` outputs: runs, per-task success with Wilson intervals, episodes,
curves and videos (with Range), nothing outside the run folders, text put in the page with textContent."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from dashboard.app import STATIC, create_app
from deploy.metrics import summarize


def _eval_out(root: Path, name: str, successes: list[bool]) -> Path:
    out = root / name
    (out / "videos").mkdir(parents=True)
    (out / "curves").mkdir()
    records = []
    for k, ok in enumerate(successes):
        stem = f"bimanual_lift_s{1000 + k}"
        (out / "curves" / f"{stem}.json").write_text(json.dumps({"task": "bimanual_lift", "seed": 1000 + k,
                                                                  "curves": {"t": [0.0, 0.1], "right_arm": {"j": [0, 1]}}}))
        video = None
        if k == 0:
            from sim.media import write_mp4
            write_mp4(out / "videos" / f"{stem}.mp4", [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)], 10)
            video = str(out / "videos" / f"{stem}.mp4")
        records.append({"task": "bimanual_lift", "seed": 1000 + k, "success": ok, "steps": 10, "wall_s": 1.0,
                        "jerk": 3.0, "chunk_switch_jump": 0.1, "video": video,
                        "curves": str(out / "curves" / f"{stem}.json"), "policy": "<script>alert(1)</script>"})
    (out / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = summarize(records)
    summary["policy"] = "run:<b>x</b>"
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "eval.json").write_text(json.dumps({"started": "2026-11-30T00:00:00"}))
    return out


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("evals")
    _eval_out(root, "trained", [True, False, True, True])
    _eval_out(root / "more", "zero", [False, False])
    (root / "secret.json").write_text("{}")
    return TestClient(create_app([], evals=[root]), base_url="http://127.0.0.1")


def test_runs_list_success_and_wilson_interval(client):
    runs = client.get("/api/evals").json()
    assert [r["name"] for r in runs] == ["trained", "more/zero"]
    t = runs[0]["tasks"]["bimanual_lift"]
    assert t["successes"] == 3 and t["episodes"] == 4 and t["ci95"] == pytest.approx([0.3006, 0.9544], abs=1e-3)
    assert runs[1]["success_rate"] == 0.0


def test_episodes_curves_and_video(client):
    eps = client.get("/api/evals/0/episodes").json()
    assert len(eps) == 4 and eps[0]["video"] == "bimanual_lift_s1000.mp4" and "/" not in eps[0]["curves"]
    curves = client.get(f"/api/evals/0/curves/{eps[1]['curves']}").json()
    assert curves["curves"]["right_arm"]["j"] == [0, 1]
    full = client.get("/evalvideo/0/bimanual_lift_s1000.mp4")
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    part = client.get("/evalvideo/0/bimanual_lift_s1000.mp4", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100


@pytest.mark.parametrize("path", ["/api/evals/0/curves/..%2F..%2Fsecret.json", "/api/evals/0/curves/.hidden.json",
                                  "/evalvideo/0/..%2Fsummary.json", "/evalvideo/0/nope.mp4", "/api/evals/9/episodes",
                                  "/api/evals/0/curves/%2Fetc%2Fpasswd"])
def test_nothing_outside_a_run_is_served(client, path):
    assert client.get(path).status_code == 404


def test_page_is_served_and_builds_text_with_textContent(client):
    page = client.get("/evals")
    assert page.status_code == 200 and "evals.js" in page.text
    js = (STATIC / "evals.js").read_text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js
    assert "createTextNode" in js
