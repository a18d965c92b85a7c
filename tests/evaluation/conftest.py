"""Tiny synthetic tasks for the evaluation helpers: each has an exact answer a small net can learn
in a few dozen CPU steps, and a held-out split to score on."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch.nn import functional as F

Task = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]

def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@pytest.fixture
def threshold_task() -> Task:
    """Grey 16x16 RGB images of random 4x4 blocks; mask = 1 where the pixel is brighter than 0.5."""

    def make(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        value = F.interpolate(torch.rand(n, 1, 4, 4, generator=g), size=(16, 16), mode="nearest")[:, 0]
        return _u8(value)[..., None].expand(n, 16, 16, 3).contiguous(), (value > 0.5).to(torch.uint8)

    return make


@pytest.fixture
def attribute_task() -> Task:
    """16x16 RGB images: a dim background plus a 4-pixel-wide vertical bar in one colour channel.

    Attributes (N, 3), kinds {"brightness": "continuous", "colour": "categorical:3",
    "position": "continuous_signed"}: brightness in [0, 1] (of the whole image), colour 0..2 (the bar's
    channel), position in [-1, 1] (the bar's column, left to right: a mirror negates it).
    """

    def make(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        brightness = torch.rand(n, generator=g)
        colour = torch.randint(0, 3, (n,), generator=g)
        column = torch.randint(0, 13, (n,), generator=g)
        level = 0.2 + 0.6 * brightness
        img = (0.5 * level)[:, None, None, None].repeat(1, 16, 16, 3)
        for i in range(n):
            img[i, :, column[i] : column[i] + 4, colour[i]] = level[i]
        position = column.float() / 12 * 2 - 1
        return _u8(img), torch.stack([brightness, colour.float(), position], dim=1)

    return make


@pytest.fixture
def colour_task() -> Task:
    """Noisy 16x16 RGB images whose label 0..2 is the dominant colour channel."""

    def make(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 3, (n,), generator=g)
        img = torch.rand(n, 16, 16, 3, generator=g) * 0.5
        img[torch.arange(n), :, :, labels] += 0.4
        return _u8(img), labels

    return make


@pytest.fixture
def seeded() -> Callable:
    """``seeded(factory, seed)``: build a model under a fixed seed without touching the global RNG."""

    def build(factory: Callable, seed: int = 0):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory()

    return build
