"""Figures of filter analyses: Fig. 5-style grids (trained vs random D), receptive-field patch
grids, generator feature maps, and the dissection detector chart. Nothing here computes."""

from __future__ import annotations

import numpy as np

from ..analysis.dissection import Dissection, detector_table
from ..analysis.filters import FilterResponses
from ..images import grid

SEPARATOR = 8


def guided_to_uint8(maps: np.ndarray) -> np.ndarray:
    """Guided maps float (..., H, W, C) -> uint8, each map scaled by its own max |value| around grey."""
    flat = maps.reshape(-1, int(np.prod(maps.shape[-3:])))
    scale = np.abs(flat).max(axis=1, keepdims=True) + 1e-12
    return np.clip(flat / scale * 127.5 + 127.5, 0, 255).round().astype(np.uint8).reshape(maps.shape)


def side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    """Equal-height uint8 (H, W_i, C) panels -> one image with white separators."""
    height, channels = panels[0].shape[0], panels[0].shape[2]
    gap = np.full((height, SEPARATOR, channels), 255, np.uint8)
    parts = [p for panel in panels for p in (panel, gap)][:-1]
    return np.concatenate(parts, axis=1)


def fig5_grid(responses: list[FilterResponses]) -> np.ndarray:
    """The paper's Fig. 5: per net a panel whose row pairs are a unit's top images and their
    guided-backprop maps (K columns); panels (e.g. trained, random) side by side -> uint8 (H, W, C)."""
    panels = []
    for r in responses:
        u, k = r.images.shape[:2]
        rows = np.stack([r.images, guided_to_uint8(r.guided)], axis=1)  # (U, 2, K, H, W, C)
        panels.append(grid(rows.reshape(u * 2 * k, *rows.shape[3:]), nrow=k))
    return side_by_side(panels)


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
        grey = np.concatenate([grey, np.zeros((n - len(grey), *grey.shape[1:]), np.uint8)])
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
    fig.update_layout(barmode="group", yaxis_title="detector units (IoU > %g)" % r.iou_threshold,
                      title=f"Network dissection: units per class, {r.n_images} images, all hidden layers")
    return fig
