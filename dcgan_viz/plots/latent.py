"""Figures of latent-space analyses: walk grids and their per-step change, rows of images for
concept arithmetic, direction walks, and success-rate bars. Nothing here computes."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..images import grid
from .style import BACKGROUND, SCALE, PAD, bar_strip, labelled_grid, plotly_style


def walk_grid(images: np.ndarray, points: int, steps_between: int) -> np.ndarray:
    """A walk's images uint8 (M, H, W, C), M = (points - 1) * (steps_between + 1) + 1 -> one grid
    with one row per segment (anchor, the steps, next anchor), as the paper's Fig. 4."""
    s = steps_between
    rows = np.concatenate([images[i * (s + 1): i * (s + 1) + s + 2] for i in range(points - 1)])
    return grid(rows, nrow=s + 2)


def walk_figure(images: np.ndarray, points: int, steps_between: int, step_change: np.ndarray, caption: str = "",
                scale: int = SCALE) -> np.ndarray:
    """Fig. 4 as a figure that reads alone: one row per segment ("z_i -> z_i+1"), columns
    "anchor", "step 1".., "next anchor"; under each row the mean |pixel change| of each step as a
    bar at the boundary between the two images (one scale for all rows); the caption underneath.
    ``step_change`` float (M - 1,) for the M images of the walk."""
    s = steps_between
    rows = [images[i * (s + 1): i * (s + 1) + s + 2] for i in range(points - 1)]
    tile = images.shape[2] * scale + PAD * scale
    top = float(np.max(step_change)) if len(step_change) else 1.0
    strips = [bar_strip(step_change[i * (s + 1): (i + 1) * (s + 1)], [(j + 1) * tile for j in range(s + 1)],
                        (s + 2) * tile, 26, top, "mean |pixel change| per step" if i == 0 else "")
              for i in range(points - 1)]
    return labelled_grid(rows, [f"z{i} -> z{i + 1}" for i in range(points - 1)],
                         ["anchor", *[f"step {j + 1}" for j in range(s)], "next anchor"], caption, scale=scale,
                         under_rows=strips, label_width=90)


def rows_grid(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Rows of uint8 images [(n_i, H, W, C), ...] -> one grid, short rows padded with blank tiles."""
    width = max(len(r) for r in rows)
    blank = np.full_like(rows[0][:1], BACKGROUND)
    padded = np.concatenate([np.concatenate([r, *[blank] * (width - len(r))]) for r in rows])
    return grid(padded, nrow=width)


def step_figure(step_change: np.ndarray, steps_between: int, height: int = 260):
    """Plotly bars of the mean |pixel change| per walk step, coloured by segment."""
    import plotly.graph_objects as go

    seg = np.arange(len(step_change)) // (steps_between + 1)
    fig = go.Figure(go.Bar(x=list(range(1, len(step_change) + 1)), y=[float(s) for s in step_change],
                           marker_color=["#4c72b0" if s % 2 == 0 else "#dd8452" for s in seg],
                           hovertemplate="step %{x}: %{y:.4f}<extra></extra>"))
    fig.update_layout(height=height, showlegend=False)
    return plotly_style(fig, "Per-step image change along the walk (colour: segment)", "step along the walk",
                        "mean |pixel change| (fraction of the 0-255 range)")


def spike_ratio_figure(ratios: dict[str, np.ndarray]):
    """Plotly box plot of walk spike ratios (max / median step change) per interpolation method."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, values in ratios.items():
        fig.add_box(y=np.asarray(values, float), name=name, boxpoints="all", jitter=0.3)
    fig.update_layout(height=360)
    return plotly_style(fig, "Smoothness of latent walks (lower = smoother; a memorised jump is large)",
                        "model and interpolation", "spike ratio (max / median step change, unitless)")


def rate_figure(rows: Sequence[tuple[str, float, float, float]], title: str, axis: str = "success rate"):
    """Plotly bars of rates with 95% intervals: rows of (label, rate, ci_low, ci_high)."""
    import plotly.graph_objects as go

    labels = [r[0] for r in rows]
    rate = np.array([r[1] for r in rows])
    lo, hi = np.array([r[2] for r in rows]), np.array([r[3] for r in rows])
    fig = go.Figure(go.Bar(x=labels, y=rate, text=[f"{v:.1%}" for v in rate],
                           error_y=dict(type="data", symmetric=False, array=hi - rate, arrayminus=rate - lo)))
    fig.update_layout(yaxis_range=[0, 1.05], height=360)
    return plotly_style(fig, title, "setting", f"{axis} (fraction of trials, 95% Wilson interval)")
