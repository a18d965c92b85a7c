"""Training curves: a run log (``dcgan_viz.runlog.read_log``) -> plotly figure.

Rows: losses; D(x) and D(G(z)); and, where the run logged health checks (dcgan_viz.health),
generated / real sample diversity with the thresholds below which the trainer warns.
"""

from __future__ import annotations

import numpy as np

from .style import plotly_style

# (log key, trace name, subplot row)
CURVES = (
    ("loss_d", "loss_D", 1),
    ("loss_g", "loss_G", 1),
    ("d_x", "D(x)", 2),
    ("d_g_z1", "D(G(z)) before D step", 2),
    ("d_g_z2", "D(G(z)) after D step", 2),
    ("div_d", "diversity in D's features", 3),
    ("nn_d", "distinct real neighbours", 3),
    ("div_pix", "diversity in pixels", 3),
)
HEALTH_KEYS = ("div_d", "nn_d", "div_pix")


def loss_figure(log: dict[str, np.ndarray], max_points: int = 4000, title: str | None = None):
    """Losses (top) and D(x) / D(G(z)) (bottom) against step. Long logs are thinned to about
    ``max_points`` points per trace (every k-th step, the last step always kept)."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    from ..health import DIVERSITY_WARN, NEIGHBOURS_WARN

    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, row_heights=[0.36, 0.32, 0.32],
                        subplot_titles=("losses", "discriminator outputs",
                                        "sample health: generated / real (below a dotted line: collapse)"))
    n = len(next(iter(log.values()))) if log else 0
    steps = np.asarray(log.get("step", np.arange(1, n + 1)), dtype=np.float64)
    keep = np.arange(n)
    if n > max_points > 0:
        keep = np.unique(np.r_[np.arange(0, n, int(np.ceil(n / max_points))), n - 1])
    for key, name, row in CURVES:
        if key not in log:
            continue
        values = np.asarray(log[key], dtype=np.float64)
        if key in HEALTH_KEYS:  # logged every health_every steps only: plot the checks themselves
            at = np.flatnonzero(np.isfinite(values))
            fig.add_trace(go.Scattergl(x=steps[at], y=values[at], name=name, mode="lines+markers"), row=row, col=1)
        else:
            fig.add_trace(go.Scattergl(x=steps[keep], y=values[keep], name=name, mode="lines"), row=row, col=1)
    for level in (DIVERSITY_WARN, NEIGHBOURS_WARN):
        fig.add_hline(y=level, line_dash="dot", line_color="grey", row=3, col=1)
    fig.update_xaxes(title_text="step", row=3, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="probability", range=[0, 1], row=2, col=1)
    fig.update_yaxes(title_text="ratio", rangemode="tozero", row=3, col=1)
    plotly_style(fig, title)
    fig.update_layout(height=720, legend=dict(orientation="h", y=-0.12), uirevision="keep")
    if not n:
        fig.add_annotation(text="no training log yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig
