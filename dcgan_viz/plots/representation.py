"""Figures of representation analyses: SVM accuracy bars and the UMAP scatter. Nothing here computes."""

from __future__ import annotations

import numpy as np

from ..analysis.representation import RepresentationResult, UmapResult
from .style import SERIES, plotly_style


def accuracy_figure(result: RepresentationResult):
    """Plotly grouped bars: test accuracy per feature set, one group per number of training labels."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for n in sorted({s["n_train"] for s in result.scores}, reverse=True):
        rows = [s for s in result.scores if s["n_train"] == n]
        fig.add_bar(name=f"{n} labels", x=[s["features"] for s in rows], y=[100 * s["accuracy"] for s in rows],
                    text=[f"{100 * s['accuracy']:.1f}%" for s in rows])
    fig.update_layout(barmode="group", legend_title_text="training labels")
    return plotly_style(fig, f"Linear L2-SVM on pooled features: {result.data} {result.n_test}", "feature set",
                        "test accuracy (%)")


def umap_figure(result: UmapResult):
    """Plotly scatter of the UMAP: real images coloured by label, generated images as grey crosses.
    Each point's ``customdata`` is (generated 0/1, index) so a dashboard can show its thumbnail."""
    import plotly.graph_objects as go

    fig = go.Figure()
    real = ~np.asarray(result.generated, bool)
    labels = np.asarray(result.labels)
    coords, index = np.asarray(result.coords), np.asarray(result.index)
    for label in np.unique(labels[real]):
        pick = real & (labels == label)
        name = result.label_names[label] if 0 <= label < len(result.label_names) else "unlabelled"
        fig.add_scattergl(x=coords[pick, 0], y=coords[pick, 1], mode="markers", name=name, marker={"size": 4},
                          customdata=np.c_[np.zeros(pick.sum(), int), index[pick]],
                          hovertemplate=f"{name}<br>real image %{{customdata[1]}}<extra></extra>")
    fake = ~real
    if fake.any():
        fig.add_scattergl(x=coords[fake, 0], y=coords[fake, 1], mode="markers", name="generated",
                          marker={"size": 5, "symbol": "x", "color": "grey"},
                          customdata=np.c_[np.ones(fake.sum(), int), index[fake]],
                          hovertemplate=f"generated: latent ({result.latent_seed}, %{{customdata[1]}})<extra></extra>")
    return plotly_style(fig, "UMAP of discriminator features (real by label, generated in grey)",
                        "UMAP 1 (unitless)", "UMAP 2 (unitless)")


SOURCE_COLOURS = {"real": SERIES[0], "generated": SERIES[1]}


def umap_scatter(result: UmapResult, colour: str = "source"):
    """Plotly scatter of a UMAP with N points. ``colour`` "source": two traces, real vs generated;
    "label": one trace per real label plus generated (as ``umap_figure``). Every point's
    ``customdata`` is (generated 0/1, index) so a dashboard can show its thumbnail."""
    import plotly.graph_objects as go

    if colour == "label":
        return umap_figure(result)
    if colour != "source":
        raise ValueError(f"colour must be source or label, got {colour!r}")
    fig = go.Figure()
    generated = np.asarray(result.generated, bool)
    coords, index = np.asarray(result.coords), np.asarray(result.index)
    for name, pick in (("real", ~generated), ("generated", generated)):
        if pick.any():
            fig.add_scattergl(x=coords[pick, 0], y=coords[pick, 1], mode="markers", name=f"{name} ({int(pick.sum())})",
                              marker={"size": 5, "color": SOURCE_COLOURS[name]},
                              customdata=np.c_[np.full(pick.sum(), int(name == "generated")), index[pick]],
                              hovertemplate=f"{name} %{{customdata[1]}}<extra></extra>")
    return plotly_style(fig, "UMAP of discriminator features: real vs generated", "UMAP 1 (unitless)",
                        "UMAP 2 (unitless)")
