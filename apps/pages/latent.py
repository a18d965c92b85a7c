"""Latent space: walks between seeded latents (paper section 6.1) and concept arithmetic on
averaged exemplar latents (section 6.3).

The same library calls as the CLI (``dcgan_viz.analysis.latent``); this module only wires
inputs to them. Page state lives in the URL:
``/latent?checkpoint=<path>&seed=0&points=4&steps=7&method=slerp&A=0:12,0:40&B=...&C=...&expr=A-B%2BC&neighbours=4``.
Concepts are named by exemplar latents, ``seed:index`` pairs; the expression is parsed by
``parse_expression`` (names joined by + and -), never evaluated as Python.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import dash
import plotly.graph_objects as go
import torch
from dash import Input, Output, callback, dcc, html

from apps.app import app_state
from apps.components import CAPTION_STYLE, PIXELATED_STYLE, ROW_STYLE, checked_checkpoint, checkpoint_dropdown, error_box, find_checkpoints, image_src, parse_seed, seed_input, one_line, parse_int
from dcgan_viz.analysis.latent import (METHODS, concept_vector, evaluate_expression, interpolate, noise_neighbours,
                                       parse_expression, walk_smoothness)
from dcgan_viz.images import to_uint8
from dcgan_viz.latents import latents
from dcgan_viz.plots.latent import rows_grid, step_figure, walk_grid
from dcgan_viz.sampling import generate_from_z

dash.register_page(__name__, path="/latent", name="Latent space", title="dcgan-viz: latent space", order=2)

DEFAULT_POINTS, MIN_POINTS, MAX_POINTS = 4, 2, 16
DEFAULT_STEPS, MAX_STEPS = 7, 16
DEFAULT_METHOD = "slerp"
CONCEPTS = ("A", "B", "C")
DEFAULT_CONCEPTS = {"A": "0:12, 0:40, 0:77", "B": "0:3, 0:25, 0:58", "C": "0:5, 0:31, 0:90"}
DEFAULT_EXPRESSION = "A - B + C"
DEFAULT_NEIGHBOURS, MAX_NEIGHBOURS = 4, 16
MAX_EXEMPLARS = 16
NOISE_SCALE = 0.25
NOISE_SEED = 0
_PAIR = re.compile(r"^(\d+)\s*:\s*(\d+)$")


def parse_pairs(text, name: str = "concept") -> list[tuple[int, int]]:
    """``"0:12, 3:4"`` -> [(0, 12), (3, 4)]: exemplar latents as seed:index pairs (non-negative
    whole numbers, at most MAX_EXEMPLARS); anything else raises a one-line ValueError."""
    if text is None or not str(text).strip():
        raise ValueError(f"{name}: no exemplars; expected seed:index pairs like 0:12, 0:40")
    pairs = []
    for item in str(text).split(","):
        m = _PAIR.match(item.strip())
        if m is None:
            raise ValueError(f"{name}: expected seed:index pairs like 0:12, 0:40 (whole numbers >= 0), "
                             f"got {item.strip()!r}")
        seed, index = int(m.group(1)), int(m.group(2))
        if seed >= 2**62 or index >= 2**62:
            raise ValueError(f"{name}: seed and index must be below 2**62, got {item.strip()!r}")
        pairs.append((seed, index))
    if len(pairs) > MAX_EXEMPLARS:
        raise ValueError(f"{name}: at most {MAX_EXEMPLARS} exemplars, got {len(pairs)}")
    return pairs


def _keep(value, parse):
    """The parsed value, or the raw one when bad (the page's callback says what is wrong)."""
    try:
        return parse(value)
    except ValueError:
        return value


def _number_input(id: str, value, minimum: int, maximum: int) -> dcc.Input:
    return dcc.Input(id=id, type="number", min=minimum, max=maximum, step=1, value=value, debounce=True,
                     style={"width": "5em"})


def _text_input(id: str, value, width: str = "14em", placeholder: str = "") -> dcc.Input:
    return dcc.Input(id=id, type="text", value=value, debounce=True, placeholder=placeholder,
                     style={"width": width})


def layout(checkpoint: str | None = None, seed: str | None = None, points: str | None = None,
           steps: str | None = None, method: str | None = None, A: str | None = None, B: str | None = None,
           C: str | None = None, expr: str | None = None, neighbours: str | None = None, **_query) -> html.Div:
    dirs, _ = app_state()
    if checkpoint is None:
        found = find_checkpoints(dirs)
        checkpoint = str(found[0]) if found else None
    seed = _keep(0 if seed is None else seed, parse_seed)
    points = _keep(DEFAULT_POINTS if points is None else points,
                   lambda v: parse_int(v, "anchor points", MIN_POINTS, MAX_POINTS))
    steps = _keep(DEFAULT_STEPS if steps is None else steps, lambda v: parse_int(v, "steps between", 0, MAX_STEPS))
    neighbours = _keep(DEFAULT_NEIGHBOURS if neighbours is None else neighbours,
                       lambda v: parse_int(v, "noise neighbours", 0, MAX_NEIGHBOURS))
    method = DEFAULT_METHOD if method is None else method
    methods = [{"label": m, "value": m} for m in METHODS]
    if method not in METHODS:
        methods.append({"label": method, "value": method})  # kept: render_walk says what is wrong
    concepts = {"A": A, "B": B, "C": C}
    row, caption, pixelated = ROW_STYLE, CAPTION_STYLE, PIXELATED_STYLE
    return html.Div([
        html.H2("Latent space"),
        html.Div([
            checkpoint_dropdown("latent-checkpoint", dirs, checkpoint),
            seed_input("latent-seed", seed),
            html.Label(["anchor points ", _number_input("latent-points", points, MIN_POINTS, MAX_POINTS)]),
            html.Label(["steps between ", _number_input("latent-steps", steps, 0, MAX_STEPS)]),
            html.Label(["method ", dcc.RadioItems(id="latent-method", options=methods, value=method, inline=True)],
                       style={"display": "flex", "gap": "0.4em", "alignItems": "center"}),
        ], style=row),
        html.H3("Walking the latent space"),
        html.Div(id="latent-walk-error", style={"margin": "0.8em 0"}),
        dcc.Loading(html.Div([
            html.Img(id="latent-walk", style=pixelated),
            html.Div(id="latent-walk-caption", style=caption),
            dcc.Graph(id="latent-walk-steps", style={"height": "260px", "maxWidth": "48em"}),
        ])),
        html.H3("Concept arithmetic"),
        html.Div([
            *[html.Label([f"{name} = ", _text_input(f"latent-concept-{name}",
                                                    DEFAULT_CONCEPTS[name] if concepts[name] is None else concepts[name],
                                                    placeholder="seed:index, e.g. 0:12, 0:40")])
              for name in CONCEPTS],
        ], style=row),
        html.Div([
            html.Label(["expression ", _text_input("latent-expression",
                                                   DEFAULT_EXPRESSION if expr is None else expr, "10em",
                                                   "e.g. A - B + C")]),
            html.Label(["noise neighbours ", _number_input("latent-neighbours", neighbours, 0, MAX_NEIGHBOURS)]),
        ], style=row),
        html.Div(id="latent-arith-error", style={"margin": "0.8em 0"}),
        dcc.Loading(html.Div([
            html.Img(id="latent-arith", style=pixelated),
            html.Div(id="latent-arith-caption", style=caption),
        ])),
    ])


@callback(Output("url", "search", allow_duplicate=True), Input("latent-checkpoint", "value"),
          Input("latent-seed", "value"), Input("latent-points", "value"), Input("latent-steps", "value"),
          Input("latent-method", "value"), Input("latent-concept-A", "value"), Input("latent-concept-B", "value"),
          Input("latent-concept-C", "value"), Input("latent-expression", "value"), Input("latent-neighbours", "value"),
          prevent_initial_call=True)
def update_url(checkpoint, seed, points, steps, method, a, b, c, expr, neighbours) -> str:
    """Write the page state into the query string, so the view can be shared."""
    state = {k: v for k, v in (("checkpoint", checkpoint), ("seed", seed), ("points", points), ("steps", steps),
                               ("method", method), ("A", a), ("B", b), ("C", c), ("expr", expr),
                               ("neighbours", neighbours)) if v is not None}
    return "?" + urlencode(state) if state else ""


@callback(Output("latent-walk-error", "children"), Output("latent-walk", "src"), Output("latent-walk-steps", "figure"),
          Output("latent-walk-caption", "children"), Input("latent-checkpoint", "value"), Input("latent-seed", "value"),
          Input("latent-points", "value"), Input("latent-steps", "value"), Input("latent-method", "value"))
def render_walk(checkpoint, seed, points, steps, method):
    """(error, walk grid PNG data URI, step-change figure, caption); on bad input only the error."""
    try:
        path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
        k = parse_int(points, "anchor points", MIN_POINTS, MAX_POINTS)
        s = parse_int(steps, "steps between", 0, MAX_STEPS)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        bundle = app_state()[1].get(path)
        anchors = latents(bundle.config, seed, k, device=bundle.device)
        result = walk_smoothness(bundle.G, interpolate(anchors, s, method))
        images = result.images.numpy()
        walk_src = image_src(walk_grid(images, k, s), scale=2)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        return error_box(one_line(exc)), None, go.Figure(), ""
    caption = (f"{method} through latents (seed {seed}, 0..{k - 1}), {s} steps between anchors: one row per segment, "
               f"{len(images)} images; spike ratio {result.spike_ratio:.2f} (max / median step change; about 1-3 "
               f"for a smooth walk, large for a sharp transition)")
    return None, walk_src, step_figure(result.step_change, s), caption


def parse_concepts(texts: dict[str, str | None]) -> dict[str, list[tuple[int, int]]]:
    """Concept name -> exemplar pairs; an empty box leaves the concept undefined."""
    return {name: parse_pairs(text, f"concept {name}") for name, text in texts.items()
            if text is not None and str(text).strip()}


@callback(Output("latent-arith-error", "children"), Output("latent-arith", "src"),
          Output("latent-arith-caption", "children"), Input("latent-checkpoint", "value"),
          Input("latent-concept-A", "value"), Input("latent-concept-B", "value"), Input("latent-concept-C", "value"),
          Input("latent-expression", "value"), Input("latent-neighbours", "value"))
def render_arithmetic(checkpoint, a, b, c, expr, neighbours):
    """(error, grid PNG data URI, caption): one row of exemplar samples per concept in the expression,
    then the result and its noise neighbours; on bad input only the error."""
    try:
        path = checked_checkpoint(checkpoint)
        exemplars = parse_concepts({"A": a, "B": b, "C": c})
        terms = parse_expression(expr)
        n = parse_int(neighbours, "noise neighbours", 0, MAX_NEIGHBOURS)
        bundle = app_state()[1].get(path)
        cfg, device = bundle.config, bundle.device
        used = [name for name in CONCEPTS if name in exemplars and name in {t for _, t in terms}]
        vectors = {name: concept_vector(cfg, pairs, device) for name, pairs in exemplars.items()}
        z = evaluate_expression(terms, vectors)
        near = noise_neighbours(z, n, NOISE_SCALE, NOISE_SEED, (-1.0, 1.0) if cfg.z_dist == "uniform" else None)
        rows = [torch.cat([latents(cfg, s, [i], device=device) for s, i in exemplars[name]]) for name in used]
        rows.append(torch.cat([z.reshape(1, -1), near]))
        images = [to_uint8(generate_from_z(bundle.G, r)).numpy() for r in rows]
        src = image_src(rows_grid(images), scale=2)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        return error_box(one_line(exc)), None, ""
    expression = " ".join(f"{'-' if sign < 0 else '+'} {name}" for sign, name in terms).removeprefix("+ ")
    caption = (f"rows: the exemplars of {', '.join(used)} (their mean is the concept vector); last row: "
               f"{expression}, then {n} noise neighbours (uniform noise ±{NOISE_SCALE}, seed {NOISE_SEED})")
    return None, src, caption
