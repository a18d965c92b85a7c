"""The Checkpoints, Filters and Latent pages in a real headless browser (Selenium + chromedriver):
open each page, change a control, check its figure is redrawn, save a screenshot."""

from __future__ import annotations

import pytest

pytest.importorskip("dash")
pytest.importorskip("selenium")

from browser_fixtures import BROWSER_MARKS, SCREENSHOTS  # noqa: E402 (after the importorskips)

pytestmark = BROWSER_MARKS


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


def test_checkpoints_filters_and_latent_pages_react_to_controls(served, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, ckpt = served
    driver = browser
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
