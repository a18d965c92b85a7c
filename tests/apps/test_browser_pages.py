"""The Checkpoints, Filters and Latent pages in a real headless browser (Selenium + chromedriver):
open each page, change a control, check its figure is redrawn, save a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_dashboard import free_port, tiny_checkpoint, wait_http

pytest.importorskip("dash")
webdriver = pytest.importorskip("selenium.webdriver")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMEDRIVER is None or CHROMIUM is None, reason="chromedriver/chromium missing")]
SCREENSHOTS = Path("out/test-artifacts/screenshots")


def _src(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).get_attribute("src") or ""


def _type(driver, element_id: str, text: str) -> None:
    """Replace an input's text and commit it (the inputs are debounced: Enter sends the value)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, element_id)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text, Keys.ENTER)


def test_checkpoints_filters_and_latent_pages_react_to_controls(tmp_path: Path) -> None:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ckpt, _ = tiny_checkpoint(tmp_path / "ckpts")
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "dcgan_viz.cli", "dashboard", "--checkpoints",
                               str(tmp_path / "ckpts"), "--port", str(port), "--device", "cpu"],
                              stdout=log, stderr=subprocess.STDOUT)
    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2000",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    driver = None
    try:
        wait_http(base + "/")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        wait = WebDriverWait(driver, 90)

        # Checkpoints: a new seed redraws the sample grid
        driver.get(f"{base}/?checkpoint={ckpt}&seed=0")
        wait.until(lambda d: _src(d, "ckpt-grid").startswith("data:image"))
        first = _src(driver, "ckpt-grid")
        _type(driver, "ckpt-seed", "5")
        wait.until(lambda d: _src(d, "ckpt-grid") not in ("", first))
        assert "seed=5" in driver.current_url
        driver.save_screenshot(str(SCREENSHOTS / "checkpoints.png"))

        # Filters: other filters give another Fig. 5 grid; a bad index gives a message, not a traceback
        driver.get(f"{base}/filters?checkpoint={ckpt}&filters=0:2")
        wait.until(lambda d: _src(d, "filters-fig5").startswith("data:image"))
        first = _src(driver, "filters-fig5")
        _type(driver, "filters-filters", "2:4")
        wait.until(lambda d: _src(d, "filters-fig5") not in ("", first))
        driver.save_screenshot(str(SCREENSHOTS / "filters.png"))
        _type(driver, "filters-filters", "0:999")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#filters-error .dcgan-error"))
        assert "Traceback" not in driver.page_source

        # Latent: switching slerp -> lerp redraws the walk
        driver.get(f"{base}/latent?checkpoint={ckpt}&seed=0&points=3&steps=4&method=slerp")
        wait.until(lambda d: _src(d, "latent-walk").startswith("data:image"))
        first = _src(driver, "latent-walk")
        driver.find_element(By.CSS_SELECTOR, "#latent-method input[value='lerp']").click()
        wait.until(lambda d: _src(d, "latent-walk") not in ("", first))
        assert "method=lerp" in driver.current_url
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#latent-walk-steps .main-svg"))
        driver.save_screenshot(str(SCREENSHOTS / "latent.png"))
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
        log.close()
