"""Embedding: a UMAP of discriminator features for real (training) and generated images, coloured by
real/generated or by label, with the image under the mouse shown as a thumbnail.

The same library call as ``dcgan-viz represent`` (``umap_embedding``, cached on disk by weights and
parameters, so a second request is instant). By default the map is fitted on the real images once
per checkpoint and real count (seconds; kept in the app) and the generated images of each seed are
projected into it (UMAP ``transform``, a fraction of a second); "fitted jointly" refits real and
generated together, as ``dcgan-viz represent`` does. Both run as background jobs with progress.
Page state lives in the URL:
``/embedding?checkpoint=<path>&seed=0&real=500&generated=64&fit=projected&colour=source``.
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
from apps.pages.memorization import _app_cache, _keep, _progress_bar, get_bundle, training_set
from dcgan_viz.analysis.representation import RealMap, UMAP_MODES, UmapResult, fit_real_map, pooled_features, umap_embedding
from dcgan_viz.plots.representation import umap_scatter

dash.register_page(__name__, path="/embedding", name="Embedding", title="dcgan-viz: embedding", order=4)

DEFAULT_REAL, DEFAULT_GENERATED, MIN_COUNT, MAX_COUNT = 500, 64, 5, 5000  # 64 generated (an 8x8 grid's worth): a new seed in < 0.3 s on 2 cores
COLOURS = ("source", "label")
FITS = UMAP_MODES  # "joint", "projected"
DEFAULT_FIT = "projected"
UMAP_SEED = 0  # the page's seed picks the latents; the UMAP's own random state stays fixed
MAX_REAL_MAPS = 4  # fitted real-image maps kept in the app (checkpoint x real count)


def parse_fit(value) -> str:
    if value not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {value!r}")
    return value


def real_map(bundle, train, n_real: int) -> RealMap:
    """The UMAP of the first ``n_real`` training images' D features for ``bundle``, fitted once per
    app (the fit costs seconds; projecting a new seed into it a fraction of one)."""
    lock, maps = _app_cache("real_maps")
    key = (bundle.key, train.spec.content_hash, n_real)
    with lock:
        if key not in maps:
            feats = pooled_features(bundle.D, train.images[:n_real])
            maps[key] = fit_real_map(feats, UMAP_SEED)
            maps[key].project(feats[:2])  # compiles UMAP's transform now (~1 s), not on the first seed
            while len(maps) > MAX_REAL_MAPS:
                maps.pop(next(iter(maps)))
        return maps[key]


def compute_embedding(checkpoint, seed, real, generated, fit=DEFAULT_FIT, progress=None) -> tuple[UmapResult, int]:
    """(UMAP of D features of the first ``real`` training images and latents (seed, 0..generated-1),
    size of the training set); cached on disk. ValueError on bad input."""
    path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
    n_real = parse_int(real, "real images", MIN_COUNT, MAX_COUNT)
    n_gen = parse_int(generated, "generated images", 0, MAX_COUNT)
    fit = parse_fit(fit)
    bundle = get_bundle(path)
    if bundle.D is None:
        raise ValueError(f"the embedding needs a discriminator; {path} has none (imported without --netD)")
    if progress is not None:
        progress((0, 2, "loading the training set"))
    train = training_set(bundle)
    if n_real > len(train):
        raise ValueError(f"real images must be at most the {len(train)} training images, got {n_real}")
    if progress is not None:
        progress((1, 2, f"D features and UMAP of {n_real} real + {n_gen} generated images ({fit})"))
    fitted = real_map(bundle, train, n_real) if fit == "projected" else None
    return umap_embedding(bundle, train, n_real, n_gen, seed, UMAP_SEED, mode=fit, cache_dir=cache_dir(),
                          real_map=fitted), len(train)


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
           generated: str | None = None, fit: str | None = None, colour: str | None = None,
           **_query) -> html.Div:
    dirs, _ = app_state()
    if checkpoint is None:
        found = find_checkpoints(dirs)
        checkpoint = str(found[0]) if found else None
    seed = _keep(0 if seed is None else seed, parse_seed)
    real = _keep(DEFAULT_REAL if real is None else real, lambda v: parse_int(v, "real images", MIN_COUNT, MAX_COUNT))
    generated = _keep(DEFAULT_GENERATED if generated is None else generated,
                      lambda v: parse_int(v, "generated images", 0, MAX_COUNT))
    colour = colour if colour in COLOURS else "source"
    fit = fit if fit in FITS else DEFAULT_FIT

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
            html.Label(["generated images ", dcc.RadioItems(
                id="embed-fit", value=fit, inline=True,
                options=[{"label": "projected into the real map", "value": "projected"},
                         {"label": "fitted jointly", "value": "joint"}])],
                       style={"display": "flex", "gap": "0.4em", "alignItems": "center"}),
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
          Input("embed-fit", "value"), Input("embed-colour", "value"), prevent_initial_call=True)
def update_url(checkpoint, seed, real, generated, fit, colour) -> str:
    """Write the page state into the query string, so the view can be shared."""
    state = {k: v for k, v in (("checkpoint", checkpoint), ("seed", seed), ("real", real), ("generated", generated),
                               ("fit", fit), ("colour", colour)) if v is not None}
    return "?" + urlencode(state) if state else ""


@callback(Output("embed-error", "children"), Output("embed-store", "data"), Output("embed-caption", "children"),
          Input("embed-checkpoint", "value"), Input("embed-seed", "value"), Input("embed-real", "value"),
          Input("embed-generated", "value"), Input("embed-fit", "value"), background=True,
          progress=[Output("embed-progress", "value"), Output("embed-progress", "max"),
                    Output("embed-progress-text", "children")])
def run_embedding(set_progress, checkpoint, seed, real, generated, fit=DEFAULT_FIT):
    """(error, UMAP result for the store, caption); on bad input only the one-line error."""
    try:
        result, n_train = compute_embedding(checkpoint, seed, real, generated, fit, set_progress)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        set_progress((0, 1, ""))
        return error_box(one_line(exc)), None, ""
    set_progress((1, 1, "done"))
    n_gen = int(np.sum(result.generated))
    how = ("the map is fitted on the training images and the generated images are projected into it (UMAP "
           "transform)" if fit == "projected" else "one map fitted on training and generated images together")
    caption = (f"UMAP (cosine, seed {UMAP_SEED}) of standardised D features (every hidden layer max-pooled to 4x4) of "
               f"the first {len(result.generated) - n_gen} of {n_train} training images and {n_gen} generated images "
               f"(latents ({seed}, 0..{max(n_gen - 1, 0)})); {how}. Hover a point to see its image. Cached on disk.")
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
