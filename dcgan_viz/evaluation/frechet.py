"""Fréchet distance between two feature distributions, each summarised as a Gaussian.

    d^2 = ||mu_a - mu_b||^2 + tr(A) + tr(B) - 2 tr( sqrt( sqrt(A) B sqrt(A) ) )

with A, B the feature covariances. The symmetric form only takes square roots of symmetric
positive semi-definite matrices, done with ``torch.linalg.eigh`` (eigenvalues clipped at 0),
so it is stable for singular covariances (fewer samples than features) and needs no scipy.
Everything runs in float64 on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def _as_features(feats: ArrayLike, name: str) -> torch.Tensor:
    x = torch.as_tensor(feats).detach().to("cpu", torch.float64)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be (N, F) with N >= 2, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def feature_stats(feats: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), both float64 on the CPU."""
    x = _as_features(feats, "feats")
    mean = x.mean(dim=0)
    centred = x - mean
    cov = centred.T @ centred / (x.shape[0] - 1)
    return mean, cov


def _sqrt_psd(mat: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative rounding noise -> 0)."""
    vals, vecs = torch.linalg.eigh((mat + mat.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance_from_stats(mean_a: ArrayLike, cov_a: ArrayLike, mean_b: ArrayLike, cov_b: ArrayLike) -> float:
    """Fréchet distance between N(mean_a, cov_a) and N(mean_b, cov_b): means (F,), covariances (F, F)."""
    mu_a, mu_b = (torch.as_tensor(m).to("cpu", torch.float64) for m in (mean_a, mean_b))
    a, b = (torch.as_tensor(c).to("cpu", torch.float64) for c in (cov_a, cov_b))
    f = mu_a.shape[0]
    if mu_a.shape != (f,) or mu_b.shape != (f,) or a.shape != (f, f) or b.shape != (f, f):
        raise ValueError(
            f"stats do not match: means {tuple(mu_a.shape)}, {tuple(mu_b.shape)}; "
            f"covs {tuple(a.shape)}, {tuple(b.shape)}"
        )
    sqrt_a = _sqrt_psd(a)
    cross = sqrt_a @ b @ sqrt_a
    cross_eigs = torch.linalg.eigvalsh((cross + cross.T) / 2).clamp_min(0)
    dist = (mu_a - mu_b).square().sum() + a.trace() + b.trace() - 2 * cross_eigs.sqrt().sum()
    return max(float(dist), 0.0)


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Fréchet distance between the Gaussians fitted to features (N, F) and (M, F)."""
    a = _as_features(feats_a, "feats_a")
    b = _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    return frechet_distance_from_stats(*feature_stats(a), *feature_stats(b))
