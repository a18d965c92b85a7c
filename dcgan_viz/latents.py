"""Seeded latents: a latent is named by (seed, index) and is the same vector everywhere.

Drawn from the counter-based hash in ``dcgan_viz.data.rng`` rather than from a stateful
generator, so "sample 17 of seed 0" does not depend on batch size, device or what was drawn
before it — in a URL, a figure or a test.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .data import rng
from .models import ModelConfig

_Z_STREAM = 0x5A


def latents(cfg: ModelConfig, seed: int, indices: Sequence[int] | torch.Tensor | int,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Latents (N, nz) from the config's prior: uniform[-1, 1] (paper) or standard normal.

    ``indices``: an int n means indices 0..n-1.
    """
    if isinstance(indices, int):
        idx = torch.arange(indices, dtype=torch.int64, device=device)
    else:
        idx = torch.as_tensor(indices, dtype=torch.int64, device=device).reshape(-1)
    if seed < 0 or (idx.numel() and int(idx.min()) < 0):
        raise ValueError("latent seed and indices must be non-negative")
    sampler = getattr(cfg, "sample_z", None)  # a wrapped model's own prior (dcgan_viz.instrument)
    if sampler is not None:
        z = torch.as_tensor(sampler(int(seed), idx.cpu())).to(device=idx.device, dtype=torch.float32)
        if z.shape != (idx.numel(), cfg.nz):
            raise ValueError(f"sample_z returned shape {tuple(z.shape)}, expected ({idx.numel()}, {cfg.nz})")
        return z
    if cfg.z_dist == "uniform":
        return rng.uniform(seed, idx, _Z_STREAM, cfg.nz) * 2.0 - 1.0
    return rng.normal(seed, idx, _Z_STREAM, cfg.nz)
