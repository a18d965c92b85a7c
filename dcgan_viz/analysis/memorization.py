"""Does a DCGAN copy its training set? Nearest-neighbour distances, data-copying and latent recovery.

* Nearest-neighbour ratio: median distance generated -> nearest training image over the same for
  held-out images (< 1: samples sit closer to the training set than fresh data does).
  ``near_copy_fraction``: share of samples closer to the training set than the 1 % quantile of
  held-out images (about 0.01 for a model that does not copy).
* Data-copying test C_T (Meehan, Chaudhuri & Dasgupta 2020): k-means cells on the training set;
  per cell the Mann-Whitney U z-score of generated vs held-out distances to the training set;
  C_T = average of cell z-scores over cells with enough samples, weighted by their share of
  held-out images. C_T well below 0 (e.g. < -3) = copying; near 0 = none; > 0 = underfitting.
* Latent recovery (Webster et al. 2019): optimise z to reconstruct training and held-out images;
  a two-sample KS test on the two error distributions (train errors lower = memorised).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from dcgan_viz.analysis.nearest import NearestIndex, classifier_features, d_features, open_index, pixel_features
from dcgan_viz.checkpoint import Bundle
from dcgan_viz.data.spec import DataSpec

NEAR_COPY_QUANTILE = 0.01
COPYING_THRESHOLD = -3.0
FeatureFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class CopyingResult:
    """C_T and its cells: per-cell z-scores (K,) (NaN where skipped) and counts (K,) of each set."""

    ct: float
    cell_z: np.ndarray
    train_counts: np.ndarray
    test_counts: np.ndarray
    gen_counts: np.ndarray
    used: np.ndarray


@dataclass
class SpaceResult:
    """NN statistics in one feature space. Arrays: gen_* (G,), test_distances (T,)."""

    space: str
    gen_distances: np.ndarray
    gen_neighbours: np.ndarray
    test_distances: np.ndarray
    ratio: float
    near_copy_fraction: float
    copying: CopyingResult


@dataclass
class LatentRecovery:
    """Per-image mean squared reconstruction errors (n,) of train and held-out images, KS test."""

    train_errors: np.ndarray
    test_errors: np.ndarray
    ks_statistic: float
    ks_pvalue: float
    train_lower: bool


@dataclass
class ClosestPairs:
    """The ``len(distances)`` closest generated/train pairs in pixel space, closest first."""

    gen_indices: np.ndarray
    train_indices: np.ndarray
    distances: np.ndarray


@dataclass
class MemorizationReport:
    """All memorization statistics of one generator.

    ``copying``: the pixel-space C_T (the cell-weighted average) < COPYING_THRESHOLD.
    ``local_copying``: some used pixel-space cell has z < COPYING_THRESHOLD. A model that copies
    a few training images and underfits elsewhere can have a positive C_T (the cells cancel,
    as Meehan et al. note), so the cells are reported too; ``copying_sample_share`` is the
    fraction of generated samples that fall in those cells.
    """

    spaces: dict[str, SpaceResult]
    closest: ClosestPairs
    latent: LatentRecovery | None
    copying: bool
    counts: dict[str, int]
    local_copying: bool = False
    copying_sample_share: float = 0.0

    @property
    def verdict(self) -> str:
        if self.copying:
            return "COPYING"
        if self.local_copying:
            return f"LOCAL COPYING ({self.copying_sample_share:.1%} of samples in copying cells)"
        return "no copying"

    def summary(self) -> dict:
        """Plain numbers for JSON/Markdown (no per-sample arrays)."""
        out: dict = {"copying": self.copying, "local_copying": self.local_copying,
                     "copying_sample_share": self.copying_sample_share, "verdict": self.verdict,
                     "counts": dict(self.counts), "spaces": {}}
        for name, s in self.spaces.items():
            out["spaces"][name] = {
                "ct": s.copying.ct, "cells_used": int(s.copying.used.sum()), "cells": len(s.copying.used),
                "min_cell_z": float(np.nanmin(s.copying.cell_z)) if s.copying.used.any() else float("nan"),
                "cells_copying": int((s.copying.cell_z[s.copying.used] < COPYING_THRESHOLD).sum()),
                "nn_ratio": s.ratio, "near_copy_fraction": s.near_copy_fraction,
                "median_gen_to_train": float(np.median(s.gen_distances)),
                "median_test_to_train": float(np.median(s.test_distances)),
            }
        if self.latent is not None:
            out["latent_recovery"] = {
                "ks_statistic": self.latent.ks_statistic, "ks_pvalue": self.latent.ks_pvalue,
                "train_lower": self.latent.train_lower, "n": len(self.latent.train_errors),
                "mean_train_error": float(self.latent.train_errors.mean()),
                "mean_test_error": float(self.latent.test_errors.mean()),
            }
        return out


def _mann_whitney_z(gen: np.ndarray, test: np.ndarray) -> float:
    """z-score of U = #(gen > test) (+ half ties): negative when generated distances are smaller."""
    from scipy.stats import rankdata

    m, n = len(gen), len(test)
    ranks = rankdata(np.concatenate([gen, test]))
    u = ranks[:m].sum() - m * (m + 1) / 2.0
    return float((u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0))


def copying_test(train: np.ndarray, test: np.ndarray, gen: np.ndarray, test_distances: np.ndarray,
                 gen_distances: np.ndarray, n_cells: int = 20, min_count: int = 20, seed: int = 0) -> CopyingResult:
    """Meehan et al.'s C_T from features train (N, d), test (T, d), gen (G, d) and their NN distances to train."""
    from sklearn.cluster import KMeans

    k = max(1, min(n_cells, len(train) // 2))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(train)
    cells = [np.bincount(km.predict(x), minlength=k) for x in (train, test, gen)]
    test_cell, gen_cell = km.predict(test), km.predict(gen)
    z = np.full(k, np.nan)
    used = (cells[1] >= min_count) & (cells[2] >= min_count)
    for c in np.flatnonzero(used):
        z[c] = _mann_whitney_z(gen_distances[gen_cell == c], test_distances[test_cell == c])
    weights = cells[1][used] / cells[1][used].sum() if used.any() else np.zeros(0)
    ct = float((weights * z[used]).sum()) if used.any() else float("nan")
    return CopyingResult(ct, z, cells[0], cells[1], cells[2], used)


def space_statistics(space: str, train: np.ndarray, test: np.ndarray, gen: np.ndarray, backend: str = "auto",
                     n_cells: int = 20, min_count: int = 20, seed: int = 0,
                     index: NearestIndex | None = None) -> SpaceResult:
    """NN ratio, near-copy fraction and C_T from features train (N, d), test (T, d), gen (G, d)."""
    index = index or NearestIndex(train, backend)
    g, t = index.search(gen, 1), index.search(test, 1)
    gd, td = g.distances[:, 0], t.distances[:, 0]
    ratio = float(np.median(gd) / max(float(np.median(td)), 1e-12))
    near = float((gd < np.quantile(td, NEAR_COPY_QUANTILE)).mean())
    ct = copying_test(train, test, gen, td, gd, n_cells, min_count, seed)
    return SpaceResult(space, gd, g.indices[:, 0], td, ratio, near, ct)


def closest_pairs(result: SpaceResult, top: int = 32) -> ClosestPairs:
    """The ``top`` generated samples nearest to a training image (one pair per sample), closest first."""
    order = np.argsort(result.gen_distances, kind="stable")[:top]
    return ClosestPairs(order.astype(np.int64), result.gen_neighbours[order], result.gen_distances[order])


def latent_recovery(G: torch.nn.Module, train_images: np.ndarray, test_images: np.ndarray, z_dist: str = "uniform",
                    steps: int = 200, lr: float = 0.05, seed: int = 0) -> LatentRecovery:
    """Optimise z (Adam, pixel MSE) to reconstruct uint8 (n, H, W, C) train and held-out images; KS test."""
    from scipy.stats import ks_2samp

    from .inversion import invert

    errors = invert(G, np.concatenate([train_images, test_images]), z_dist, steps, lr, restarts=1, seed=seed).errors
    tr, te = errors[: len(train_images)], errors[len(train_images) :]
    ks = ks_2samp(tr, te)
    return LatentRecovery(tr, te, float(ks.statistic), float(ks.pvalue), bool(np.median(tr) < np.median(te)))


def memorization_statistics(train: np.ndarray, test: np.ndarray, gen: np.ndarray, spaces: Mapping[str, FeatureFn],
                            backend: str = "auto", n_cells: int = 20, min_count: int = 20, seed: int = 0,
                            top: int = 32, indexes: Mapping[str, NearestIndex] | None = None) -> MemorizationReport:
    """Statistics for uint8 image sets train (N, H, W, C), held-out test (T, ...), generated gen (G, ...).

    ``spaces``: name -> feature function (uint8 images -> float32 (n, d)); must include "pixel".
    ``indexes``: prebuilt (cached) indexes over the training features, by space name.
    """
    if "pixel" not in spaces:
        raise ValueError("memorization needs the pixel space (closest pairs and the copying verdict use it)")
    results = {}
    for name, fn in spaces.items():
        index = (indexes or {}).get(name)
        train_f = index.base if index is not None else fn(train)
        results[name] = space_statistics(name, train_f, fn(test), fn(gen), backend, n_cells, min_count, seed, index)
    pixel = results["pixel"]
    cells = pixel.copying.used & (np.nan_to_num(pixel.copying.cell_z, nan=0.0) < COPYING_THRESHOLD)
    return MemorizationReport(
        spaces=results, closest=closest_pairs(pixel, top), latent=None,
        copying=bool(pixel.copying.ct < COPYING_THRESHOLD),
        counts={"train": len(train), "test": len(test), "generated": len(gen)},
        local_copying=bool(cells.any()),
        copying_sample_share=float(pixel.copying.gen_counts[cells].sum() / max(pixel.copying.gen_counts.sum(), 1)),
    )


def held_out_spec(spec: DataSpec, n_test: int) -> DataSpec:
    """The held-out split of a training DataSpec with up to ``n_test`` images.

    A prepared cache's is the held-out split prepare stored with it (``prepared:DIR/test``); a
    DataError (one line) says what to do when it has none (e.g. a cache from an older prepare).
    """
    if spec.source == "prepared":
        from dcgan_viz.data.prepare import held_out_dir

        if spec.path is None:
            raise ValueError("prepared data spec without a path has no held-out split")
        return DataSpec(source="prepared", path=str(held_out_dir(spec.path)), size=spec.size, channels=spec.channels,
                        split="test", count=n_test)
    if spec.source in ("rooms", "faces", "random"):
        return replace(spec.with_split("test"), test_count=n_test, content_hash=None)
    return replace(spec.with_split("test"), count=n_test, content_hash=None)


def _subset(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` random rows of uint8 (N, H, W, C) images, in index order."""
    return np.asarray(images[np.sort(rng.choice(len(images), min(n, len(images)), replace=False))])


def _spaces(bundle: Bundle, classifier: torch.nn.Module | None, pixel_size: int) -> dict[str, FeatureFn]:
    spaces: dict[str, FeatureFn] = {"pixel": lambda x: pixel_features(x, pixel_size)}
    if bundle.D is not None:  # a generator imported or wrapped without its discriminator has no D space
        spaces["d"] = lambda x: d_features(bundle.D, x)
    if classifier is not None:
        spaces["classifier"] = lambda x: classifier_features(classifier, x)
    return spaces


def measure_checkpoint(bundle: Bundle, n: int = 10000, seed: int = 0, n_test: int = 10000,
                       classifier: torch.nn.Module | None = None, classifier_key: str = "", backend: str = "auto",
                       cache_dir: str | Path | None = None, n_cells: int = 20, min_count: int = 20,
                       recovery_n: int = 64, recovery_steps: int = 200, pixel_size: int = 16,
                       top: int = 32, train_limit: int | None = None) -> tuple[MemorizationReport, np.ndarray, np.ndarray]:
    """Memorization statistics of a loaded checkpoint (Bundle) on ``n`` samples (latents (seed, 0..n-1)).

    Returns (report, generated uint8 (n, H, W, C), training images uint8 (N, H, W, C)). Training
    features (and so the NN indexes) are cached in ``cache_dir``; ``recovery_n`` = 0 skips latent recovery.
    ``train_limit``: compare with only the first N training images (quick runs; the statistics then
    describe that subset, not the whole training set).
    """
    from dcgan_viz.data.loading import load_imageset
    from dcgan_viz.sampling import generate

    spec = bundle.data
    if train_limit is not None and (spec.count is None or train_limit < spec.count):
        spec = DataSpec.from_dict(spec.to_dict() | {"count": int(train_limit), "content_hash": None})
    train = load_imageset(spec)
    test = load_imageset(held_out_spec(bundle.data, n_test))
    spaces = _spaces(bundle, classifier, pixel_size)
    keys = {"pixel": f"px{pixel_size}", "d": bundle.key, "classifier": classifier_key}
    indexes = {name: open_index(cache_dir, f"memo-train-{name}", lambda fn=fn: fn(train.images), backend,
                                data=train.spec.content_hash, model=keys[name])
               for name, fn in spaces.items()}
    gen = generate(bundle, seed, n).numpy()
    report = memorization_statistics(train.images, test.images, gen, spaces, backend, n_cells, min_count, seed, top,
                                     indexes)
    if recovery_n > 0:
        rng = np.random.default_rng(seed)
        latent = latent_recovery(bundle.G, _subset(train.images, recovery_n, rng), _subset(test.images, recovery_n, rng),
                                 bundle.config.z_dist, recovery_steps, seed=seed)
        report = replace(report, latent=latent)
    return report, gen, np.asarray(train.images)
