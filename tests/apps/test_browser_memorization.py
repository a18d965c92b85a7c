"""The Memorization and Embedding pages in a real headless browser (Selenium + Debian chromium):
the served dashboard runs their background callbacks as jobs in server threads."""

from __future__ import annotations

import pytest

pytest.importorskip("dash")
pytest.importorskip("selenium")

from browser_fixtures import BROWSER_MARKS, SCREENSHOTS  # noqa: E402 (after the importorskips)

pytestmark = BROWSER_MARKS


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
