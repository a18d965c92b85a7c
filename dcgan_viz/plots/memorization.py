"""Figures of the memorization and de-duplication results (no computation of statistics here)."""

from __future__ import annotations

import numpy as np

from dcgan_viz.analysis.dedup import DedupResult
from dcgan_viz.analysis.memorization import ClosestPairs, CopyingResult
from dcgan_viz.images import grid
from dcgan_viz.plots.style import BACKGROUND, SCALE, labelled_grid, plotly_style


def closest_pairs_grid(pairs: ClosestPairs, generated: np.ndarray, train: np.ndarray, per_row: int = 8) -> np.ndarray:
    """uint8 (H', W', C) grid: rows of generated samples, each above a row of their nearest training images."""
    rows = []
    for start in range(0, len(pairs.distances), per_row):
        g = generated[pairs.gen_indices[start : start + per_row]]
        t = np.asarray(train[pairs.train_indices[start : start + per_row]])
        pad = per_row - len(g)
        blank = np.full((pad, *g.shape[1:]), BACKGROUND, np.uint8)
        rows += [np.concatenate([g, blank]), np.concatenate([t, blank])]
    return grid(np.concatenate(rows), nrow=per_row)


def closest_pairs_figure(pairs: ClosestPairs, generated: np.ndarray, train: np.ndarray, caption: str = "",
                         per_row: int = 8, space: str = "pixel", scale: int = SCALE) -> np.ndarray:
    """The closest pairs as a figure that reads alone: rows "generated" above "nearest training",
    each column labelled with the pair's distance (``space``), the caption underneath."""
    rows, labels, cols = [], [], []
    for start in range(0, len(pairs.distances), per_row):
        sl = slice(start, start + per_row)
        rows += [generated[pairs.gen_indices[sl]], np.asarray(train[pairs.train_indices[sl]])]
        labels += ["generated", "nearest training image"]
    cols = [f"d = {d:.3g}" for d in pairs.distances[:per_row]]
    return labelled_grid(rows, labels, cols if len(pairs.distances) <= per_row else None, caption, scale=scale,
                         label_width=120)


def dedup_groups_figure(result: DedupResult, images: np.ndarray, caption: str = "", groups: int = 16,
                        members: int = 8, scale: int = SCALE) -> np.ndarray | None:
    """Near-duplicate groups as a figure: one labelled row per group ("group i: n images", largest
    first, up to ``members`` images), the caption underneath; None if there is no group."""
    found = result.groups()[:groups]
    if not found:
        return None
    rows = [np.asarray(images[g[:members]]) for g in found]
    return labelled_grid(rows, [f"group {i + 1}: {len(g)} images" for i, g in enumerate(found)], None, caption,
                         scale=scale, label_width=120)


def dedup_groups_grid(result: DedupResult, images: np.ndarray, groups: int = 16, members: int = 8) -> np.ndarray | None:
    """uint8 grid, one row per near-duplicate group (largest first, up to ``members`` images); None if none."""
    found = result.groups()[:groups]
    if not found:
        return None
    shape = images.shape[1:]
    rows = [np.concatenate([np.asarray(images[g[:members]]), np.full((members - len(g[:members]), *shape), BACKGROUND, np.uint8)])
            for g in found]
    return grid(np.concatenate(rows), nrow=members)


def ct_cells_figure(copying: CopyingResult, title: str = "Data-copying z-score per k-means cell"):
    """Plotly bar chart of per-cell Mann-Whitney z-scores (cells with too few samples greyed at 0)."""
    import plotly.graph_objects as go

    cells = np.arange(len(copying.cell_z))
    z = np.where(copying.used, np.nan_to_num(copying.cell_z), 0.0)
    colours = np.where(~copying.used, "lightgrey", np.where(z < 0, "firebrick", "steelblue"))
    hover = [f"cell {c}: train {t}, held-out {h}, generated {g}" for c, t, h, g in
             zip(cells, copying.train_counts, copying.test_counts, copying.gen_counts)]
    fig = go.Figure(go.Bar(x=cells, y=z, marker_color=list(colours), hovertext=hover))
    fig.add_hline(y=copying.ct, line_dash="dash", annotation_text=f"C_T = {copying.ct:.2f}")
    return plotly_style(fig, title, "k-means cell of the training set (index)",
                        "z-score of the Mann-Whitney U test (negative: samples closer than held-out)")
