"""Shared fixtures: tiny models so the suite stays fast on 2 CPU cores."""

from __future__ import annotations

import pytest
import torch

from dcgan_viz.models import ModelConfig


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return ModelConfig(image_size=32, nz=16, ngf=8, ndf=8, nc=3)


@pytest.fixture
def tiny_images() -> torch.Tensor:
    """uint8 (128, 32, 32, 3): smooth random blobs (not pure noise, so D has something to learn)."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(128, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(base, size=32, mode="bilinear", align_corners=False)
    return (img * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
