"""The dashboard in a real headless browser: the page renders samples and curves (Debian chromium)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from apps.wire_client import free_port, wait_http

from dcgan_viz.checkpoint import save_checkpoint
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import Discriminator, Generator, ModelConfig

pytest.importorskip("dash")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_page_renders_samples_and_curves_in_chromium(tmp_path: Path) -> None:
    cfg = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)
    ckpt = save_checkpoint(tmp_path / "ckpts" / "tiny", Generator(cfg), Discriminator(cfg),
                           data=DataSpec(source="rooms", size=32, count=64, test_count=16), step=3)
    (ckpt / "README.md").write_text("# tiny\n\nA tiny browser-test model.\n")
    rows = [{"step": i, "epoch": 1, "loss_d": 1.0, "loss_g": 1.0, "d_x": 0.5, "d_g_z1": 0.5, "d_g_z2": 0.5,
             "img_per_s": 1.0} for i in range(1, 6)]
    (ckpt / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "dcgan_viz.cli", "dashboard", "--checkpoints",
                               str(tmp_path / "ckpts"), "--port", str(port), "--device", "cpu"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/?checkpoint={ckpt}&seed=2"
        wait_http(f"http://127.0.0.1:{port}/")
        dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                              "--virtual-time-budget=20000", "--dump-dom", url],
                             capture_output=True, text=True, timeout=120).stdout
        assert "Checkpoints &amp; training" in dom or "Checkpoints & training" in dom
        assert "A tiny browser-test model." in dom  # the model card
        assert 'src="data:image/png;base64,' in dom  # the sample grid
        assert "latents (seed 2, 0..63)" in dom  # the URL's seed reached the page
        assert "js-plotly-plot" in dom  # the training curves were drawn
        bad = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}",
                              "--virtual-time-budget=20000", "--dump-dom", url.replace("seed=2", "seed=-4")],
                             capture_output=True, text=True, timeout=120).stdout
        assert "Traceback" not in bad and "seed must be a whole number" in bad
    finally:
        server.terminate()
        server.wait(timeout=30)
