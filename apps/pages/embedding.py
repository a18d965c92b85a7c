"""Embedding: a UMAP of discriminator features for real (training) and generated images, coloured by
real/generated or by label, with the image under the mouse shown as a thumbnail.

The same library call as ``dcgan-viz represent`` (``umap_embedding``, cached on disk by weights and
parameters, so a second request is instant). The UMAP runs as a background job with progress.
Page state lives in the URL: ``/embedding?checkpoint=<path>&seed=0&real=500&generated=250&colour=source``.
"""

from __future__ import annotations

from urllib.parse import urlencode

import dash
import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html

from apps.app import app_state
from apps.components import CAPTION_STYLE, PIXELATED_STYLE, ROW_STYLE, checked_checkpoint, checkpoint_dropdown, error_box, find_checkpoints, image_src, parse_seed, seed_input, one_line, parse_int
from apps.pages.filters import cache_dir
from apps.pages.memorization import _keep, _progress_bar, get_bundle, training_set
from dcgan_viz.analysis.representation import UmapResult, umap_embedding
from dcgan_viz.plots.representation import umap_scatter

dash.register_page(__name__, path="/embedding", name="Embedding", title="dcgan-viz: embedding", order=4)

DEFAULT_REAL, DEFAULT_GENERATED, MIN_COUNT, MAX_COUNT = 500, 250, 5, 5000
COLOURS = ("source", "label")


def compute_embedding(checkpoint, seed, real, generated, progress=None) -> tuple[UmapResult, int]:
    """(UMAP of D features of the first ``real`` training images and latents (seed, 0..generated-1),
    size of the training set); cached on disk. ValueError on bad input."""
    path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
    n_real = parse_int(real, "real images", MIN_COUNT, MAX_COUNT)
    n_gen = parse_int(generated, "generated images", 0, MAX_COUNT)
    bundle = get_bundle(path)
    if bundle.D is None:
        raise ValueError(f"the embedding needs a discriminator; {path} has none (imported without --netD)")
    if progress is not None:
        progress((0, 2, "loading the training set"))
    train = training_set(bundle)
    if n_real > len(train):
        raise ValueError(f"real images must be at most the {len(train)} training images, got {n_real}")
    if progress is not None:
        progress((1, 2, f"D features and UMAP of {n_real} real + {n_gen} generated images"))
    return umap_embedding(bundle, train, n_real, n_gen, seed, seed, cache_dir=cache_dir()), len(train)


def result_to_store(result: UmapResult) -> dict:
    """A UmapResult as JSON for a dcc.Store (lists of N coordinates, flags, labels and indices)."""
    return {"coords": np.asarray(result.coords).tolist(), "generated": np.asarray(result.generated).astype(int).tolist(),
            "labels": np.asarray(result.labels).tolist(), "index": np.asarray(result.index).tolist(),
            "label_names": list(result.label_names), "latent_seed": int(result.latent_seed)}


def result_from_store(data: dict) -> UmapResult:
    return UmapResult(coords=np.asarray(data["coords"], np.float32).reshape(-1, 2),
                      generated=np.asarray(data["generated"], bool), labels=np.asarray(data["labels"], np.int64),
                      index=np.asarray(data["index"], np.int64), label_names=list(data["label_names"]),
                      latent_seed=int(data["latent_seed"]))


def layout(checkpoint: str | None = None, seed: str | None = None, real: str | None = None,
           generated: str | None = None, colour: str | None = None, **_query) -> html.Div:
    dirs, _ = app_state()
    if checkpoint is None:
        found = find_checkpoints(dirs)
        checkpoint = str(found[0]) if found else None
    seed = _keep(0 if seed is None else seed, parse_seed)
    real = _keep(DEFAULT_REAL if real is None else real, lambda v: parse_int(v, "real images", MIN_COUNT, MAX_COUNT))
    generated = _keep(DEFAULT_GENERATED if generated is None else generated,
                      lambda v: parse_int(v, "generated images", 0, MAX_COUNT))
    colour = colour if colour in COLOURS else "source"

    def number(id, value, lo):
        return dcc.Input(id=id, type="number", min=lo, max=MAX_COUNT, step=1, value=value, debounce=True,
                         style={"width": "6em"})

    return html.Div([
        html.H2("Embedding"),
        html.Div([
            checkpoint_dropdown("embed-checkpoint", dirs, checkpoint),
            seed_input("embed-seed", seed),
            html.Label(["real images ", number("embed-real", real, MIN_COUNT)]),
            html.Label(["generated images ", number("embed-generated", generated, 0)]),
            html.Label(["colour by ", dcc.RadioItems(id="embed-colour", value=colour, inline=True,
                                                     options=[{"label": "real / generated", "value": "source"},
                                                              {"label": "label", "value": "label"}])],
                       style={"display": "flex", "gap": "0.4em", "alignItems": "center"}),
        ], style=ROW_STYLE),
        html.Div(id="embed-error", style={"margin": "0.8em 0"}),
        _progress_bar("embed"),
        dcc.Store(id="embed-store"),
        dcc.Graph(id="embed-graph", clear_on_unhover=True, style={"height": "600px", "maxWidth": "60em"}),
        dcc.Tooltip(id="embed-tooltip"),
        html.Div(id="embed-caption", style=CAPTION_STYLE),
    ])


@callback(Output("url", "search", allow_duplicate=True), Input("embed-checkpoint", "value"),
          Input("embed-seed", "value"), Input("embed-real", "value"), Input("embed-generated", "value"),
          Input("embed-colour", "value"), prevent_initial_call=True)
def update_url(checkpoint, seed, real, generated, colour) -> str:
    """Write the page state into the query string, so the view can be shared."""
    state = {k: v for k, v in (("checkpoint", checkpoint), ("seed", seed), ("real", real), ("generated", generated),
                               ("colour", colour)) if v is not None}
    return "?" + urlencode(state) if state else ""


@callback(Output("embed-error", "children"), Output("embed-store", "data"), Output("embed-caption", "children"),
          Input("embed-checkpoint", "value"), Input("embed-seed", "value"), Input("embed-real", "value"),
          Input("embed-generated", "value"), background=True,
          progress=[Output("embed-progress", "value"), Output("embed-progress", "max"),
                    Output("embed-progress-text", "children")])
def run_embedding(set_progress, checkpoint, seed, real, generated):
    """(error, UMAP result for the store, caption); on bad input only the one-line error."""
    try:
        result, n_train = compute_embedding(checkpoint, seed, real, generated, set_progress)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        set_progress((0, 1, ""))
        return error_box(one_line(exc)), None, ""
    set_progress((1, 1, "done"))
    n_gen = int(np.sum(result.generated))
    caption = (f"UMAP (cosine, seed {seed}) of standardised D features (every hidden layer max-pooled to 4x4): the "
               f"first {len(result.generated) - n_gen} of {n_train} training images and {n_gen} generated images "
               f"(latents ({seed}, 0..{max(n_gen - 1, 0)})). Hover a point to see its image. Cached on disk.")
    return None, result_to_store(result), caption


@callback(Output("embed-graph", "figure"), Input("embed-store", "data"), Input("embed-colour", "value"))
def render_figure(data, colour) -> go.Figure:
    """The scatter from the stored UMAP, coloured by real/generated or by label; hover shows a tooltip."""
    if not data:
        return go.Figure()
    try:
        result = result_from_store(data)
    except (KeyError, TypeError, ValueError):  # a store not written by run_embedding: draw nothing
        return go.Figure()
    fig = umap_scatter(result, colour if isinstance(colour, str) and colour in COLOURS else "source")
    fig.update_traces(hoverinfo="none", hovertemplate=None)
    fig.update_layout(margin=dict(l=50, r=10, t=40, b=40))
    return fig


@callback(Output("embed-tooltip", "show"), Output("embed-tooltip", "bbox"), Output("embed-tooltip", "children"),
          Input("embed-graph", "hoverData"), State("embed-checkpoint", "value"), State("embed-store", "data"))
def hover_thumbnail(hover, checkpoint, data):
    """(show, bbox, [image, caption]) for the point under the mouse: a training image or a generated one."""
    points = hover.get("points") if isinstance(hover, dict) and isinstance(data, dict) else None
    if not isinstance(points, list) or not points or not isinstance(points[0], dict):
        return False, dash.no_update, dash.no_update
    point = points[0]
    try:
        generated, index = (int(v) for v in point["customdata"])
        bundle = app_state()[1].get(checked_checkpoint(checkpoint))
        if generated:
            from dcgan_viz.sampling import generate

            image, what = generate(bundle, int(data["latent_seed"]), [index]).numpy()[0], \
                f"generated: latent ({data['latent_seed']}, {index})"
        else:
            image, what = np.asarray(training_set(bundle).images[index]), f"training image #{index}"
    except Exception as exc:  # noqa: BLE001 - a broken point shows why, never a traceback
        return True, point.get("bbox"), html.Div(one_line(exc), style={"color": "#8a1f11"})
    scale = max(1, 96 // image.shape[0])
    return True, point.get("bbox"), html.Div([html.Img(src=image_src(image, scale), className="dcgan-thumb",
                                                       style=PIXELATED_STYLE),
                                              html.Div(what, style={**CAPTION_STYLE, "fontSize": "0.8em"})])
