"""Object removal (paper section 6.1): draw boxes on generated samples, fit the window probe,
drop the units it picks and compare; or fit from the segmenter's automatic labels; the ACE
curve per unit ranking; insertion by drawing where an object should appear.

The same library calls as ``dcgan-viz forget`` (``dcgan_viz.analysis.ablation``); this module
only wires inputs to them. Page state lives in the URL:
``/removal?checkpoint=<path>&seed=0&layer=conv3&mode=draw&k=8``. Ablation always runs on a
private copy of the cached generator, so concurrent requests (and the cached model) never see
another request's hooks.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import dash
import numpy as np
import plotly.graph_objects as go
import torch
from dash import Input, Output, State, callback, dcc, html

from apps.app import app_state
from apps.components import (CAPTION_STYLE, PIXELATED_STYLE, ROW_STYLE, checked_checkpoint, checkpoint_dropdown,
                             error_box, find_checkpoints, image_src, one_line, parse_seed, seed_input)
from apps.pages.filters import cache_dir
from dcgan_viz.analysis import ablation as A
from dcgan_viz.analysis.forgetting import forget_experiment
from dcgan_viz.images import grid, to_uint8
from dcgan_viz.latents import latents
from dcgan_viz.plots.ablation import removal_figure
from dcgan_viz.plots.style import side_by_side

dash.register_page(__name__, path="/removal", name="Object removal", title="dcgan-viz: object removal", order=10)

MODES = {"draw": "draw boxes, remove", "auto": "automatic labels, remove", "insert": "insert (draw where)"}
DEFAULT_MODE = "draw"
DEFAULT_CLASS = "window"
GRID_N, GRID_NROW, PAD = 16, 4, 2          # the drawing grid: latents (seed, 0..15), 4x4, grid() padding
COMPARE_N, COMPARE_NROW = 64, 8            # the with/without grids: latents (seed, 0..63), 8x8
N_FIT = 200                                # latents (seed + 1, 0..N_FIT-1) for automatic labels / dissection
DEFAULT_N, MAX_N = 200, 5000               # ACE evaluation latents
COUNT_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4)  # units dropped, as fractions of the layer
_BOX_KEYS = ("x0", "y0", "x1", "y1")
_EDIT = re.compile(r"^shapes\[(\d+)\]\.(x0|y0|x1|y1)$")


# ---------------------------------------------------------------------------------------------
# Pure helpers (tested directly)


def default_layer(G) -> str:
    """The CLI's default layer: the second-highest hidden conv layer (conv3 of a 64 px G)."""
    hidden = A.hidden_layers(G)
    return hidden[-2] if len(hidden) >= 2 else hidden[-1]


def parse_k(value, n_units: int) -> int | None:
    """Top-k units: None/empty -> None (every unit with probe weight > 0), else a whole number in
    1..n_units; anything else raises a one-line ValueError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
        k = int(number)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"k must be empty (weight > 0) or a whole number in 1..{n_units}, got {value!r}") from None
    if k != number or not 1 <= k <= n_units:
        raise ValueError(f"k must be empty (weight > 0) or a whole number in 1..{n_units}, got {value!r}")
    return k


def parse_n(value) -> int:
    """ACE latents: a whole number in 1..MAX_N, else ValueError."""
    try:
        number = float(value)
        n = int(number)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"latents must be a whole number in 1..{MAX_N}, got {value!r}") from None
    if n != number or not 1 <= n <= MAX_N:
        raise ValueError(f"latents must be a whole number in 1..{MAX_N}, got {value!r}")
    return n


def select_units(weights: np.ndarray | list[float], k: int | None) -> list[int]:
    """Probe weights (C,) -> unit indices by descending weight: the top ``k``, or (k None) every
    unit with weight > 0."""
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(-w, kind="stable")
    if k is None:
        return [int(u) for u in order if w[u] > 0]
    return [int(u) for u in order[:k]]


def removal_counts(n_units: int) -> list[int]:
    """Numbers of units dropped on the ACE curve: fractions of the layer (4..32 of 128 units)."""
    return sorted({min(n_units, max(1, round(f * n_units))) for f in COUNT_FRACTIONS})


def shapes_from_relayout(relayout: dict | None, shapes: list[dict] | None) -> list[dict] | None:
    """Plotly ``relayoutData`` -> the drawn rectangles [{x0, y0, x1, y1}] in grid-image pixels, or
    None when the event does not touch the shapes. Handles a new list (``shapes``) and edits of one
    corner (``shapes[i].x0``)."""
    if not relayout or not isinstance(relayout, dict):
        return None
    if "shapes" in relayout:
        out = []
        drawn = relayout["shapes"] if isinstance(relayout["shapes"], list) else []
        for s in drawn:
            if isinstance(s, dict) and s.get("type", "rect") == "rect" and all(_finite(s.get(k)) for k in _BOX_KEYS):
                out.append({k: float(s[k]) for k in _BOX_KEYS})
        return out
    edits = [(m, v) for key, v in relayout.items() if isinstance(key, str) and (m := _EDIT.match(key)) and _finite(v)]
    if not edits:
        return None
    out = [dict(s) for s in shapes if isinstance(s, dict)] if isinstance(shapes, list) else []
    for m, v in edits:
        i = int(m.group(1))
        if i < len(out):
            out[i][m.group(2)] = float(v)
    return out


def _finite(value) -> bool:
    """A real, finite number (plotly sends box corners as numbers)."""
    try:
        return not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def boxes_from_shapes(shapes: list[dict] | None, seed: int, size: int, n: int = GRID_N, nrow: int = GRID_NROW,
                      pad: int = PAD) -> list[dict]:
    """Rectangles in the drawing grid's pixel coordinates -> ``masks_from_boxes`` entries
    ``[{seed, index, boxes: [[x0, y0, x1, y1], ...]}]`` in each sample's own pixels (size x size).

    A box belongs to the sample under its centre; it may overhang that sample by at most the
    grid padding (clipped), otherwise (or centre outside every sample) a one-line ValueError."""
    if not shapes:
        raise ValueError("no boxes drawn yet: drag a rectangle over an object in the samples above")
    rows = math.ceil(n / nrow)
    entries: dict[int, list[list[int]]] = {}
    for j, s in enumerate(shapes, start=1):
        try:
            x0, x1 = sorted((float(s["x0"]), float(s["x1"])))
            y0, y1 = sorted((float(s["y0"]), float(s["y1"])))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"box {j}: not a rectangle with x0, y0, x1, y1") from None
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        col, row = math.floor((cx - pad) / (size + pad)), math.floor((cy - pad) / (size + pad))
        ox, oy = pad + col * (size + pad), pad + row * (size + pad)
        index = row * nrow + col
        if not (0 <= col < nrow and 0 <= row < rows and index < n and cx - ox < size and cy - oy < size):
            raise ValueError(f"box {j} ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}) is outside the samples: "
                             f"draw it inside one sample")
        lx0, ly0, lx1, ly1 = (int(round(v)) for v in (x0 - ox, y0 - oy, x1 - ox, y1 - oy))
        if lx0 < -pad or ly0 < -pad or lx1 > size + pad or ly1 > size + pad:
            raise ValueError(f"box {j} crosses the edge of sample {index}: draw it inside one sample")
        box = [max(lx0, 0), max(ly0, 0), min(lx1, size), min(ly1, size)]
        if box[0] >= box[2] or box[1] >= box[3]:
            raise ValueError(f"box {j} on sample {index} is empty: drag a larger rectangle")
        entries.setdefault(index, []).append(box)
    return [{"seed": seed, "index": i, "boxes": b} for i, b in sorted(entries.items())]


# ---------------------------------------------------------------------------------------------
# Segmenter (automatic labels): found next to the checkpoint or under the app's checkpoint dirs

_SEGMENTERS: dict[Path, tuple[Any, list[str], str]] = {}
_SEG_LOCK = threading.Lock()


def find_segmenter(bundle, dirs: list[Path]) -> Path:
    """``<data source>-segmenter`` (e.g. checkpoints/rooms-segmenter) beside the checkpoint or in
    (or beside) one of ``dirs``, for the checkpoint's image size; else a one-line ValueError."""
    name = f"{bundle.data.source}-segmenter"
    candidates = [Path(bundle.path).parent / name] + [Path(d) / name for d in dirs] + [Path(d).parent / name for d in dirs]
    size = bundle.config.image_size
    for c in candidates:
        try:
            meta = json.loads((c / "config.json").read_text())
        except (OSError, ValueError):
            continue
        seg_size = (meta.get("data_spec") or {}).get("size")
        if meta.get("kind") == "segmenter" and seg_size in (None, size):
            return c
    raise ValueError(f"no segmenter for this checkpoint's data ({bundle.data.source}, {size} px): automatic labels "
                     f"need a {name} evaluator next to the checkpoint; draw boxes instead")


def load_segmenter(path: Path, device) -> tuple[Any, list[str], str]:
    """(segmenter in eval mode, class names, short weights hash), loaded once per path."""
    from dcgan_viz.evaluation import load_evaluator

    key = Path(path).resolve()
    with _SEG_LOCK:
        hit = _SEGMENTERS.get(key)
        if hit is None:
            model, meta = load_evaluator(key, device=device, kind="segmenter")
            classes = list(meta.get("classes") or A.ROOM_CLASSES)
            digest = hashlib.sha256()
            for f in sorted(key.glob("*.safetensors")):
                digest.update(f.read_bytes())
            hit = _SEGMENTERS[key] = (model, classes, digest.hexdigest()[:16])
        return hit


def _segmenter_for(bundle) -> tuple[Any, list[str], str]:
    dirs, _ = app_state()
    return load_segmenter(find_segmenter(bundle, dirs), bundle.device)


def segmenter_classes(checkpoint: str | None) -> tuple[list[str], str | None]:
    """(class names, None) when the checkpoint has a segmenter, else ([], one-line reason)."""
    try:
        bundle = app_state()[1].get(checked_checkpoint(checkpoint))
        dirs, _ = app_state()
        path = find_segmenter(bundle, dirs)
        meta = json.loads((path / "config.json").read_text())
        return list(meta.get("classes") or A.ROOM_CLASSES), None
    except Exception as exc:  # noqa: BLE001 - the page shows the reason as one line
        return [], one_line(exc)


# ---------------------------------------------------------------------------------------------
# Computation


def _private_G(bundle):
    """A private eval-mode copy of the cached G (ablation hooks never reach the shared model)."""
    return copy.deepcopy(bundle.G).eval()


def _images(G, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(G(z)).numpy()


def sample_grid(bundle, seed: int) -> np.ndarray:
    """uint8 (H', W', C) grid of latents (seed, 0..GRID_N-1), GRID_NROW per row, PAD padding."""
    z = latents(bundle.config, seed, GRID_N, device=bundle.device)
    return grid(_images(bundle.G, z), nrow=GRID_NROW, pad=PAD)


def grid_figure(image: np.ndarray) -> go.Figure:
    """The sample grid as a plotly image in pixel coordinates (pixel i spans [i, i + 1]), with
    rectangle drawing as the drag mode."""
    h, w = image.shape[:2]
    fig = go.Figure(go.Image(source=image_src(image), x0=0.5, y0=0.5, dx=1, dy=1, hoverinfo="skip"))
    fig.update_layout(dragmode="drawrect", margin=dict(l=0, r=0, t=0, b=0), height=520, width=520,
                      newshape=dict(line=dict(color="#00e676", width=2), fillcolor="rgba(0,230,118,0.15)"),
                      xaxis=dict(visible=False, range=[0, w], fixedrange=True),
                      yaxis=dict(visible=False, range=[h, 0], fixedrange=True, scaleanchor="x"))
    return fig


def fit_from_boxes(bundle, entries: list[dict], layer: str) -> A.Probe:
    """The window probe on ``layer`` from drawn boxes (entries as ``masks_from_boxes`` takes)."""
    A.check_layer(bundle.G, layer)
    keys, masks = A.masks_from_boxes(entries, bundle.config.image_size)
    z = torch.cat([latents(bundle.config, s, [i], device=bundle.device) for s, i in keys])
    return A.fit_window_probe(bundle.G, z, masks, layer, seed=0)


def auto_masks(bundle, segmenter, classes: list[str], class_name: str, fit_seed: int,
               n_fit: int = N_FIT) -> tuple[torch.Tensor, torch.Tensor]:
    """(latents (n_fit, nz), bool class masks (n_fit, S, S)) of latents (fit_seed, 0..n_fit-1)."""
    if class_name not in classes:
        raise ValueError(f"unknown class {class_name!r}; the segmenter's classes are {classes}")
    z = latents(bundle.config, fit_seed, n_fit, device=bundle.device)
    _, labels = A.generate_and_label(bundle.G, segmenter, z)
    masks = labels == classes.index(class_name)
    if not bool(masks.any()):
        raise ValueError(f"the segmenter labels no {class_name!r} pixels in {n_fit} samples; nothing to probe")
    return z, masks


def probe_record(probe: A.Probe, checkpoint: str, source: str) -> dict:
    """The probe as JSON for a dcc.Store (weights (C,) as a list)."""
    return {"checkpoint": checkpoint, "layer": probe.layer, "weights": [float(w) for w in probe.weights],
            "accuracy": probe.accuracy, "n_positive": probe.n_positive, "n_negative": probe.n_negative,
            "source": source}


def compare_images(bundle, seed: int, layer: str, units: list[int], box: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, S, S, C) samples of latents (seed, 0..COMPARE_N-1) without and with the change:
    ``units`` dropped (box None) or set to their 99th-percentile activation inside ``box``
    (insertion). Runs on a private copy of G; the cached G is untouched."""
    G = _private_G(bundle)
    z = latents(bundle.config, seed, COMPARE_N, device=bundle.device)
    before = _images(G, z)
    if box is None:
        with A.ablate(G, {layer: units}):
            after = _images(G, z)
    else:
        _, mask = A.masks_from_boxes([{"seed": seed, "index": 0, "boxes": [box]}], bundle.config.image_size)
        with A.ablate(G, {layer: units}, value=A.unit_percentiles(G, z, layer, units), mask=torch.as_tensor(mask[0])):
            after = _images(G, z)
    return before, after


def removal_result(bundle, segmenter, classes: list[str], seg_key: str, class_name: str, layer: str, n: int,
                   seed: int, probe_weights: list[float] | None, directory: str | Path | None,
                   progress: Callable[[int, int], None] = lambda i, total: None) -> tuple[A.RemovalResult, str]:
    """(ACE result of rankings probe / optimized / greedy / dissection / random over latents (seed, 0..n-1), probe
    source). The probe is ``probe_weights`` when given, else fitted on the segmenter's labels of
    latents (seed + 1, 0..N_FIT-1); the optimised mask, greedy selection and dissection use those too. Cached under ``directory``."""
    G = bundle.G
    A.check_layer(G, layer)
    if class_name not in classes:
        raise ValueError(f"unknown class {class_name!r}; the segmenter's classes are {classes}")
    n_units = G.layer_channels()[layer]
    if probe_weights is not None and len(probe_weights) != n_units:
        raise ValueError(f"the fitted probe has {len(probe_weights)} weights, {layer} has {n_units} units: fit again")
    fit_seed = seed + 1
    probe = None
    if probe_weights is not None:
        weights = np.asarray(probe_weights, np.float32)
        probe = A.Probe(layer, weights, np.argsort(-weights, kind="stable"), float("nan"), 0, 0)
    source = "drawn/fitted probe" if probe is not None else f"segmenter labels ({N_FIT} latents, seed {fit_seed})"
    exp = forget_experiment(bundle, segmenter, classes, class_name, layer, removal_counts(n_units), n, N_FIT, seed,
                            fit_seed, segmenter_key=seg_key, cache_dir=directory, probe=probe, progress=progress)
    return exp.removal, source



# ---------------------------------------------------------------------------------------------
# Layout


def _layer_options(checkpoint: str | None) -> tuple[list[dict[str, str]], str | None]:
    try:
        G = app_state()[1].get(checked_checkpoint(checkpoint)).G
    except Exception:  # noqa: BLE001 - no options; the callbacks say what is wrong
        return [], None
    return [{"label": name, "value": name} for name in A.hidden_layers(G)], default_layer(G)


def _keep(value, parse):
    try:
        return parse(value)
    except ValueError:
        return value


def layout(checkpoint: str | None = None, seed: str | None = None, layer: str | None = None,
           mode: str | None = None, k: str | None = None, **_query) -> html.Div:
    dirs, _ = app_state()
    if checkpoint is None:
        found = find_checkpoints(dirs)
        checkpoint = str(found[0]) if found else None
    options, default = _layer_options(checkpoint)
    if layer is None:
        layer = default
    elif layer not in {o["value"] for o in options}:
        options = [*options, {"label": layer, "value": layer}]  # kept: the callbacks say what is wrong
    seed = _keep(0 if seed is None else seed, parse_seed)
    mode = DEFAULT_MODE if mode is None else mode
    modes = [{"label": label, "value": m} for m, label in MODES.items()]
    if mode not in MODES:
        modes.append({"label": mode, "value": mode})
    row, caption = ROW_STYLE, CAPTION_STYLE
    return html.Div([
        html.H2("Object removal"),
        html.Div([
            checkpoint_dropdown("removal-checkpoint", dirs, checkpoint),
            seed_input("removal-seed", seed),
            html.Label(["G layer ", dcc.Dropdown(id="removal-layer", options=options, value=layer, clearable=False,
                                                 style={"minWidth": "8em"})],
                       style={"display": "flex", "gap": "0.4em", "alignItems": "center"}),
            html.Label(["units: top k ", dcc.Input(id="removal-k", type="number", min=1, step=1, value=k,
                                                   debounce=True, placeholder="w > 0", style={"width": "5em"})]),
        ], style=row),
        html.Div([
            html.Label(["mode ", dcc.RadioItems(id="removal-mode", options=modes, value=mode, inline=True)],
                       style={"display": "flex", "gap": "0.4em", "alignItems": "center"}),
            html.Label(["class ", dcc.Dropdown(id="removal-class", options=[], value=None, clearable=False,
                                               style={"minWidth": "8em"})],
                       style={"display": "flex", "gap": "0.4em", "alignItems": "center"}),
            html.Span(id="removal-class-note", style=caption),
        ], style=row),
        html.Div("Draw: drag rectangles over an object (e.g. windows) in the samples, then fit the probe. "
                 "Automatic: the segmenter labels the class in other latents. Insert: fit first, then draw "
                 "where the object should appear. k empty = every unit with probe weight > 0.", style=caption),
        html.Div(id="removal-grid-error", style={"margin": "0.5em 0"}),
        dcc.Store(id="removal-shapes", data=[]),
        dcc.Store(id="removal-probe", data=None),
        dcc.Graph(id="removal-grid", figure=go.Figure(),
                  config={"modeBarButtonsToAdd": ["drawrect", "eraseshape"], "displaylogo": False,
                          "scrollZoom": False}, style={"width": "520px", "height": "520px"}),
        html.Div([
            html.Button("Fit probe", id="removal-fit", n_clicks=0),
            html.Button("Clear boxes", id="removal-clear", n_clicks=0),
            dcc.Checklist(id="removal-drop", options=[{"label": " drop units (insert: set them high)",
                                                        "value": "on"}], value=["on"], inline=True),
        ], style=row),
        html.Div(id="removal-fit-error", style={"margin": "0.5em 0"}),
        dcc.Loading(html.Div(id="removal-units", className="removal-units")),
        html.Div(id="removal-compare-error", style={"margin": "0.5em 0"}),
        dcc.Loading(html.Div([
            html.Img(id="removal-compare", style=PIXELATED_STYLE),
            html.Div(id="removal-compare-caption", style=caption),
        ])),
        html.H3("Removal curve (ACE)"),
        html.Div([
            html.Label(["latents ", dcc.Input(id="removal-n", type="number", min=1, max=MAX_N, step=1,
                                              value=DEFAULT_N, debounce=True, style={"width": "6em"})]),
            html.Button("Run removal curve", id="removal-ace-run", n_clicks=0),
            html.Progress(id="removal-ace-progress", value="0", max="5"),
        ], style=row),
        html.Div("Fraction of the class's pixels (segmenter labels) removed when the top units of each ranking "
                 "are dropped — probe (the fitted one, or automatic labels), GAN Dissection's optimised ablation mask, "
                 "network dissection IoU, random — "
                 "and the largest change of another class. Needs the segmenter; cached on disk.", style=caption),
        html.Div(id="removal-ace-output", style={"margin": "0.8em 0"}),
    ])


# ---------------------------------------------------------------------------------------------
# Callbacks


@callback(Output("removal-layer", "options"), Output("removal-layer", "value"),
          Input("removal-checkpoint", "value"), State("removal-layer", "value"), prevent_initial_call=True)
def update_layers(checkpoint, layer):
    """The chosen checkpoint's hidden G layers; keep the layer when it still exists, else the default."""
    options, default = _layer_options(checkpoint)
    return options, layer if isinstance(layer, str) and layer in {o["value"] for o in options} else default


@callback(Output("removal-class", "options"), Output("removal-class", "value"), Output("removal-class-note", "children"),
          Input("removal-checkpoint", "value"), State("removal-class", "value"))
def update_classes(checkpoint, current):
    """The segmenter's classes (default window), or a note that automatic labels are unavailable."""
    classes, reason = segmenter_classes(checkpoint)
    if not classes:
        return [], None, f"automatic labels unavailable: {reason}"
    value = current if current in classes else (DEFAULT_CLASS if DEFAULT_CLASS in classes else classes[0])
    return [{"label": c, "value": c} for c in classes], value, ""


@callback(Output("url", "search", allow_duplicate=True), Input("removal-checkpoint", "value"),
          Input("removal-seed", "value"), Input("removal-layer", "value"), Input("removal-mode", "value"),
          Input("removal-k", "value"), prevent_initial_call=True)
def update_url(checkpoint, seed, layer, mode, k) -> str:
    """Write the page state into the query string, so the view can be shared."""
    state = {key: v for key, v in (("checkpoint", checkpoint), ("seed", seed), ("layer", layer), ("mode", mode),
                                   ("k", k)) if v is not None and v != ""}
    return "?" + urlencode(state) if state else ""


@callback(Output("removal-grid-error", "children"), Output("removal-grid", "figure"), Output("removal-shapes", "data"),
          Input("removal-checkpoint", "value"), Input("removal-seed", "value"), Input("removal-mode", "value"),
          Input("removal-clear", "n_clicks"))
def render_grid(checkpoint, seed, mode, _clear):
    """(error, drawing-grid figure of latents (seed, 0..15), no shapes); a new grid drops old boxes."""
    try:
        path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        fig = grid_figure(sample_grid(app_state()[1].get(path), seed))
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        return error_box(one_line(exc)), go.Figure(), []
    return None, fig, []


@callback(Output("removal-shapes", "data", allow_duplicate=True), Input("removal-grid", "relayoutData"),
          State("removal-shapes", "data"), prevent_initial_call=True)
def record_shapes(relayout, shapes):
    """Keep the drawn rectangles (grid pixels) in a store; other relayout events change nothing."""
    out = shapes_from_relayout(relayout, shapes)
    return dash.no_update if out is None else out


@callback(Output("removal-fit-error", "children"), Output("removal-probe", "data"), Input("removal-fit", "n_clicks"),
          State("removal-checkpoint", "value"), State("removal-seed", "value"), State("removal-layer", "value"),
          State("removal-mode", "value"), State("removal-class", "value"), State("removal-shapes", "data"),
          prevent_initial_call=True)
def fit_probe(n_clicks, checkpoint, seed, layer, mode, class_name, shapes):
    """(error, probe record): from the drawn boxes (draw) or the segmenter's labels (auto)."""
    if not n_clicks:
        return dash.no_update, dash.no_update
    try:
        path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
        bundle = app_state()[1].get(path)
        A.check_layer(bundle.G, layer)
        if mode == "draw":
            entries = boxes_from_shapes(shapes, seed, bundle.config.image_size)
            probe = fit_from_boxes(bundle, entries, layer)
            source = f"{sum(len(e['boxes']) for e in entries)} drawn box(es) on {len(entries)} sample(s)"
        elif mode == "auto":
            segmenter, classes, _ = _segmenter_for(bundle)
            z, masks = auto_masks(bundle, segmenter, classes, class_name, seed + 1)
            probe = A.fit_window_probe(bundle.G, z, masks, layer, seed=0)
            source = f"segmenter labels of {class_name!r} ({N_FIT} latents, seed {seed + 1})"
        elif mode == "insert":
            raise ValueError("in insert mode a drawn box marks where to insert: fit the probe in draw or "
                             "automatic mode first")
        else:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    except Exception as exc:  # noqa: BLE001
        return error_box(one_line(exc)), dash.no_update
    return None, probe_record(probe, str(path), source)


@callback(Output("removal-compare-error", "children"), Output("removal-units", "children"),
          Output("removal-compare", "src"), Output("removal-compare-caption", "children"),
          Input("removal-probe", "data"), Input("removal-drop", "value"), Input("removal-k", "value"),
          Input("removal-checkpoint", "value"), Input("removal-seed", "value"), Input("removal-layer", "value"),
          Input("removal-mode", "value"), Input("removal-shapes", "data"))
def render_compare(probe, drop, k, checkpoint, seed, layer, mode, shapes):
    """(error, units text, grid PNG data URI, caption): latents (seed, 0..63) with | without the
    chosen units (insert mode: before | after setting them high in the last drawn box)."""
    try:
        path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
        bundle = app_state()[1].get(path)
        A.check_layer(bundle.G, layer)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        n_units = bundle.G.layer_channels()[layer]
        count = parse_k(k, n_units)
        z = latents(bundle.config, seed, COMPARE_N, device=bundle.device)
        if not probe or probe.get("checkpoint") != str(path) or probe.get("layer") != layer:
            src = image_src(grid(_images(bundle.G, z), nrow=COMPARE_NROW), scale=2)
            return (None, "no probe fitted for this checkpoint and layer yet: draw boxes (or choose automatic "
                    "labels) and press Fit probe", src, f"latents (seed {seed}, 0..{COMPARE_N - 1})")
        units = select_units(probe["weights"], count)
        if not units:
            raise ValueError("no unit has a positive probe weight: set k")
        text = html.Div([
            html.Strong(f"{len(units)} of {n_units} {layer} units ({100 * len(units) / n_units:.1f}% of the layer)"),
            f": {', '.join(map(str, units[:64]))}{' …' if len(units) > 64 else ''}",
            html.Div(f"probe from {probe['source']}; training accuracy {probe['accuracy']:.3f} "
                     f"({probe['n_positive']} positive / {probe['n_negative']} negative positions)",
                     style=CAPTION_STYLE)])
        box = None
        if mode == "insert":
            if not shapes:
                raise ValueError("insert mode: draw a box where the object should appear")
            entries = boxes_from_shapes(shapes[-1:], seed, bundle.config.image_size)
            box = entries[0]["boxes"][0]
        if not drop:
            src = image_src(grid(_images(bundle.G, z), nrow=COMPARE_NROW), scale=2)
            return None, text, src, f"latents (seed {seed}, 0..{COMPARE_N - 1}); tick the box to compare"
        before, after = compare_images(bundle, seed, layer, units, box)
        src = image_src(side_by_side([grid(before, nrow=COMPARE_NROW), grid(after, nrow=COMPARE_NROW)]), scale=2)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        return error_box(one_line(exc)), None, None, ""
    if box is None:
        caption = f"latents (seed {seed}, 0..{COMPARE_N - 1}): left with, right without the {len(units)} units"
    else:
        caption = (f"latents (seed {seed}, 0..{COMPARE_N - 1}): left before, right after setting the {len(units)} "
                   f"units to their 99th-percentile activation inside box {box}")
    return None, text, src, caption


def ace_curve(set_progress: Callable[[tuple[str, str]], None], checkpoint, layer, class_name, n, seed, probe):
    """The ACE section: a figure and a note, or a one-line message (no segmenter, bad input)."""
    try:
        path, seed, count = checked_checkpoint(checkpoint), parse_seed(seed), parse_n(n)
        bundle = app_state()[1].get(path)
        A.check_layer(bundle.G, layer)
        segmenter, classes, seg_key = _segmenter_for(bundle)
        weights = probe["weights"] if probe and probe.get("checkpoint") == str(path) and probe.get("layer") == layer \
            else None
        result, source = removal_result(bundle, segmenter, classes, seg_key, class_name, layer, count, seed, weights,
                                        cache_dir(), lambda i, total: set_progress((str(i), str(total))))
        if weights is not None:
            source = f"the fitted probe ({probe.get('source', 'fitted')})"
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        return error_box(one_line(exc))
    note = (f"probe ranking from {source}; optimised mask, greedy selection and dissection IoU on {N_FIT} latents (seed {seed + 1}); random seed {seed}; "
            f"baseline {result.baseline_pixels.get(result.class_name)} {result.class_name} pixels")
    return html.Div([dcc.Graph(figure=removal_figure(result)), html.Div(note, style=CAPTION_STYLE)])


@callback(Output("removal-ace-output", "children"), Input("removal-ace-run", "n_clicks"),
          State("removal-checkpoint", "value"), State("removal-layer", "value"), State("removal-class", "value"),
          State("removal-n", "value"), State("removal-seed", "value"), State("removal-probe", "data"),
          background=True, prevent_initial_call=True,
          running=[(Output("removal-ace-run", "disabled"), True, False)],
          progress=[Output("removal-ace-progress", "value"), Output("removal-ace-progress", "max")])
def run_ace(set_progress, n_clicks, checkpoint, layer, class_name, n, seed, probe):
    """Background job: the removal curve with progress (see ``ace_curve``)."""
    if not n_clicks:
        return dash.no_update
    return ace_curve(set_progress, checkpoint, layer, class_name, n, seed, probe)
