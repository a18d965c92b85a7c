"""The Memorization and Embedding pages in a real headless browser (Selenium + Debian chromium):
the served dashboard runs their background callbacks in worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dash")
pytest.importorskip("selenium")
REPO = Path(__file__).resolve().parents[2]
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMEDRIVER is None or CHROMIUM is None, reason="chromedriver/chromium missing")]
SCREENSHOTS = REPO / "out" / "test-artifacts" / "screenshots"


@pytest.fixture
def served(tmp_path):
    """(base URL, checkpoint path): the dashboard over a tiny checkpoint, served by the CLI in a
    subprocess whose working directory (and so its caches) is ``tmp_path``."""
    from fixtures_dashboard import free_port, tiny_checkpoint, wait_http

    ckpt, _ = tiny_checkpoint(tmp_path / "ckpts")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "dcgan_viz.cli", "dashboard", "--checkpoints",
                               str(tmp_path / "ckpts"), "--port", str(port), "--device", "cpu"],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}", ckpt
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its background-callback workers
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1400",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _until(driver, check, seconds: float = 120, what: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.5).until(lambda d: check(d), message=what)


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))


def test_memorization_and_embedding_pages(served, browser):
    from selenium.webdriver.common.by import By

    base, ckpt = served
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    browser.get(f"{base}/memorization?checkpoint={ckpt}&seed=0&index=2&k=4")
    _until(browser, lambda d: "latent (0, 2)" in _text(d, "#memo-caption"), what="neighbours of latent (0, 2)")
    rows = browser.find_elements(By.CSS_SELECTOR, ".dcgan-neighbours")
    assert len(rows) == 2 and len(rows[0].find_elements(By.TAG_NAME, "img")) == 4
    before = browser.find_element(By.CSS_SELECTOR, ".dcgan-query img").get_attribute("src")
    picks = _until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "img.dcgan-pick"), what="pick grid")
    picks[5].click()  # a control: choose another sample
    _until(browser, lambda d: "latent (0, 5)" in _text(d, "#memo-caption"), what="neighbours of latent (0, 5)")
    assert browser.find_element(By.CSS_SELECTOR, ".dcgan-query img").get_attribute("src") != before
    assert "index=5" in browser.current_url
    browser.find_element(By.ID, "memo-copy-run").click()
    _until(browser, lambda d: "Verdict:" in _text(d, "#memo-copy-output"), 240, "copy test result")
    assert "pixel" in _text(browser, ".dcgan-copy-table")
    assert browser.find_element(By.ID, "memo-pairs").get_attribute("src").startswith("data:image/png;base64,")
    browser.find_element(By.ID, "memo-dedup-run").click()
    _until(browser, lambda d: "near-duplicate pairs" in _text(d, "#memo-dedup-output"), 240, "dedup report")
    browser.save_screenshot(str(SCREENSHOTS / "memorization.png"))

    browser.get(f"{base}/memorization?checkpoint={ckpt}&index=-1")
    _until(browser, lambda d: "index must be a whole number" in _text(d, "#memo-error"), what="bad index message")
    assert "Traceback" not in browser.page_source

    browser.get(f"{base}/embedding?checkpoint={ckpt}&seed=0&real=20&generated=10")
    _until(browser, lambda d: "real (20)" in _text(d, "#embed-graph .legend"), 240, "UMAP by source")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#embed-graph .scatterlayer .trace, #embed-graph .gl-container"))
    browser.find_element(By.CSS_SELECTOR, "#embed-colour input[value='label']").click()
    _until(browser, lambda d: "unlabelled" in _text(d, "#embed-graph .legend"), what="UMAP by label")
    assert "colour=label" in browser.current_url
    browser.save_screenshot(str(SCREENSHOTS / "embedding.png"))
