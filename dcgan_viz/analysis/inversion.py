"""Latent inversion: find z with G(z) ≈ a given image (gradient descent on z, best of restarts).

Lets people do walks and arithmetic on their own images (asked for by users of
soumith/dcgan.torch), and is the optimiser behind the memorization analysis's latent recovery
(Webster et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Inversion:
    """z: (N, nz) best latent per image; errors: (N,) pixel MSE of G(z) against the image in
    [-1, 1] units; restart_errors: (R, N) final error of every restart."""

    z: np.ndarray
    errors: np.ndarray
    restart_errors: np.ndarray


def _as_target(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) or float (N, C, H, W) in [-1, 1] -> float (N, C, H, W) on ``device``."""
    t = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if t.dtype == torch.uint8:
        t = t.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    return t.float().to(device)


def invert(G: torch.nn.Module, images: np.ndarray | torch.Tensor, z_dist: str = "uniform", steps: int = 200,
           lr: float = 0.05, restarts: int = 1, seed: int = 0) -> Inversion:
    """Adam on z (pixel MSE) from ``restarts`` random starts per image; the prior's range is kept
    (uniform z is clamped to [-1, 1]). G must be in eval mode (images are independent)."""
    if G.training:
        raise ValueError("invert with G.eval(): in train mode batchnorm mixes the images of a batch")
    if restarts < 1 or steps < 0:
        raise ValueError(f"restarts must be >= 1 and steps >= 0, got {restarts} and {steps}")
    device = next(G.parameters()).device
    target = _as_target(images, device)
    n, nz = len(target), G.cfg.nz
    expected = (G.cfg.nc, G.cfg.image_size, G.cfg.image_size)
    if tuple(target.shape[1:]) != expected:
        raise ValueError(f"images must be {expected[1]}x{expected[2]} with {expected[0]} channel(s) for this "
                         f"generator, got {tuple(target.shape[1:])}")
    gen = torch.Generator().manual_seed(seed)
    draw = torch.rand if z_dist == "uniform" else torch.randn
    z0 = draw(restarts * n, nz, generator=gen)
    z0 = z0 * 2 - 1 if z_dist == "uniform" else z0
    z = z0.to(device).requires_grad_(True)
    tiled = target.repeat(restarts, 1, 1, 1)
    opt = torch.optim.Adam([z], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            ((G(z) - tiled) ** 2).mean(dim=(1, 2, 3)).sum().backward()
            opt.step()
            if z_dist == "uniform":
                with torch.no_grad():
                    z.clamp_(-1.0, 1.0)
    with torch.no_grad():
        errors = ((G(z) - tiled) ** 2).mean(dim=(1, 2, 3)).reshape(restarts, n)
        best = errors.argmin(dim=0)
        z_best = z.detach().reshape(restarts, n, nz)[best, torch.arange(n, device=device)]
    return Inversion(z=z_best.cpu().numpy(), errors=errors.min(dim=0).values.cpu().numpy(),
                     restart_errors=errors.cpu().numpy())
