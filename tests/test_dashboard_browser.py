"""End to end in headless Chromium: the dashboard served by `psi0 dashboard` over a LeRobot-written
shard; the overview draws its charts, the episode video plays and the plots render. Screenshots are
saved under the test's tmp_path."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard_fixture import build_output_root

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
                                 reason="needs Debian chromium + chromium-driver")]

CANVAS_INK = """const cv = arguments[0]; const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return [n, cv.width * cv.height];"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    out = build_output_root(tmp_path_factory.mktemp("dashb") / "out")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "psi0", "dashboard", str(out), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/api/roots", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read().decode())
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def driver(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path / 'profile'}"]:
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def _wait(fn, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_overview_renders(server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    driver.get(server + "/#/")
    chart = _wait(lambda: driver.find_elements(By.ID, "rejchart"))[0]
    ink, _ = driver.execute_script(CANVAS_INK, chart)
    assert ink > 100, "reject bar chart is empty"
    assert "non_finite" in driver.find_element(By.TAG_NAME, "main").text
    qbars = driver.find_elements(By.CSS_SELECTOR, "canvas.qbar")
    assert len(qbars) == 7 and driver.execute_script(CANVAS_INK, qbars[0])[0] > 20
    driver.save_screenshot(str(tmp_path / "overview.png"))
    driver.get(server + "/#/rejects")
    _wait(lambda: "NaN in action" in driver.find_element(By.TAG_NAME, "main").text)
    driver.save_screenshot(str(tmp_path / "rejects.png"))


def test_episode_video_plays_with_plots(server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    driver.get(server + "/#/episodes")
    rows = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#eplist tr[data-id]"))
    assert len(rows) == 4
    driver.save_screenshot(str(tmp_path / "episodes.png"))
    driver.get(server + "/#/episode/" + "0%3Ademo%2Fep001")
    video = _wait(lambda: driver.find_elements(By.ID, "video"))[0]
    err = driver.execute_script("return arguments[0].error && arguments[0].error.code", video)
    assert not err, f"video error {err}"
    # the player seeks to this episode's from_timestamp (2.0 s) and plays on from there
    t1 = _wait(lambda: driver.execute_script("return arguments[0].currentTime >= 2.0 && arguments[0].currentTime",
                                             video))
    t2 = _wait(lambda: (lambda t: t if t != t1 else 0)(driver.execute_script("return arguments[0].currentTime",
                                                                              video)))
    assert t2 != t1 and 2.0 <= t2 <= 4.0
    plots = driver.find_elements(By.CSS_SELECTOR, "canvas.plot")
    assert len(plots) == 3 + 2  # action: left_arm, right_arm, other; state: left_arm, right_arm
    for cv in plots:
        ink, total = driver.execute_script(CANVAS_INK, cv)
        assert ink > 200 and ink < total, "plot canvas empty"
    assert "frame" in driver.find_element(By.ID, "vtime").text
    time.sleep(0.5)
    driver.save_screenshot(str(tmp_path / "episode.png"))
