"""Forgetting from drawn boxes alone, for models with no segmenter (imported or wrapped models).

The paper's protocol (section 6.1) fits a logistic-regression probe on a layer's activations:
positives inside boxes drawn on generated samples, negatives elsewhere. Without a segmenter the
class cannot be counted after the edit, so this measures what can be measured: for the top-k probe
units and for k random units (the control) dropped together, the mean absolute pixel change
inside the boxes and outside them, on the boxed samples. A probe that found the boxed content
changes the inside much more than the outside, and more than random units do.

The boxed samples are also the probe's training samples (as in the paper, which drew boxes on 150
samples); the numbers are in-sample and say so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..latents import latents
from . import ablation as A


@dataclass
class BoxForgetResult:
    """Per ranking ("probe", "random") and unit count: mean |pixel change| inside / outside the boxes."""

    layer: str
    n_units: int
    n_images: int
    counts: list[int]
    inside: dict[str, list[float]]
    outside: dict[str, list[float]]
    probe_accuracy: float
    units_by_weight: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [f"Forget from boxes ({self.n_images} boxed samples, layer {self.layer}, {self.n_units} units; "
                 f"probe training accuracy {self.probe_accuracy:.3f}; in-sample, no segmenter):", "",
                 "| units dropped | probe: change inside | probe: outside | random: inside | random: outside |",
                 "|---|---|---|---|---|"]
        for i, k in enumerate(self.counts):
            lines.append(f"| {k} | {self.inside['probe'][i]:.4f} | {self.outside['probe'][i]:.4f} | "
                         f"{self.inside['random'][i]:.4f} | {self.outside['random'][i]:.4f} |")
        return "\n".join(lines) + "\n"


@torch.no_grad()
def box_forget(bundle, box_entries: Any, layer: str, counts: Sequence[int], seed: int = 0) -> tuple[BoxForgetResult, A.Probe]:
    """Fit the probe on the boxes, drop the top-k probe units / k random units, measure (see module doc)."""
    G = bundle.G
    A.check_layer(G, layer)
    n_units = G.layer_channels()[layer]
    counts = [int(c) for c in counts]
    if not counts or min(counts) < 1 or max(counts) > n_units:
        raise ValueError(f"unit counts must be in 1..{n_units} ({layer}'s units), got {counts}")
    keys, masks = A.masks_from_boxes(box_entries, bundle.config.image_size)
    z = torch.cat([latents(bundle.config, s, [i], device=bundle.device) for s, i in keys])
    with torch.enable_grad():
        probe = A.fit_window_probe(G, z, masks, layer, seed=0)
    inside_mask = torch.as_tensor(masks)[:, None].expand(-1, bundle.config.nc, -1, -1)
    before = G(z).cpu()
    rankings = {"probe": probe.units_by_weight, "random": A.random_ranking(n_units, seed)}
    inside: dict[str, list[float]] = {name: [] for name in rankings}
    outside: dict[str, list[float]] = {name: [] for name in rankings}
    for name, ranking in rankings.items():
        for k in counts:
            with A.ablate(G, {layer: [int(u) for u in ranking[:k]]}):
                after = G(z).cpu()
            diff = (after - before).abs()
            inside[name].append(float(diff[inside_mask].mean()))
            outside[name].append(float(diff[~inside_mask].mean()) if bool((~inside_mask).any()) else float("nan"))
    result = BoxForgetResult(layer=layer, n_units=n_units, n_images=len(keys), counts=counts, inside=inside,
                             outside=outside, probe_accuracy=float(probe.accuracy),
                             units_by_weight=[int(u) for u in np.asarray(probe.units_by_weight)])
    return result, probe
