"""Figures of the object-removal analysis (paper section 6.1): the ACE curve per unit ranking and
with/without grids. Nothing here computes; the dashboard and scripted figures share these."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

import numpy as np

from ..analysis.ablation import RemovalResult
from .style import ACCENT_NAME, SCALE, draw_outline, labelled_grid, plotly_style, upscale

COLORS = {"probe": "#4c72b0", "optimized": "#55a868", "greedy": "#c44e52", "dissection": "#dd8452", "random": "#7f7f7f"}


def removal_figure(result: RemovalResult) -> go.Figure:
    """Two panels over the number of units dropped: the fraction of ``result.class_name`` pixels
    removed (ACE) and the largest relative change of another class's pixel count, one line per
    ranking (probe / optimized / greedy / dissection / random)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"{result.class_name} pixels removed (ACE)", "max |other-class change|"))
    rankings = list(dict.fromkeys(r["ranking"] for r in result.rows))
    for name in rankings:
        rows = sorted((r for r in result.rows if r["ranking"] == name), key=lambda r: r["count"])
        x = [r["count"] for r in rows]
        color = COLORS.get(name)
        fig.add_trace(go.Scatter(x=x, y=[r["ace"] for r in rows], mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=color),
                                 hovertemplate=f"{name}: %{{x}} units -> ACE %{{y:.3f}}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[r["max_other_change"] for r in rows], mode="lines+markers", name=name,
                                 legendgroup=name, showlegend=False, line=dict(color=color, dash="dot"),
                                 customdata=[r["max_other_class"] for r in rows],
                                 hovertemplate=f"{name}: %{{x}} units -> %{{y:.3f}} (%{{customdata}})<extra></extra>"),
                      row=2, col=1)
    fig.update_xaxes(title_text=f"units of {result.layer} dropped (of {result.n_units})", row=2, col=1)
    fig.update_yaxes(title_text="fraction", row=1, col=1)
    fig.update_yaxes(title_text="relative change", row=2, col=1)
    fig.update_layout(height=480, legend_title_text="ranking")
    return plotly_style(fig, f"Removing {result.class_name}: {result.n_latents} latents (seed {result.seed})")


def with_without_figure(before: np.ndarray, after: np.ndarray, removed: np.ndarray, col_labels: list[str],
                        without_label: str, caption: str = "", scale: int = SCALE) -> np.ndarray:
    """Fig. 6 as a figure that reads alone: uint8 (n, H, W, C) images "with units" above the same
    latents "without units" (``without_label``), the removed class pixels (bool (n, H, W)) outlined
    in the accent colour on the lower row; columns labelled (latent ids) -> uint8 (H', W', 3)."""
    top = [upscale(img, scale) for img in before]
    bottom = [draw_outline(img, mask, scale) for img, mask in zip(after, removed)]
    return labelled_grid([top, bottom], ["with all units", without_label], col_labels,
                         caption + f" Outlined in {ACCENT_NAME}: pixels the segmenter labelled as the class before and not after.",
                         scale=1)
