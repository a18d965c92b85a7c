"""Quality measures: each has a case it must flag and one it must not."""

from __future__ import annotations

import numpy as np
import torch

from dcgan_viz.evaluation.quality import attribute_distances, attribute_distribution, diversity, window_fraction


def test_diversity_flags_a_collapsed_set() -> None:
    g = torch.Generator().manual_seed(0)
    varied = torch.randint(0, 256, (64, 8, 8, 3), dtype=torch.uint8, generator=g)
    collapsed = varied[:1].repeat(64, 1, 1, 1)
    assert diversity(varied)["pairwise_rms"] > 0.5
    assert diversity(collapsed)["pairwise_rms"] == 0.0


def test_window_fraction_counts_images_with_enough_window_pixels() -> None:
    masks = np.zeros((4, 10, 10), dtype=np.uint8)
    masks[0, :2, :2] = 3  # 4% of pixels
    masks[1, 0, 0] = 3  # 1%
    assert window_fraction(masks, window_class=3, min_fraction=0.02) == 0.25
    assert window_fraction(masks, window_class=3, min_fraction=0.005) == 0.5


def test_attribute_distances_zero_for_same_distribution_and_large_for_shifted() -> None:
    rng = np.random.default_rng(0)
    kinds = {"smile": "continuous", "glasses": "categorical:3"}
    a = np.stack([rng.random(4000), rng.integers(0, 3, 4000)], 1)
    b = np.stack([rng.random(4000), rng.integers(0, 3, 4000)], 1)
    shifted = np.stack([rng.random(4000) * 0.2, np.zeros(4000)], 1)
    same = attribute_distances(a, b, kinds)
    far = attribute_distances(a, shifted, kinds)
    assert same["smile"] < 0.03 and same["glasses"] < 0.03
    assert far["smile"] > 0.3 and far["glasses"] > 0.6
    dist = attribute_distribution(a, kinds)
    assert abs(sum(dist["glasses"]["freq"]) - 1) < 1e-3 and abs(dist["smile"]["mean"] - 0.5) < 0.03
