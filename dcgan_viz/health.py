"""Training health: the signs of mode collapse, measured while a run trains.

Signs, checked every ``health_every`` steps on a fixed latent batch (seed HEALTH_SEED)
and a fixed batch of real training images (HEALTH_N of each):

- **diversity**: the mean pairwise distance of the generated batch divided by the same
  distance on the real batch, in the discriminator's last hidden layer (``div_d``) and in
  pixels (``div_pix``). A collapsed generator draws near-identical images for different z, so
  its ratio falls towards 0; a healthy one stays near 1. Both batches go through the same D at
  the same step, so the ratio does not drift with D's own feature scale. A ratio below
  DIVERSITY_WARN after the warm-up, or a fall below half of the run's best, is a sign.
- **D wins**: the mean D(G(z)) over the last window of steps is below ``D_WINS`` — the
  discriminator rejects every sample and the generator's gradient vanishes (the rooms64
  collapse, D(G(z)) 0.002).

``collapse_signs`` turns one measurement into a warning text (or None); the trainer prints it
once per episode of collapse, with what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .images import from_uint8
from .latents import latents
from .models import Discriminator, Generator

HEALTH_N = 64  # images in the fixed generated and real batches
HEALTH_BANK = 256  # real images whose nearest neighbours the distinct-neighbour share counts
HEALTH_SEED = 2  # the generated batch is latents (HEALTH_SEED, 0..HEALTH_N-1)
DIVERSITY_WARN = 0.4  # div_d below this share of real's diversity: collapse (see docs/training.md)
NEIGHBOURS_WARN = 0.3  # nn_d below this after the warm-up: a handful of layouts repeat
DIVERSITY_DROP = 0.5  # ... or div_d below this share of the run's best so far
D_WINS = 0.01  # mean D(G(z)) below this over a health window: D rejects everything
HEALTH_WARMUP = 1000  # steps before low diversity counts (a new generator's samples all look alike)


def pairwise_distance(x: torch.Tensor) -> float:
    """Mean L2 distance between the distinct rows of x (N, F)."""
    x = x.flatten(1).double()
    d = torch.cdist(x, x)
    n = x.shape[0]
    return float(d.sum() / max(n * (n - 1), 1))


def distinct_neighbours(x: torch.Tensor, bank: torch.Tensor) -> float:
    """Share of distinct nearest neighbours: how many different rows of ``bank`` (R, F) are the
    nearest to some row of x (N, F), divided by N. A generator that draws a handful of layouts
    reaches only that handful (its pairwise distances can still look healthy)."""
    nearest = torch.cdist(x.double(), bank.double()).argmin(dim=1)
    return nearest.unique().numel() / max(len(x), 1)


@dataclass
class HealthProbe:
    """Fixed inputs of the health check: ``real`` uint8 (N, H, W, C) and ``z`` (N, nz), on the
    training device."""

    real: torch.Tensor
    bank: torch.Tensor
    z: torch.Tensor

    @classmethod
    def for_run(cls, G: Generator, images: torch.Tensor | np.ndarray, device: torch.device) -> "HealthProbe":
        """The probe of a run: latents (HEALTH_SEED, 0..N-1), N training images and a bank of
        HEALTH_BANK others, all spread evenly over ``images`` uint8 (M, H, W, C)."""
        m = int(images.shape[0])
        n = min(HEALTH_N, m // 2)
        idx = torch.linspace(0, m - 1, n + min(HEALTH_BANK, m - n)).round().long().unique()
        picked = torch.as_tensor(np.asarray(images[idx.numpy()])).to(device)
        real, bank = picked[::2][:n], torch.cat([picked[1::2], picked[::2][n:]])
        return cls(real=real, bank=bank, z=latents(G.cfg, HEALTH_SEED, len(real), device=device))

    @torch.no_grad()
    def measure(self, G: Generator, D: Discriminator) -> dict[str, float]:
        """{"div_d", "div_pix"}: generated / real mean pairwise distance in D's last hidden layer
        and in pixels.

        G draws its batch as it does while training (batchnorm on batch statistics; early in a
        run its running statistics lag behind and eval-mode samples all look alike, which is not
        collapse); its running statistics are restored afterwards, so training is unchanged. D is
        a fixed map here (eval mode): in train mode its batchnorm would rescale a near-constant
        generated batch back to unit variance and hide the collapse."""
        buffers = {k: v.clone() for k, v in G.named_buffers()}
        modes = G.training, D.training
        G.train()
        D.eval()
        try:
            fake = G(self.z).float()
            real = from_uint8(self.real)
            layer = D.feature_layers[-1]
            f_fake = D.features(fake, [layer])[layer].flatten(1)
            f_real = D.features(real, [layer])[layer].flatten(1)
            f_bank = D.features(from_uint8(self.bank), [layer])[layer].flatten(1)
        finally:
            for name, value in G.named_buffers():
                value.copy_(buffers[name])
            G.train(modes[0])
            D.train(modes[1])
        return {
            "div_d": round(pairwise_distance(f_fake) / max(pairwise_distance(f_real), 1e-12), 4),
            "div_pix": round(pairwise_distance(fake) / max(pairwise_distance(real), 1e-12), 4),
            "nn_d": round(distinct_neighbours(f_fake, f_bank) / max(distinct_neighbours(f_real, f_bank), 1e-12), 4),
        }


def collapse_signs(health: dict[str, float], mean_d_g_z: float, step: int, best_div: float = 0.0,
                   warmup: int = HEALTH_WARMUP) -> str | None:
    """A one-line description of the collapse signs in one measurement, or None when healthy.

    ``health``: HealthProbe.measure's dict; ``mean_d_g_z``: D(G(z)) averaged since the last
    check; ``best_div``: the highest ``div_d`` of the run so far. Low diversity counts only from
    step ``warmup`` on (a new generator draws low-contrast, alike images until it has learned),
    a fall to below DIVERSITY_DROP of the run's best diversity at any step."""
    signs = []
    div = health.get("div_d", 1.0)
    if mean_d_g_z < D_WINS:
        signs.append(f"mean D(G(z)) {mean_d_g_z:.4f} < {D_WINS} (D rejects every sample)")
    if step >= warmup and div < DIVERSITY_WARN:
        signs.append(f"sample diversity {div:.2f} of the real images' (< {DIVERSITY_WARN})")
    if step >= warmup and health.get("nn_d", 1.0) < NEIGHBOURS_WARN:
        signs.append(f"samples reach {health['nn_d']:.2f} of the distinct real neighbours real images reach "
                     f"(< {NEIGHBOURS_WARN}: a few layouts repeat)")
    elif best_div >= DIVERSITY_WARN and div < DIVERSITY_DROP * best_div:
        signs.append(f"sample diversity fell to {div:.2f} of the real images' from {best_div:.2f}")
    return "; ".join(signs) or None


def collapse_advice(run_dir: str, checkpoint: str | None) -> str:
    """What to do after a collapse warning: fork an earlier checkpoint with remedies."""
    source = checkpoint or f"{run_dir}/checkpoints/step-…"
    return (f"stop it and fork an earlier checkpoint with remedies: dcgan-viz train --fork-from {source} "
            f"--out NEW_RUN --augment translation,cutout,color --instance-noise 0.1 (docs/training.md)")


FRECHET_N = 1000  # generated and real images per epoch-end Fréchet distance


@dataclass
class FrechetTracker:
    """Fréchet distance in an evaluation helper's feature space, generated vs training images,
    at the end of each epoch (the trainer keeps the best epoch's checkpoint by it).

    ``features``: the evaluator's image -> (B, F) map; ``real``: (F,) mean and (F, F) covariance
    of FRECHET_N training images spread evenly over the set; ``z``: latents (QUALITY_SEED,
    0..FRECHET_N-1), the samples every shipped quality number uses."""

    features: object
    real_stats: tuple[torch.Tensor, torch.Tensor]
    z: torch.Tensor

    @classmethod
    def for_run(cls, evaluator: str, G: Generator, images: torch.Tensor | np.ndarray,
                device: torch.device) -> "FrechetTracker":
        from .evaluation import load_evaluator
        from .evaluation.frechet import feature_stats
        from .evaluation.quality import QUALITY_SEED

        model, _ = load_evaluator(evaluator, device=device)
        m = int(images.shape[0])
        idx = torch.linspace(0, m - 1, min(FRECHET_N, m)).round().long().unique()
        real = from_uint8(torch.as_tensor(np.asarray(images[idx.numpy()])).to(device))
        tracker = cls(features=model.features, real_stats=(torch.zeros(0), torch.zeros(0)),
                      z=latents(G.cfg, QUALITY_SEED, FRECHET_N, device=device))
        tracker.real_stats = feature_stats(tracker._features(real))
        return tracker

    @torch.no_grad()
    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.features(x[i:i + 250]).float().cpu() for i in range(0, len(x), 250)])

    @torch.no_grad()
    def measure(self, G: Generator) -> float:
        """Fréchet distance of G's samples (eval mode, as shipped samples are drawn) to the real images."""
        from .evaluation.frechet import feature_stats, frechet_distance_from_stats

        was = G.training
        G.eval()
        try:
            fake = torch.cat([G(self.z[i:i + 250]).float() for i in range(0, len(self.z), 250)])
        finally:
            G.train(was)
        return round(frechet_distance_from_stats(*feature_stats(self._features(fake)), *self.real_stats), 4)
