"""Fixtures of the headless-browser tests: a dashboard served by the CLI in a subprocess over a
tiny checkpoint, and a Selenium Chrome driver on Debian's chromium + chromium-driver.

Test modules use them with ``from browser_fixtures import BROWSER_MARKS, browser, served``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from apps.wire_client import free_port, wait_http
from fixtures_dashboard import tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
BROWSER_MARKS = [pytest.mark.slow,
                 pytest.mark.skipif(CHROMEDRIVER is None or CHROMIUM is None, reason="chromedriver/chromium missing")]
SCREENSHOTS = REPO / "out" / "test-artifacts" / "screenshots"


@pytest.fixture
def served(tmp_path):
    """(base URL, checkpoint path): the dashboard over a tiny checkpoint, served by the CLI in a
    subprocess whose working directory (and so its caches) is ``tmp_path``; its log is a file."""
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
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def browser(tmp_path):
    """A headless Chrome (1400x2000 window) driven by Selenium; screenshots go to SCREENSHOTS."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2000",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
