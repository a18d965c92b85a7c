"""Screenshot every dashboard page on the shipped checkpoints (for the README), in headless Chromium.

    python scripts/dashboard_screenshots.py --out docs/dashboard [--checkpoints checkpoints]

Serves the dashboard as a subprocess, opens each page with a view worth showing, waits until its
images and figures are drawn, and saves ``<page>.png``. Needs selenium, chromium and chromedriver.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.wire_client import free_port, wait_http  # noqa: E402

# page file name -> (URL path and query, CSS selectors that must be drawn before the screenshot)
PAGES = {
    "checkpoints": ("/?checkpoint=checkpoints/rooms64&seed=0", ["#ckpt-grid[src^='data:image']", "#ckpt-curves .main-svg"]),
    "filters": ("/filters?checkpoint=checkpoints/rooms64&layer=conv4&filters=0:4", ["#filters-fig5[src^='data:image']"]),
    "latent": ("/latent?checkpoint=checkpoints/faces64&seed=0&points=4&steps=7", ["#latent-walk[src^='data:image']",
                                                                                  "#latent-arith[src^='data:image']"]),
    "removal": ("/removal?checkpoint=checkpoints/rooms64&seed=0&layer=conv3&mode=auto&k=12",
                ["#removal-compare[src^='data:image']"]),
    "memorization": ("/memorization?checkpoint=checkpoints/fashion32&seed=0&index=0&k=8", ["#memo-neighbours img"]),
    "embedding": ("/embedding?checkpoint=checkpoints/fashion32&seed=0&colour=label", ["#embed-graph .legend .traces"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard"))
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    parser.add_argument("--pages", default=",".join(PAGES), help="comma-separated subset of " + ", ".join(PAGES))
    parser.add_argument("--timeout", type=float, default=240, help="seconds to wait for one page")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_bin = shutil.which("chromedriver")
    if chromium is None or driver_bin is None:
        sys.exit("error: needs chromium and chromedriver (Debian: apt install chromium chromium-driver)")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "dcgan_viz.cli", "dashboard", "--checkpoints", str(args.checkpoints),
                               "--port", str(port), "--device", "cpu"])
    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1700", "--hide-scrollbars"):
        options.add_argument(flag)
    options.binary_location = chromium
    driver = None
    try:
        wait_http(f"http://127.0.0.1:{port}/", 120, poll_s=0.5)
        driver = webdriver.Chrome(service=Service(driver_bin), options=options)
        for name in args.pages.split(","):
            path, selectors = PAGES[name]
            driver.get(f"http://127.0.0.1:{port}{path}")
            wait = WebDriverWait(driver, args.timeout)
            for css in selectors:
                wait.until(lambda d, css=css: d.find_elements(By.CSS_SELECTOR, css))
            time.sleep(2)  # let plotly finish its transitions
            driver.save_screenshot(str(args.out / f"{name}.png"))
            print(f"wrote {args.out / name}.png")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
