"""Latent inversion: an image the generator can make is recovered; one it cannot make is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dcgan_viz.analysis.inversion import invert
from dcgan_viz.checkpoint import save_checkpoint
from dcgan_viz.cli import app
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import ModelConfig, build_models


@pytest.fixture
def tiny_g():
    torch.manual_seed(0)
    G, D = build_models(ModelConfig(image_size=32, nz=16, ngf=8, ndf=8))
    return G.eval(), D.eval()


def test_recovers_a_reachable_image_not_noise(tiny_g) -> None:
    G, _ = tiny_g
    z_true = torch.rand(4, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        made = G(z_true)
    noise = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    found = invert(G, made, steps=150, lr=0.05, restarts=3, seed=1)
    missed = invert(G, noise, steps=150, lr=0.05, restarts=3, seed=1)
    assert found.z.shape == (4, 16) and found.restart_errors.shape == (3, 4)
    assert found.errors.max() < 0.1 * missed.errors.min()
    assert (found.errors <= found.restart_errors.min(axis=0) + 1e-7).all()  # best restart kept
    assert np.abs(found.z).max() <= 1.0  # stays in the uniform prior's range


def test_bad_inputs(tiny_g) -> None:
    G, _ = tiny_g
    with pytest.raises(ValueError, match="32x32 with 3 channel"):
        invert(G, torch.zeros(1, 3, 64, 64), steps=1)
    with pytest.raises(ValueError, match="eval"):
        invert(G.train(), torch.zeros(1, 3, 32, 32), steps=1)
    G.eval()


def test_cli_invert(tiny_g, tmp_path: Path) -> None:
    G, D = tiny_g
    ckpt = save_checkpoint(tmp_path / "ck", G, D, data=DataSpec(source="faces", size=32, count=64, test_count=16))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "me.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    runner = CliRunner()
    res = runner.invoke(app, ["invert", str(ckpt), str(tmp_path / "me.png"), "--out", str(tmp_path / "inv"),
                              "--steps", "5", "--restarts", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "inv" / "latents.npy").shape == (1, 16)
    assert (tmp_path / "inv" / "inversion.png").is_file()
    res = runner.invoke(app, ["invert", str(ckpt), str(tmp_path / "bad.png"), "--out", str(tmp_path / "inv2"),
                              "--device", "cpu"])
    assert res.exit_code == 2 and res.output.strip().startswith("error: ") and "not a readable image" in res.output
