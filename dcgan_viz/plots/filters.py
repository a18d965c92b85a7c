"""Figures of filter analyses: Fig. 5-style grids (trained vs random D), receptive-field patch
grids, generator feature maps, and the dissection detector chart. Nothing here computes."""

from __future__ import annotations

import numpy as np

from ..analysis.dissection import Dissection, detector_table
from ..analysis.filters import FilterResponses
from ..images import grid
from .style import BACKGROUND, caption_strip, labelled_grid, plotly_style, side_by_side

NET_NAMES = {"trained": "trained D", "random": "random-init D"}


def guided_to_uint8(maps: np.ndarray) -> np.ndarray:
    """Guided maps float (..., H, W, C) -> uint8, each map scaled by its own max |value| around grey."""
    flat = maps.reshape(-1, int(np.prod(maps.shape[-3:])))
    scale = np.abs(flat).max(axis=1, keepdims=True) + 1e-12
    return np.clip(flat / scale * 127.5 + 127.5, 0, 255).round().astype(np.uint8).reshape(maps.shape)


def fig5_grid(responses: list[FilterResponses]) -> np.ndarray:
    """The paper's Fig. 5: per net a panel whose row pairs are a unit's top images and their
    guided-backprop maps (K columns); panels (e.g. trained, random) side by side -> uint8 (H, W, C)."""
    panels = []
    for r in responses:
        u, k = r.images.shape[:2]
        rows = np.stack([r.images, guided_to_uint8(r.guided)], axis=1)  # (U, 2, K, H, W, C)
        panels.append(grid(rows.reshape(u * 2 * k, *rows.shape[3:]), nrow=k))
    return side_by_side(panels)


def fig5_figure(responses: list[FilterResponses], caption: str = "", scale: int = 1) -> np.ndarray:
    """Fig. 5 as a figure that reads alone: per net a titled panel ("trained D", "random-init D"),
    per unit a row of its top images ("unit u") above a row of their guided-backprop maps,
    columns "top 1".."top K", and the caption strip underneath -> uint8 (H, W, 3)."""
    panels = []
    for r in responses:
        k = r.images.shape[1]
        rows, labels = [], []
        for i, unit in enumerate(r.top.units):
            rows += [r.images[i], guided_to_uint8(r.guided[i])]
            labels += [f"{r.top.layer} unit {unit}", "guided backprop"]
        panels.append(labelled_grid(rows, labels, [f"top {j + 1}" for j in range(k)],
                                    title=NET_NAMES.get(r.label, r.label), scale=scale, label_width=130))
    return caption_strip(side_by_side(panels), caption)


def patch_grid(responses: list[FilterResponses]) -> np.ndarray:
    """Top-activating receptive-field crops: per net a panel, one row per unit (K crops)."""
    return side_by_side([grid(r.crops.reshape(-1, *r.crops.shape[2:]), nrow=r.crops.shape[1]) for r in responses])


def feature_map_grid(maps: dict[str, np.ndarray], n: int = 8) -> np.ndarray:
    """Generator feature maps {layer: (C, S, S)} -> uint8 grid, one row per layer (first ``n``
    channels), each map min-max scaled to grey levels."""
    tiles = []
    for fmap in maps.values():
        chosen = fmap[:n]
        lo = chosen.min(axis=(1, 2), keepdims=True)
        hi = chosen.max(axis=(1, 2), keepdims=True)
        grey = ((chosen - lo) / np.maximum(hi - lo, 1e-12) * 255).round().astype(np.uint8)
        grey = np.concatenate([grey, np.full((n - len(grey), *grey.shape[1:]), BACKGROUND, np.uint8)])
        tiles.append(grey)
    return grid(np.concatenate(tiles)[..., None], nrow=n)


def detector_figure(results: list[Dissection]):
    """Plotly grouped bars: detectors per class (summed over layers), one colour per net; the
    hover text gives the per-layer counts."""
    import plotly.graph_objects as go

    rows = detector_table(results)
    names = results[0].class_names
    fig = go.Figure()
    for res in results:
        mine = [r for r in rows if r["net"] == res.label]
        counts = [sum(r[c] for r in mine) for c in names]
        hover = ["<br>".join(f"{r['layer']}: {r[c]}" for r in mine) for c in names]
        fig.add_bar(name=f"{res.label} ({sum(counts)})", x=list(names), y=counts, hovertext=hover, text=counts)
    r = results[0]
    fig.update_layout(barmode="group")
    return plotly_style(fig, f"Network dissection: detector units per class, {r.n_images} images, all hidden layers",
                        "ground-truth class", f"detector units (count; IoU > {r.iou_threshold:g})")
