"""The Object removal page in a real headless browser (Selenium + chromedriver): draw a box on the
sample grid, fit the probe, see the chosen units and the with/without grids."""

from __future__ import annotations

import pytest

pytest.importorskip("dash")
pytest.importorskip("selenium")

from browser_fixtures import BROWSER_MARKS, SCREENSHOTS  # noqa: E402 (after the importorskips)

pytestmark = BROWSER_MARKS
SCREENSHOT = SCREENSHOTS / "removal.png"
GRID_SIDE = 4 * 34 + 2  # 4x4 samples of 32 px with 2 px padding, in grid-image pixels


def test_draw_box_fit_and_compare(served, browser) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, ckpt = served
    driver = browser
    driver.get(f"{base}/removal?checkpoint={ckpt}&seed=3")
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
