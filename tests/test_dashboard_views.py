"""The dashboard over a view: it opens like an output root (episodes, videos, stats), the Views page's API shows
its lineage and the counts of each step, and an Episodes-page selection downloads as a view manifest that the
rest of psi0 reads. Never imports torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shards.dataset_cli import main as dataset
from shards.reader import open_output
from views_fixture import sample_roots

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def view(tmp_path_factory) -> Path:
    roots = sample_roots()
    base = tmp_path_factory.mktemp("dash-views")
    assert dataset(["filter", str(roots["eg"]), "--task-glob", "*lid*", "--out", str(base / "lid.json")]) == 0
    assert dataset(["merge", str(base / "lid.json"), str(roots["he"]), "--mixture", "--out",
                    str(base / "mix.json")]) == 0
    return base / "mix.json"


@pytest.fixture(scope="module")
def client(view):
    from fastapi.testclient import TestClient

    from dashboard.app import create_app

    return TestClient(create_app([view, sample_roots()["eg"]]), base_url="http://127.0.0.1")


def test_a_view_opens_like_an_output_root(client, view):
    overview = client.get("/api/overview").json()
    assert overview["errors"] == [] and overview["episodes"] == 7 + 6
    items = client.get("/api/episodes", params={"limit": 100}).json()["items"]
    mine = [i for i in items if i["root"] == 0]
    assert len(mine) == 7 and {i["source"] for i in mine} == {"egodex", "humanoid_everyday"}
    episode = client.get("/api/episode", params={"id": mine[0]["id"]}).json()
    url = episode["videos"][0]["url"]
    assert url.startswith("/files/0/@")
    got = client.get(url, headers={"range": "bytes=0-63"})
    assert got.status_code == 206 and len(got.content) == 64
    assert client.get("/files/0/@9/shards/x.mp4").status_code == 403            # no such input root
    assert client.get("/files/0/@0/%2e%2e/%2e%2e/%2e%2e/etc/passwd.mp4").status_code == 403   # stays in its root


def test_views_page_api_shows_lineage_and_step_counts(client):
    info = client.get("/api/view", params={"root": 0}).json()["view"]
    assert [s["operation"]["verb"] for s in info["lineage"]] == ["filter", "merge"]
    assert info["lineage"][0]["steps"] == [{"step": "task matches '*lid*'", "kept": 2, "dropped": 4}]
    assert info["counts"]["episodes"] == 7 and info["stats"]["basis"] == "selection"
    assert {i["kind"] for i in info["inputs"]} == {"view", "root"}
    assert client.get("/api/view", params={"root": 1}).json()["view"] is None
    assert client.get("/api/view", params={"root": 7}).status_code == 404


def test_an_episode_selection_downloads_as_a_view(client, tmp_path):
    got = client.get("/api/selection.json", params={"root": 0, "source": "humanoid_everyday", "q": "wipe"})
    assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
    data = got.json()
    assert data["format"] == "psi0.view/1" and data["counts"]["episodes"] == 2
    assert data["operation"]["from"] == "dashboard" and data["operation"]["filters"] == {"source": "humanoid_everyday",
                                                                                          "q": "wipe"}
    (tmp_path / "sel.json").write_text(json.dumps(data))
    out = open_output(tmp_path / "sel.json")                                  # the rest of psi0 reads it
    assert sorted(e.source_id for e in out.episodes()) == ["humanoid_everyday/wipe_the_table/episode_0",
                                                           "humanoid_everyday/wipe_the_table/episode_1"]
    assert [s["operation"]["verb"] for s in out.lineage()] == ["filter", "merge", "filter"]


def test_views_page_is_built_from_dom_nodes():
    js = (REPO / "dashboard" / "static" / "app.js").read_text()
    start = js.index("// ---- views (built from DOM nodes")
    section = js[start:js.index("async function episode(")]
    assert "innerHTML" not in section and "textContent" in section and "/api/view" in section


def test_view_pages_never_import_torch(view):
    code = (f"import sys; from fastapi.testclient import TestClient; from dashboard.app import create_app; "
            f"c = TestClient(create_app([{str(view)!r}]), base_url='http://127.0.0.1'); "
            f"assert c.get('/api/view').status_code == 200; "
            f"assert c.get('/api/selection.json', params={{'source': 'egodex'}}).status_code == 200; "
            f"assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]


XSS = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.mark.browser
@pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
                    reason="needs Debian chromium + chromium-driver")
def test_views_page_renders_a_hostile_view_as_text(view, tmp_path):
    """A view file is data like a catalog: markup in its lineage, step names, counts and dropped list reaches the
    Views page as text (headless Chromium; the onerror handler never runs)."""
    import socket
    import time
    import urllib.request

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    data = json.loads(view.read_text())
    data["operation"]["verb"] = XSS
    data["steps"] = [{"step": XSS, "kept": XSS, "dropped": 1}]
    data["dropped"] = [{"episode": XSS, "duplicate_of": XSS, "kind": XSS, "distance": XSS}]
    hostile = view.parent / "hostile.json"              # beside the original: its inputs' relative paths hold
    hostile.write_text(json.dumps(data))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "psi0", "dashboard", str(hostile), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'profile'}"]:
        opts.add_argument(flag)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/api/roots", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.1)
        driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
        driver.get(url + "/#/view")
        end = time.time() + 20
        while "lineage" not in driver.find_element(By.TAG_NAME, "main").text.lower() and time.time() < end:
            time.sleep(0.1)
        time.sleep(1.0)                                 # an injected <img src=x> would have fired onerror by now
        text = driver.find_element(By.TAG_NAME, "main").text
        assert "lineage and filter counts" in text.lower() and "dropped duplicates (1)" in text.lower()  # h3: CSS caps
        assert text.count("<img src=x") >= 5                                   # shown as text, every field
        assert driver.execute_script("return window.__xss || 0") == 0
        assert not driver.find_elements(By.CSS_SELECTOR, "main img")
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        proc.wait(timeout=10)
