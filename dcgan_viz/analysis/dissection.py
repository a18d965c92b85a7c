"""Network Dissection (Bau et al. 2017) of a discriminator against ground-truth class masks.

For each unit k of each layer: the threshold T_k with P(a_k > T_k) = ``quantile`` over every
position of every probe image (exact, from a streaming top-m). The default is the top 1%, as in
Bau et al. 2020 (PNAS; their dissect code thresholds at the 0.99 quantile); the 2017 paper used
0.005, which on 64 px scenes caps a class covering a fraction f of the pixels at
IoU = min(f, q) / max(f, q) (0.056 for beds, 0.094 for windows on the rooms data). Then the unit's map,
bilinearly upsampled to the mask resolution and thresholded at T_k, is compared with each
class mask over the whole probe set: IoU_{k,c} = sum |M_k & L_c| / sum |M_k | L_c|. A unit is a
detector of its best class when that IoU exceeds ``iou_threshold`` (0.04, as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import floor
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..images import from_uint8

if TYPE_CHECKING:
    from ..checkpoint import Bundle

QUANTILE = 0.01  # top 1% of each unit's activations (Bau et al. 2020); NetDissect 2017: 0.005
IOU_THRESHOLD = 0.04
_CHUNK_FLOATS = 1 << 24  # upsampled activations held at once (64 MiB)


@dataclass
class Dissection:
    """IoU of every unit with every class. ``iou``: {layer: float32 (K, C)}; ``thresholds``:
    {layer: float32 (K,)}; ``class_names`` (C,), over ``n_images`` probe images."""

    label: str
    layers: list[str]
    class_names: list[str]
    iou: dict[str, np.ndarray]
    thresholds: dict[str, np.ndarray]
    n_images: int
    quantile: float
    iou_threshold: float

    def best(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """Per unit of ``layer``: (best class id (K,), its IoU (K,))."""
        iou = np.asarray(self.iou[layer])
        return iou.argmax(axis=1), iou.max(axis=1)

    def detectors(self, threshold: float | None = None) -> dict[str, dict[str, int]]:
        """{layer: {class: number of units whose best class it is, with IoU > threshold}}
        (default threshold: ``iou_threshold``)."""
        threshold = self.iou_threshold if threshold is None else threshold
        out = {}
        for layer in self.layers:
            cls, iou = self.best(layer)
            hit = cls[iou > threshold]
            out[layer] = {name: int((hit == c).sum()) for c, name in enumerate(self.class_names)}
        return out


def _batches(images: np.ndarray, batch_size: int, device: torch.device) -> Iterator[tuple[int, torch.Tensor]]:
    for i in range(0, len(images), batch_size):
        yield i, from_uint8(torch.as_tensor(np.ascontiguousarray(images[i : i + batch_size]), device=device))


@torch.no_grad()
def unit_thresholds(net: nn.Module, images: np.ndarray, layers: list[str], quantile: float = QUANTILE,
                    batch_size: int = 100) -> dict[str, torch.Tensor]:
    """{layer: (K,)} T_k such that a fraction ``quantile`` of all positions of all images has a > T_k
    (the m-th largest value, m = floor(quantile * N * h * w) + 1: exact, kept as a running top-m)."""
    device = next(net.parameters()).device
    top: dict[str, torch.Tensor] = {}
    m: dict[str, int] = {}
    for _, x in _batches(images, batch_size, device):
        for layer, fmap in net.features(x, layers).items():
            if layer not in m:
                m[layer] = floor(quantile * len(images) * fmap.shape[2] * fmap.shape[3]) + 1
            values = fmap.transpose(0, 1).flatten(1)  # (K, B*h*w)
            if layer in top:
                values = torch.cat([top[layer], values], dim=1)
            top[layer] = values.topk(min(m[layer], values.shape[1]), dim=1).values
    return {layer: t[:, -1] for layer, t in top.items()}


def _overlaps(fmap: torch.Tensor, threshold: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fmap (B, K, h, w), threshold (K,), onehot (B*H*W, C) -> (intersections (K, C), active pixels (K,))."""
    b, k = fmap.shape[:2]
    size = onehot.shape[0] // b
    side = int(round(size**0.5))
    step = max(1, _CHUNK_FLOATS // (b * size))
    inter, active = [], []
    for s in range(0, k, step):
        up = F.interpolate(fmap[:, s : s + step], size=(side, side), mode="bilinear", align_corners=False)
        on = (up > threshold[s : s + step, None, None]).to(onehot.dtype)  # (B, k', H, W)
        on = on.transpose(0, 1).reshape(on.shape[1], -1)  # (k', B*H*W)
        inter.append(on @ onehot)
        active.append(on.sum(dim=1))
    return torch.cat(inter), torch.cat(active)


@torch.no_grad()
def dissect(net: nn.Module, images: np.ndarray, masks: np.ndarray, class_names: list[str] | tuple[str, ...],
            layers: list[str] | None = None, quantile: float = QUANTILE, iou_threshold: float = IOU_THRESHOLD,
            label: str = "", batch_size: int = 100) -> Dissection:
    """IoU of every unit of ``layers`` (default: ``net.feature_layers``) with every class.

    images uint8 (N, H, W, C); masks uint8 (N, H, W) of class ids into ``class_names``. ``net``
    needs ``features(x, layers) -> {layer: (B, K, h, w)}`` and should be in eval mode.
    """
    if masks.shape != images.shape[:3]:
        raise ValueError(f"masks {masks.shape} do not match images {images.shape}")
    layers = list(layers or net.feature_layers)
    thresholds = unit_thresholds(net, images, layers, quantile, batch_size)
    n_cls = len(class_names)
    device = next(net.parameters()).device
    inter = {layer: torch.zeros(len(t), n_cls, dtype=torch.float64) for layer, t in thresholds.items()}
    active = {layer: torch.zeros(len(t), dtype=torch.float64) for layer, t in thresholds.items()}
    class_pixels = torch.zeros(n_cls, dtype=torch.float64)
    for i, x in _batches(images, batch_size, device):
        labels = torch.as_tensor(np.ascontiguousarray(masks[i : i + len(x)]), device=device).long().flatten()
        onehot = F.one_hot(labels, n_cls).float()  # (B*H*W, C)
        class_pixels += onehot.sum(dim=0).double().cpu()
        for layer, fmap in net.features(x, layers).items():
            got, on = _overlaps(fmap, thresholds[layer], onehot)
            inter[layer] += got.double().cpu()
            active[layer] += on.double().cpu()
    iou = {layer: (inter[layer] / (active[layer][:, None] + class_pixels[None] - inter[layer]).clamp(min=1))
           .float().numpy() for layer in layers}
    return Dissection(label=label, layers=layers, class_names=list(class_names), iou=iou,
                      thresholds={layer: t.float().cpu().numpy() for layer, t in thresholds.items()},
                      n_images=len(images), quantile=quantile, iou_threshold=iou_threshold)


def detector_table(results: list[Dissection]) -> list[dict]:
    """Rows {net, layer, units, detectors, mean_best_iou, <class>: count...} for each result and
    layer; ``mean_best_iou`` (each unit's best IoU, averaged) is a threshold-free companion."""
    rows = []
    for res in results:
        for layer, counts in res.detectors().items():
            rows.append({"net": res.label, "layer": layer, "units": int(len(res.iou[layer])),
                         "detectors": int(sum(counts.values())),
                         "mean_best_iou": round(float(res.best(layer)[1].mean()), 4), **counts})
    return rows


def detector_markdown(results: list[Dissection]) -> str:
    """The detector table as Markdown: one row per (net, layer), one column per class."""
    rows = detector_table(results)
    names = results[0].class_names
    head = ["net", "layer", "units", "detectors", "mean_best_iou", *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(row[h]) for h in head) + " |" for row in rows]
    r = results[0]
    note = (f"\nDetectors: units whose best class has IoU > {r.iou_threshold} (Network Dissection; "
            f"threshold P(a > T_k) = {r.quantile}, {r.n_images} images).\n")
    return "\n".join(lines) + "\n" + note


def dissect_checkpoint(bundle: "Bundle", count: int = 2000, random_seed: int = 0,
                       cache_dir: str | Path | None = None, batch_size: int = 100,
                       quantile: float = QUANTILE) -> list[Dissection]:
    """[trained D, random-init D] dissected on the first ``count`` images of the checkpoint's
    training data (which must have masks) at activation ``quantile``; cached by weights hash + parameters."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    from ..cache import cache_key, cached
    from .filters import probe_set, random_discriminator

    spec = bundle.data
    nets = {"trained": bundle.D, "random": random_discriminator(bundle.config, random_seed).to(bundle.device)}
    probe = None

    def compute(net: nn.Module, label: str) -> Dissection:
        nonlocal probe
        if probe is None:
            probe = probe_set(spec, count)
        if probe.masks is None:
            raise ValueError(f"data {spec.source!r} has no class masks: network dissection needs masks (e.g. rooms)")
        return dissect(net, probe.images, probe.masks, probe.mask_names, quantile=quantile, label=label,
                       batch_size=batch_size)

    out = []
    for label, net in nets.items():
        key = cache_key("dissection", weights=bundle.key, net=label, seed=random_seed if label == "random" else None,
                        data=spec.to_dict(), count=count, quantile=quantile, iou=IOU_THRESHOLD,
                        layers=list(bundle.D.feature_layers))
        out.append(cached(cache_dir, key, Dissection, lambda net=net, label=label: compute(net, label)))
    return out
