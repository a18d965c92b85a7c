"""Training curves: a run log (``dcgan_viz.runlog.read_log``) -> plotly figure."""

from __future__ import annotations

import numpy as np

# (log key, trace name, subplot row)
CURVES = (
    ("loss_d", "loss_D", 1),
    ("loss_g", "loss_G", 1),
    ("d_x", "D(x)", 2),
    ("d_g_z1", "D(G(z)) before D step", 2),
    ("d_g_z2", "D(G(z)) after D step", 2),
)


def loss_figure(log: dict[str, np.ndarray], max_points: int = 4000, title: str | None = None):
    """Losses (top) and D(x) / D(G(z)) (bottom) against step. Long logs are thinned to about
    ``max_points`` points per trace (every k-th step, the last step always kept)."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("losses", "discriminator outputs"))
    n = len(next(iter(log.values()))) if log else 0
    steps = np.asarray(log.get("step", np.arange(1, n + 1)), dtype=np.float64)
    keep = np.arange(n)
    if n > max_points > 0:
        keep = np.unique(np.r_[np.arange(0, n, int(np.ceil(n / max_points))), n - 1])
    for key, name, row in CURVES:
        if key in log:
            fig.add_trace(go.Scattergl(x=steps[keep], y=np.asarray(log[key])[keep], name=name, mode="lines"),
                          row=row, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="probability", range=[0, 1], row=2, col=1)
    fig.update_layout(height=520, margin=dict(l=50, r=20, t=50 if title else 30, b=40),
                      title=title, legend=dict(orientation="h", y=-0.12), uirevision="keep")
    if not n:
        fig.add_annotation(text="no training log yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig
