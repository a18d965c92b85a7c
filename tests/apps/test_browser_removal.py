"""The Object removal page in a real headless browser (Selenium + chromedriver): draw a box on the
sample grid, fit the probe, see the chosen units and the with/without grids."""

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
SCREENSHOT = Path("out/test-artifacts/screenshots/removal.png")
GRID_SIDE = 4 * 34 + 2  # 4x4 samples of 32 px with 2 px padding, in grid-image pixels


def test_draw_box_fit_and_compare(tmp_path: Path) -> None:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
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
    driver = None
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}/removal?checkpoint={ckpt}&seed=3")
        wait = WebDriverWait(driver, 90)
        drag = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#removal-grid .nsewdrag"))[0]
        wait.until(lambda d: (d.find_element(By.ID, "removal-compare").get_attribute("src") or "").startswith("data:image"))
        plain = driver.find_element(By.ID, "removal-compare").get_attribute("src")
        units = driver.find_element(By.ID, "removal-units").text
        assert "no probe fitted" in units

        # draw over sample 5 (row 1, col 1): grid pixels (40, 44)-(60, 64); the drag layer spans the grid
        scale = drag.size["width"] / GRID_SIDE
        assert abs(drag.size["height"] / GRID_SIDE - scale) < 0.05 * scale  # square pixels
        cx, cy = drag.size["width"] / 2, drag.size["height"] / 2
        (ActionChains(driver)
         .move_to_element_with_offset(drag, int(40 * scale - cx), int(44 * scale - cy))
         .click_and_hold()
         .move_by_offset(int(10 * scale), int(10 * scale))
         .move_by_offset(int(10 * scale), int(10 * scale))
         .release()
         .perform())
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#removal-grid .shapelayer path"))

        driver.find_element(By.ID, "removal-fit").click()
        wait.until(lambda d: "conv2 units" in d.find_element(By.ID, "removal-units").text)
        text = driver.find_element(By.ID, "removal-units").text
        assert "of 16 conv2 units" in text and "% of the layer" in text and "1 drawn box(es) on 1 sample(s)" in text
        assert not driver.find_elements(By.CSS_SELECTOR, ".dcgan-error")
        wait.until(lambda d: (d.find_element(By.ID, "removal-compare").get_attribute("src") or plain) != plain)
        caption = driver.find_element(By.ID, "removal-compare-caption").text
        assert "left with, right without" in caption
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        assert "Traceback" not in driver.page_source
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
        log.close()
