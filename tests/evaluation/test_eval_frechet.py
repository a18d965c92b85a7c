import numpy as np
import pytest
import torch

from dcgan_viz.evaluation import feature_stats, frechet_distance, frechet_distance_from_stats


def _gaussian(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(cov)
    return mean + torch.randn(n, len(mean), generator=g, dtype=torch.float64) @ chol.T


def _rotation(f: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(f, f, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def _spd(f: int, seed: int) -> torch.Tensor:
    a = torch.randn(f, f, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / f + 0.1 * torch.eye(f, dtype=torch.float64)


def test_identical_features_give_zero():
    x = torch.randn(100, 6, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_two_samples_of_one_gaussian_are_close():
    mean, cov = torch.zeros(4, dtype=torch.float64), _spd(4, 1)
    same = frechet_distance(_gaussian(20000, mean, cov, 2), _gaussian(20000, mean, cov, 3))
    shifted = frechet_distance(_gaussian(20000, mean, cov, 2), _gaussian(20000, mean + 0.5, cov, 3))
    assert same < 0.01
    assert shifted == pytest.approx(4 * 0.25, rel=0.05)


def test_closed_form_diagonal():
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    s1, s2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = float((mu1 - mu2).square().sum() + (s1.sqrt() - s2.sqrt()).square().sum())
    assert frechet_distance_from_stats(mu1, torch.diag(s1), mu2, torch.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_closed_form_commuting_covariances():
    """A = Q diag(a) Q^T and B = Q diag(b) Q^T share eigenvectors: d = |mu|^2 + sum (sqrt a - sqrt b)^2."""
    q = _rotation(5, 0)
    a = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.1], dtype=torch.float64)
    b = torch.tensor([2.0, 1.0, 0.3, 3.0, 5.0], dtype=torch.float64)
    mu = torch.arange(5, dtype=torch.float64)
    dist = frechet_distance_from_stats(mu, q @ torch.diag(a) @ q.T, torch.zeros(5), q @ torch.diag(b) @ q.T)
    assert dist == pytest.approx(float(mu.square().sum() + (a.sqrt() - b.sqrt()).square().sum()), rel=1e-9)


def test_general_covariances_match_the_product_form():
    """tr sqrt(sqrtA B sqrtA) equals the sum of square roots of the (real, non-negative) eigenvalues of A B."""
    a, b = _spd(6, 1), _spd(6, 2)
    mu1, mu2 = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    cross = torch.linalg.eigvals(a @ b).real.clamp_min(0).sqrt().sum()
    expected = float((mu1 - mu2).square().sum() + a.trace() + b.trace() - 2 * cross)
    assert frechet_distance_from_stats(mu1, a, mu2, b) == pytest.approx(expected, rel=1e-9)


def test_symmetric_and_sample_estimate_matches_closed_form():
    mean_a, mean_b = torch.zeros(3, dtype=torch.float64), torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    cov_a, cov_b = _spd(3, 4), _spd(3, 5)
    xa, xb = _gaussian(50000, mean_a, cov_a, 6), _gaussian(40000, mean_b, cov_b, 7)
    d_ab, d_ba = frechet_distance(xa, xb), frechet_distance(xb, xa)
    assert d_ab == pytest.approx(d_ba, rel=1e-10)
    assert d_ab == pytest.approx(frechet_distance_from_stats(mean_a, cov_a, mean_b, cov_b), rel=0.05)


def test_feature_stats_match_numpy_and_accept_numpy():
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    mean, cov = feature_stats(x)
    assert mean.dtype == torch.float64 and cov.shape == (4, 4)
    assert np.allclose(mean.numpy(), x.astype(np.float64).mean(0))
    assert np.allclose(cov.numpy(), np.cov(x.astype(np.float64), rowvar=False))
    assert frechet_distance(x, x + 1) == pytest.approx(4.0, rel=1e-6)


def test_singular_covariance_is_finite():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(10, 32, generator=g), torch.randn(12, 32, generator=g) + 0.2
    d = frechet_distance(a, b)
    assert np.isfinite(d) and d > 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(torch.randn(5, 3), torch.randn(5, 4))
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(torch.randn(1, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        frechet_distance(torch.randn(5), torch.randn(5))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(torch.full((3, 2), float("nan")), torch.randn(5, 2))
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance_from_stats(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3))
