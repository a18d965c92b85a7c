"""Filters: what D's filters respond to (paper Fig. 5, trained vs random init), G's feature maps
for one latent, and — on data with class masks (rooms) — a network-dissection detector table.

The same library calls as ``dcgan-viz filters`` (no second implementation); Fig. 5 comes from
``fig5_responses``, which computes each layer's top activations once per checkpoint (memory and the
analysis cache on disk) and per request only the chosen filters' guided-backprop maps. Page state lives in
the URL: ``/filters?checkpoint=<path>&layer=conv4&filters=0:6&images=256&seed=0``. Network
dissection is slow on CPU, so it runs only when "Run dissection" is pressed; its results go to
the same on-disk cache as the CLI (``cache/analysis``), so pressing again is instant.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import dash
from dash import Input, Output, State, callback, dcc, html

from apps.app import app_state
from apps.components import CAPTION_STYLE, PIXELATED_STYLE, ROW_STYLE, checked_checkpoint, checkpoint_dropdown, error_box, find_checkpoints, image_src, parse_seed, seed_input, one_line, upscaled_style
from dcgan_viz.analysis.dissection import QUANTILE, detector_table, dissect_checkpoint
from dcgan_viz.analysis.filters import fig5_responses, generator_feature_maps
from dcgan_viz.analysis.guided import check_units
from dcgan_viz.commands.filters import parse_filters as _cli_parse_filters
from dcgan_viz.latents import latents
from dcgan_viz.plots.filters import detector_figure, feature_map_grid, fig5_grid

dash.register_page(__name__, path="/filters", name="Filters", title="dcgan-viz: filters", order=1)

TOP = 6               # top-activating images per filter (the CLI's default)
RANDOM_SEED = 0       # seed of the random-init D, the control (the CLI's default)
DEFAULT_FILTERS = "0:6"
DEFAULT_IMAGES = 256  # probe images for Fig. 5 (the CLI uses 2000)
MAX_IMAGES = 2000
MAX_FILTERS = 16
GMAP_CHANNELS = 8     # G feature maps shown per layer
DEFAULT_DISSECT_IMAGES = 500  # the CLI dissects 2000; a few minutes on CPU
DISSECT_QUANTILES = {0.01: "top 1% (Bau et al. 2020)", 0.005: "top 0.5% (NetDissect 2017)"}
CACHE_DIR = Path("cache/analysis")  # the CLI's --cache-dir default
CACHE_KEY = "DCGAN_ANALYSIS_CACHE"  # optional override in server.config (tests)


def cache_dir() -> Path:
    return Path(dash.get_app().server.config.get(CACHE_KEY, CACHE_DIR))


def parse_filters(text) -> list[int]:
    """The CLI's filter parser (``0:6``, ``3``, ``1,4,7``); an empty selection is an error."""
    if text is None or not str(text).strip():
        raise ValueError(f"filters must look like 0:6, 3 or 1,4,7, got {text!r}")
    try:
        units = _cli_parse_filters(str(text).strip())
    except ValueError as exc:
        raise ValueError(str(exc).replace("--filters", "filters")) from None
    if not units:
        raise ValueError(f"filters {text!r} selects no filter")
    return units


def parse_count(value, what: str = "images", maximum: int = MAX_IMAGES) -> int:
    """A whole number in 1..maximum, else ValueError with a clear message."""
    try:
        number = float(value)
        count = int(number)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} must be a whole number in 1..{maximum}, got {value!r}") from None
    if count != number or not 1 <= count <= maximum:
        raise ValueError(f"{what} must be a whole number in 1..{maximum}, got {value!r}")
    return count


def _layer_options(checkpoint: str | None) -> list[dict[str, str]]:
    try:
        bundle = app_state()[1].get(checked_checkpoint(checkpoint))
    except Exception:  # noqa: BLE001 - no options; render_filters says what is wrong
        return []
    if bundle.D is None:  # render_filters says that this checkpoint has no discriminator
        return []
    return [{"label": name, "value": name} for name in bundle.D.feature_layers]


def _number_input(id: str, value, minimum: int, maximum: int) -> dcc.Input:
    return dcc.Input(id=id, type="number", min=minimum, max=maximum, step=1, value=value, debounce=True,
                     style={"width": "6em"})


def layout(checkpoint: str | None = None, layer: str | None = None, filters: str | None = None,
           images: str | None = None, seed: str | None = None, **_query) -> html.Div:
    dirs, _ = app_state()
    if checkpoint is None:
        found = find_checkpoints(dirs)
        checkpoint = str(found[0]) if found else None
    options = _layer_options(checkpoint)
    if layer is None and options:
        layer = options[-1]["value"]  # the last hidden layer, as in Fig. 5
    elif layer is not None and layer not in {o["value"] for o in options}:
        options = [*options, {"label": layer, "value": layer}]  # keep it: render_filters says what is wrong
    try:
        seed = parse_seed(0 if seed is None else seed)
    except ValueError:
        pass  # keep the bad value in the input: render_filters shows the message
    try:
        images = parse_count(DEFAULT_IMAGES if images is None else images)
    except ValueError:
        pass
    row, caption, pixelated = ROW_STYLE, CAPTION_STYLE, PIXELATED_STYLE
    return html.Div([
        html.H2("Filters"),
        html.Div([
            checkpoint_dropdown("filters-checkpoint", dirs, checkpoint),
            html.Label(["D layer ", dcc.Dropdown(id="filters-layer", options=options, value=layer, clearable=False,
                                                 style={"minWidth": "8em"})],
                       style={"display": "flex", "gap": "0.4em", "alignItems": "center"}),
            html.Label(["filters ", dcc.Input(id="filters-filters", type="text", debounce=True,
                                              value=DEFAULT_FILTERS if filters is None else filters,
                                              placeholder="0:6, 3 or 1,4,7", style={"width": "7em"})]),
            html.Label(["probe images ", _number_input("filters-images", images, 1, MAX_IMAGES)]),
            seed_input("filters-seed", seed),
        ], style=row),
        html.Div(id="filters-error", style={"margin": "0.8em 0"}),
        dcc.Loading(html.Div([
            html.H3("What D's filters respond to (Fig. 5)"),
            html.Img(id="filters-fig5", style=pixelated),
            html.Div(id="filters-fig5-caption", style=caption),
            html.H3("G feature maps"),
            html.Div(id="filters-gmaps-error", style={"margin": "0.8em 0"}),
            html.Img(id="filters-gmaps", style=pixelated),
            html.Div(id="filters-gmaps-caption", style=caption),
        ])),
        html.H3("Network dissection"),
        html.Div([
            html.Label(["dissection images ", _number_input("filters-dissect-images", DEFAULT_DISSECT_IMAGES, 1,
                                                             MAX_IMAGES)]),
            html.Label(["unit threshold ", dcc.Dropdown(
                id="filters-dissect-quantile", value=QUANTILE, clearable=False, style={"width": "16em"},
                options=[{"label": label, "value": q} for q, label in DISSECT_QUANTILES.items()])]),
            html.Button("Run dissection", id="filters-dissect-run", n_clicks=0),
        ], style=row),
        html.Div(f"Counts units of every hidden D layer (trained vs random init) that detect a class of the "
                 f"data's masks. Slow on CPU (a few minutes for 2,000 images), so it runs only when asked, on "
                 f"{DEFAULT_DISSECT_IMAGES} images by default (the CLI uses 2,000); results are cached on disk.",
                 id="filters-dissect-note", style=caption),
        dcc.Loading(html.Div(id="filters-dissect-output", style={"margin": "0.8em 0"})),
    ])


@callback(Output("filters-layer", "options"), Output("filters-layer", "value"),
          Input("filters-checkpoint", "value"), State("filters-layer", "value"), prevent_initial_call=True)
def update_layers(checkpoint, layer):
    """The chosen checkpoint's D layers; keep the layer when it still exists, else the last one."""
    options = _layer_options(checkpoint)
    names = [o["value"] for o in options]
    return options, layer if layer in names else (names[-1] if names else None)


@callback(Output("url", "search", allow_duplicate=True), Input("filters-checkpoint", "value"),
          Input("filters-layer", "value"), Input("filters-filters", "value"), Input("filters-images", "value"),
          Input("filters-seed", "value"), prevent_initial_call=True)
def update_url(checkpoint, layer, filters, images, seed) -> str:
    """Write the page state into the query string, so the view can be shared."""
    state = {k: v for k, v in (("checkpoint", checkpoint), ("layer", layer), ("filters", filters),
                               ("images", images), ("seed", seed)) if v is not None}
    return "?" + urlencode(state) if state else ""


@callback(Output("filters-error", "children"), Output("filters-fig5", "src"), Output("filters-fig5", "style"),
          Output("filters-fig5-caption", "children"), Input("filters-checkpoint", "value"), Input("filters-layer", "value"), Input("filters-filters", "value"),
          Input("filters-images", "value"))
def render_fig5(checkpoint, layer, filters, images):
    """(error, Fig. 5 PNG data URI, its style, caption); on bad input only the error. The seed is not an
    input: Fig. 5 does not depend on it, so changing it redraws only the G feature maps. The PNG is sent
    at scale 1 and shown 2x by the browser (a quarter of the pixels to encode)."""
    try:
        path, units, count = checked_checkpoint(checkpoint), parse_filters(filters), parse_count(images)
        bundle = app_state()[1].get(path)
        if bundle.D is None:
            raise ValueError(f"this page needs a discriminator; {path} has none (imported without --netD)")
        if not layer:
            raise ValueError(f"no layer chosen; layers are {', '.join(bundle.D.feature_layers)}")
        check_units(bundle.D, layer, units)
        if len(units) > MAX_FILTERS:
            raise ValueError(f"at most {MAX_FILTERS} filters at a time, got {len(units)}")
        responses, n_probe = fig5_responses(bundle, layer, units, count, TOP, RANDOM_SEED, cache_dir())
        picture = fig5_grid(responses)
        fig5, style = image_src(picture), upscaled_style(picture, 2)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        return error_box(one_line(exc)), None, PIXELATED_STYLE, ""
    caption = (f"{layer}, filters {', '.join(map(str, units))}: top {TOP} of {n_probe} training images per filter "
               f"(rows: images, guided-backprop maps); left trained D, right random init (seed {RANDOM_SEED})")
    return None, fig5, style, caption


@callback(Output("filters-gmaps-error", "children"), Output("filters-gmaps", "src"),
          Output("filters-gmaps-caption", "children"), Input("filters-checkpoint", "value"),
          Input("filters-seed", "value"))
def render_gmaps(checkpoint, seed):
    """(error, G feature maps PNG data URI, caption) for latent (seed, 0); on bad input only the error."""
    try:
        path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
        bundle = app_state()[1].get(path)
        z = latents(bundle.config, seed, [0], device=bundle.device)
        gmaps = image_src(feature_map_grid(generator_feature_maps(bundle.G, z, channels=GMAP_CHANNELS),
                                           n=GMAP_CHANNELS), scale=2)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        return error_box(one_line(exc)), None, ""
    return None, gmaps, f"every G layer's feature maps (first {GMAP_CHANNELS} per layer) for latent (seed {seed}, 0)"


def detector_html_table(rows: list[dict]) -> html.Table:
    head = list(rows[0]) if rows else []
    cell = {"padding": "0.2em 0.6em", "borderBottom": "1px solid #eee", "textAlign": "right"}
    return html.Table([html.Thead(html.Tr([html.Th(h, style=cell) for h in head])),
                       html.Tbody([html.Tr([html.Td(str(row[h]), style=cell) for h in head]) for row in rows])],
                      className="dcgan-detectors", style={"borderCollapse": "collapse", "fontSize": "0.9em"})


@callback(Output("filters-dissect-output", "children"), Input("filters-dissect-run", "n_clicks"),
          State("filters-checkpoint", "value"), State("filters-dissect-images", "value"),
          State("filters-dissect-quantile", "value"), prevent_initial_call=True)
def run_dissection(n_clicks, checkpoint, images, quantile=QUANTILE):
    """The detector table and bar chart (trained vs random D), from the cache or computed now."""
    if not n_clicks:
        return dash.no_update
    try:
        count = parse_count(images, "dissection images")
        if not isinstance(quantile, (int, float)) or quantile not in DISSECT_QUANTILES:
            raise ValueError(f"unit threshold must be one of {list(DISSECT_QUANTILES)}, got {quantile!r}")
        bundle = app_state()[1].get(checked_checkpoint(checkpoint))
        results = dissect_checkpoint(bundle, count, RANDOM_SEED, cache_dir(), quantile=float(quantile))
    except Exception as exc:  # noqa: BLE001 - e.g. data without masks: one line, never a traceback
        return error_box(one_line(exc))
    r = results[0]
    note = (f"Detectors: units whose best class has IoU > {r.iou_threshold} (threshold P(a > T_k) = {r.quantile}, "
            f"{r.n_images} images; random init seed {RANDOM_SEED}).")
    return html.Div([detector_html_table(detector_table(results)), html.P(note, style={"color": "#666"}),
                     dcc.Graph(figure=detector_figure(results))])
