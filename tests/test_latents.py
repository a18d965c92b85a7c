from __future__ import annotations

import torch

from dcgan_viz.latents import latents
from dcgan_viz.models import ModelConfig


def test_latent_named_by_seed_and_index() -> None:
    cfg = ModelConfig()
    batch = latents(cfg, 0, 32)
    assert batch.shape == (32, 100)
    assert torch.equal(latents(cfg, 0, [17]), batch[17:18])  # independent of the batch it is drawn in
    assert not torch.equal(latents(cfg, 1, [17]), batch[17:18])
    state = torch.get_rng_state()
    latents(cfg, 3, 10)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched


def test_prior_ranges() -> None:
    u = latents(ModelConfig(), 0, 4000)
    assert u.min() >= -1 and u.max() <= 1 and abs(u.mean().item()) < 0.01
    assert u.std().item() == __import__("pytest").approx((1 / 3) ** 0.5, rel=0.02)
    n = latents(ModelConfig(z_dist="normal"), 0, 4000)
    assert abs(n.mean().item()) < 0.01 and abs(n.std().item() - 1) < 0.02
