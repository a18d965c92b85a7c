"""Imported checkpoints in the dashboard: listed like any other; pages that need D or training data
say what is missing (one line) instead of failing."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

pytest.importorskip("dash")
pytest.importorskip("plotly")
pytest.importorskip("captum")


def _examples_netG_state(nz: int = 8, ngf: int = 4, nc: int = 3) -> dict:
    """A pytorch/examples-layout netG state dict for 32 px (4 transposed convolutions)."""
    torch.manual_seed(0)
    main = nn.Sequential(nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
                         nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                         nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
                         nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
    return {f"main.{k}": v for k, v in main.state_dict().items()}


def test_generator_only_import_in_pages(dash_app, tmp_path):
    from apps.components import find_checkpoints
    from apps.app import app_state
    from apps.pages import checkpoints, embedding, filters, memorization
    from dcgan_viz.importing import import_checkpoint

    _, ckpt, _ = dash_app
    torch.save(_examples_netG_state(), tmp_path / "netG_epoch_0.pth")
    path = import_checkpoint(tmp_path / "netG_epoch_0.pth", ckpt.parent / "imported-g")
    try:
        assert path in find_checkpoints(app_state()[0])
        error, card, grid_src, _ = checkpoints.render_checkpoint(str(path), 0)
        assert error is None and grid_src.startswith("data:image/png;base64,") and "pytorch/examples" in card
        assert filters._layer_options(str(path)) == []
        error, fig5, *_ = filters.render_fig5(str(path), "conv3", "0:2", 32)
        assert "needs a discriminator" in error.children and fig5 is None
        error, gmaps, _ = filters.render_gmaps(str(path), 0)  # G's feature maps need no D
        assert error is None and gmaps.startswith("data:image/png;base64,")
        with pytest.raises(ValueError, match="needs a discriminator"):
            embedding.compute_embedding(str(path), 0, 20, 0)
        bundle = app_state()[1].get(path)
        with pytest.raises(ValueError, match="no training data"):
            memorization.training_set(bundle)
        assert set(memorization.feature_spaces(bundle)) == {"pixel"}
    finally:
        shutil.rmtree(path, ignore_errors=True)
