"""Generate images for named latents (seed, index) from a loaded checkpoint."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from .checkpoint import Bundle
from .images import to_uint8
from .latents import latents


@torch.no_grad()
def generate_from_z(G: torch.nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """z (N, nz) -> float images (N, C, H, W) in [-1, 1] on z's device; G must be in eval mode
    (batchnorm running statistics), so each sample is independent of its batch."""
    if G.training:
        raise ValueError("generate with G.eval(): in train mode batchnorm mixes samples of a batch")
    return torch.cat([G(z[i : i + batch_size]) for i in range(0, len(z), batch_size)]) if len(z) else z.new_zeros(0)


def generate(bundle: Bundle, seed: int, indices: Sequence[int] | Iterable[int] | int, batch_size: int = 256) -> torch.Tensor:
    """uint8 images (N, H, W, C) on the CPU for latents (seed, i) for i in ``indices``."""
    idx = list(range(indices)) if isinstance(indices, int) else list(indices)
    z = latents(bundle.config, seed, idx, device=bundle.device)
    return to_uint8(generate_from_z(bundle.G, z, batch_size))
