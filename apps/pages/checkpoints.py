"""Checkpoints & training: a checkpoint's model card, a sample grid for a seed, and the
loss / D(x) / D(G(z)) curves of its run (refreshed every few seconds for a live run).

Page state (checkpoint, seed) lives in the URL query string: ``/?checkpoint=<path>&seed=<n>``.
The callbacks only wire: pick the checkpoint, load it through the app's cache, call the
library, render.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, callback, dcc, html

from apps.app import app_state
from apps.components import checked_checkpoint, checkpoint_dropdown, error_box, find_checkpoints, image_src, parse_seed, seed_input
from dcgan_viz.images import grid
from dcgan_viz.plots.training import loss_figure
from dcgan_viz.runlog import find_log, read_log
from dcgan_viz.sampling import generate

dash.register_page(__name__, path="/", name="Checkpoints & training", title="dcgan-viz: checkpoints", order=0)

GRID_N = 64  # latents (seed, 0..63), the same as `dcgan-viz sample` and the run's sample grids
REFRESH_MS = 5000
_IMAGE_MD = re.compile(r"!\[[^\]]*\]\([^)]*\)")


def layout(checkpoint: str | None = None, seed: str | None = None, **_query) -> html.Div:
    dirs, _ = app_state()
    if checkpoint is None:
        found = find_checkpoints(dirs)
        checkpoint = str(found[0]) if found else None
    try:
        seed = parse_seed(0 if seed is None else seed)
    except ValueError:
        pass  # keep the bad value in the input: render_checkpoint shows the message
    return html.Div([
        html.H2("Checkpoints & training"),
        html.Div([checkpoint_dropdown("ckpt-checkpoint", dirs, checkpoint),
                  seed_input("ckpt-seed", seed)],
                 style={"display": "flex", "gap": "1.5em", "alignItems": "center"}),
        html.Div(id="ckpt-error", style={"margin": "0.8em 0"}),
        html.Div([
            html.Div([html.Img(id="ckpt-grid", style={"imageRendering": "pixelated", "maxWidth": "100%"}),
                      html.Div(id="ckpt-grid-caption", style={"color": "#666", "fontSize": "0.9em"})],
                     style={"flex": "0 0 auto"}),
            dcc.Graph(id="ckpt-curves", style={"flex": "1 1 30em"}),
        ], style={"display": "flex", "gap": "1.5em", "flexWrap": "wrap"}),
        dcc.Interval(id="ckpt-refresh", interval=REFRESH_MS),
        dcc.Store(id="ckpt-log-signature"),
        html.H3("Model card"),
        dcc.Markdown(id="ckpt-card", link_target="_blank"),
    ])


def model_card(checkpoint: Path) -> str:
    """The checkpoint's README.md with image links removed (the page shows samples itself)."""
    card = checkpoint / "README.md"
    if not card.is_file():
        return f"*{checkpoint} has no model card (README.md).*"
    return _IMAGE_MD.sub("", card.read_text(encoding="utf-8", errors="replace"))


@callback(Output("url", "search"), Input("ckpt-checkpoint", "value"), Input("ckpt-seed", "value"),
          prevent_initial_call=True)
def update_url(checkpoint, seed) -> str:
    """Write the page state into the query string, so the view can be shared."""
    state = {k: v for k, v in (("checkpoint", checkpoint), ("seed", seed)) if v is not None}
    return "?" + urlencode(state) if state else ""


@callback(Output("ckpt-error", "children"), Output("ckpt-card", "children"), Output("ckpt-grid", "src"),
          Output("ckpt-grid-caption", "children"), Input("ckpt-checkpoint", "value"), Input("ckpt-seed", "value"))
def render_checkpoint(checkpoint, seed):
    """(error, model card markdown, grid PNG data URI, caption); on bad input only the error."""
    try:
        path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
        bundle = app_state()[1].get(path)
        images = generate(bundle, seed, range(GRID_N)).numpy()
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        return error_box(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__), "", None, ""
    caption = f"latents (seed {seed}, 0..{GRID_N - 1}), step {bundle.meta.get('step')}"
    return None, model_card(path), image_src(grid(images), scale=2), caption


@callback(Output("ckpt-curves", "figure"), Output("ckpt-log-signature", "data"),
          Input("ckpt-refresh", "n_intervals"), Input("ckpt-checkpoint", "value"), State("ckpt-log-signature", "data"))
def render_curves(_n_intervals, checkpoint, last_signature):
    """Training curves of the checkpoint's run; re-read only when the log file changed."""
    try:
        log_path = find_log(checked_checkpoint(checkpoint))
    except ValueError:
        return loss_figure({}), None
    signature = None if log_path is None else [str(log_path), *_stat(log_path)]
    if signature is not None and signature == last_signature:
        return dash.no_update, dash.no_update
    log = read_log(log_path) if log_path is not None else {}
    return loss_figure(log, title=str(log_path) if log_path else "no log.jsonl for this checkpoint"), signature


def _stat(path: Path) -> list[float]:
    st = path.stat()
    return [st.st_mtime_ns, st.st_size]
