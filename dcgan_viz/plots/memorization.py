"""Figures of the memorization and de-duplication results (no computation of statistics here)."""

from __future__ import annotations

import numpy as np

from dcgan_viz.analysis.dedup import DedupResult
from dcgan_viz.analysis.memorization import ClosestPairs, CopyingResult
from dcgan_viz.images import grid


def closest_pairs_grid(pairs: ClosestPairs, generated: np.ndarray, train: np.ndarray, per_row: int = 8) -> np.ndarray:
    """uint8 (H', W', C) grid: rows of generated samples, each above a row of their nearest training images."""
    rows = []
    for start in range(0, len(pairs.distances), per_row):
        g = generated[pairs.gen_indices[start : start + per_row]]
        t = np.asarray(train[pairs.train_indices[start : start + per_row]])
        pad = per_row - len(g)
        blank = np.zeros((pad, *g.shape[1:]), np.uint8)
        rows += [np.concatenate([g, blank]), np.concatenate([t, blank])]
    return grid(np.concatenate(rows), nrow=per_row)


def dedup_groups_grid(result: DedupResult, images: np.ndarray, groups: int = 16, members: int = 8) -> np.ndarray | None:
    """uint8 grid, one row per near-duplicate group (largest first, up to ``members`` images); None if none."""
    found = result.groups()[:groups]
    if not found:
        return None
    shape = images.shape[1:]
    rows = [np.concatenate([np.asarray(images[g[:members]]), np.zeros((members - len(g[:members]), *shape), np.uint8)])
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
    fig.update_layout(title=title, xaxis_title="k-means cell of the training set", yaxis_title="z-score (U test)")
    return fig
