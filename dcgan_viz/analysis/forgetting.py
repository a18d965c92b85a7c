"""The whole "forget to draw a class" experiment (paper section 6.1, measured as GAN Dissection's
ACE): label fitting latents, fit the probe, rank units five ways (probe weight, GAN Dissection's
optimised ablation mask, greedy hard ablation, dissection IoU, random), measure removal.

One function shared by ``dcgan-viz forget``, the scripted figures and the dashboard, so there
is one implementation of the protocol. The removal measurement (the expensive part) is cached
on disk by weights hash, segmenter and parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..latents import latents
from . import ablation as A


@dataclass
class ForgetExperiment:
    """probe (fitted on boxes or segmenter labels), the optimised ablation mask, the greedy
    selection, dissection IoU per unit (C,), the five unit rankings {probe, optimized, greedy,
    dissection, random} each (C,), and the removal measurement."""

    probe: A.Probe
    probe_source: str
    optimized: A.OptimizedAblation
    greedy: A.GreedyAblation
    iou: np.ndarray
    rankings: dict[str, np.ndarray]
    removal: A.RemovalResult
    n_fit: int
    fit_seed: int


def forget_experiment(bundle, segmenter, classes: Sequence[str], class_name: str, layer: str,
                      counts: Sequence[int], n: int = 1000, n_fit: int = 500, seed: int = 0, fit_seed: int = 1,
                      box_entries: Any = None, segmenter_key: str = "",
                      cache_dir: str | Path | None = None, probe: A.Probe | None = None,
                      progress: Callable[[int, int], None] | None = None) -> ForgetExperiment:
    """Run the experiment on a loaded checkpoint: latents (fit_seed, 0..n_fit-1) are labelled by
    the segmenter (for dissection, and for the probe unless ``box_entries`` — the paper's drawn
    boxes, ``[{seed, index, boxes: [[x0, y0, x1, y1], ...]}, ...]`` — are given); removal is
    measured on latents (seed, 0..n-1), which never overlap the automatic fitting latents.
    ``probe``: an already fitted probe of ``layer`` (e.g. drawn in the dashboard) instead of fitting
    one. The optimised mask is fitted on the automatic-label latents; the greedy selection
    (``A.greedy_ablation``) picks ``A.greedy_plan`` units (10% of the layer) among the mask's top
    units on the first ``GREEDY_DEFAULTS["n_latents"]`` of them, its ranking continuing in the
    mask's order (both cached like the removal).
    ``progress(step, total)``: 0 before, 1 after fitting, then one step per measured ranking."""
    from ..cache import cache_key, cached

    G = bundle.G
    A.check_layer(G, layer)
    classes = list(classes)
    if class_name not in classes:
        raise ValueError(f"unknown class {class_name!r}; the segmenter's classes are {classes}")
    if n < 1 or n_fit < 1:
        raise ValueError("the numbers of evaluation and fitting latents must be positive")
    if seed == fit_seed and box_entries is None and probe is None:
        raise ValueError("the evaluation and fitting seeds must differ (no fitting on the evaluation latents)")
    n_units = G.layer_channels()[layer]
    counts = [int(c) for c in counts]
    if not counts or min(counts) < 1 or max(counts) > n_units:
        raise ValueError(f"unit counts must be in 1..{n_units} ({layer}'s units), got {counts}")
    if probe is not None and len(probe.weights) != n_units:
        raise ValueError(f"the probe has {len(probe.weights)} weights, {layer} has {n_units} units")
    size = bundle.config.image_size
    cid = classes.index(class_name)
    report = progress or (lambda step, total: None)
    total = 1 + 5  # step 1: labels, probe, optimised mask, greedy selection, dissection; then one per ranking
    report(0, total)

    z_fit = latents(bundle.config, fit_seed, n_fit, device=bundle.device)
    _, labels = A.generate_and_label(G, segmenter, z_fit)
    auto_masks = labels == cid
    if not bool(auto_masks.any()):  # dissection (and the automatic probe) need the class in some sample
        raise ValueError(f"the segmenter labels no {class_name!r} pixels in {n_fit} samples; nothing to probe")
    if probe is not None:
        source = "the given probe"
    elif box_entries is not None:
        keys, box_masks = A.masks_from_boxes(box_entries, size)
        z_box = torch.cat([latents(bundle.config, s, [i], device=bundle.device) for s, i in keys])
        probe = A.fit_window_probe(G, z_box, box_masks, layer, seed=0)
        source = f"boxes ({len(keys)} images)"
    else:
        probe = A.fit_window_probe(G, z_fit, auto_masks, layer, seed=0)
        source = f"segmenter labels ({n_fit} latents, seed {fit_seed})"
    iou = A.dissection_iou(G, z_fit, auto_masks, layer)
    opt_key = cache_key("ablation-mask", weights=bundle.key, segmenter=segmenter_key, classes=classes, cls=class_name,
                        layer=layer, n_fit=n_fit, fit_seed=fit_seed, params=A.OPTIMIZE_DEFAULTS)
    optimized = cached(cache_dir, opt_key, A.OptimizedAblation,
                       lambda: A.optimize_ablation(G, segmenter, z_fit, layer, cid, class_name))
    g = A.GREEDY_DEFAULTS
    n_greedy, pool = A.greedy_plan(n_units, g["budget"], g["pool_factor"])
    greedy_key = cache_key("greedy-ablation", mask=opt_key, params=g)
    greedy = cached(cache_dir, greedy_key, A.GreedyAblation,
                    lambda: A.greedy_ablation(G, segmenter, z_fit[: g["n_latents"]], layer, cid, class_name, n_greedy,
                                              optimized.units_by_alpha[:pool], g["keep_others"]))
    rankings = {"probe": probe.units_by_weight, "optimized": optimized.units_by_alpha,
                "greedy": greedy.ranking(optimized.units_by_alpha),
                "dissection": np.argsort(-iou, kind="stable"), "random": A.random_ranking(n_units, seed)}
    report(1, total)
    done = iter(range(2, total + 1))
    key = cache_key("removal", weights=bundle.key, segmenter=segmenter_key, classes=classes, cls=class_name,
                    layer=layer, rankings={k: v.tolist() for k, v in rankings.items()}, counts=counts, n=n, seed=seed)
    removal = cached(cache_dir, key, A.RemovalResult,
                     lambda: A.removal_curve(bundle, segmenter, class_name, layer, rankings, counts, n, seed, classes,
                                             on_ranking=lambda name: report(next(done), total)))
    return ForgetExperiment(probe, source, optimized, greedy, iou, rankings, removal, n_fit, fit_seed)


@torch.no_grad()
def with_without(G, z: torch.Tensor, layer: str, units: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, C, H, W) in [-1, 1] of latents z (B, nz) without and with ``units`` dropped."""
    before = G(z)
    with A.ablate(G, {layer: [int(u) for u in units]}):
        after = G(z)
    return before, after


@dataclass
class RemovalIllustration:
    """The latents a removal figure shows, chosen by a written rule (``illustrate_removal``):
    ``indices`` (n,) of latents (seed, i); ``scanned`` latents looked at, ``with_class`` of them
    with the class; images uint8 (n, H, W, C) ``before`` / ``after`` the units are dropped; bool
    (n, H, W) ``removed``: class pixels in the before image that are not class pixels after; float
    (n,) class pixel shares before / after."""

    seed: int
    indices: np.ndarray
    scanned: int
    with_class: int
    min_share: float
    before: np.ndarray
    after: np.ndarray
    removed: np.ndarray
    share_before: np.ndarray
    share_after: np.ndarray


@torch.no_grad()
def illustrate_removal(bundle, segmenter, class_id: int, layer: str, units: Sequence[int], seed: int = 0,
                       n: int = 8, scan: int = 64, min_share: float = 0.02) -> RemovalIllustration:
    """The rule a removal figure follows: among latents (seed, 0..scan-1), the first ``n`` in whose
    image the segmenter labels at least ``min_share`` of the pixels as the class (fewer when fewer
    qualify), shown before and after dropping ``units`` of ``layer``, with the removed class pixels."""
    from ..images import to_uint8

    z = latents(bundle.config, seed, scan, device=bundle.device)
    _, labels = A.generate_and_label(bundle.G, segmenter, z)
    share = (labels == class_id).float().mean((1, 2)).numpy()
    chosen = np.flatnonzero(share >= min_share)
    idx = chosen[:n]
    if len(idx) == 0:
        raise ValueError(f"none of latents ({seed}, 0..{scan - 1}) shows the class (>= {min_share:.0%} of pixels)")
    with A.ablate(bundle.G, {layer: [int(u) for u in units]}):
        after, after_labels = A.generate_and_label(bundle.G, segmenter, z[idx])
    before_mask = (labels[idx] == class_id).numpy()
    after_mask = (after_labels == class_id).numpy()
    before = to_uint8(bundle.G(z[idx])).numpy()
    return RemovalIllustration(seed, idx, scan, int(len(chosen)), min_share, before, to_uint8(after).numpy(),
                               before_mask & ~after_mask, share[idx], after_mask.mean((1, 2)))
