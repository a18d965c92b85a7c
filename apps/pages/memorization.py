"""Memorization: does the generator copy its training set?

Pick a generated sample (seed + index, or click one in the grid) — or a training image, the
control, whose nearest neighbour is itself at distance 0 — and see its k nearest training images
in each feature space (pixels, D features, the evaluation classifier's features when one for the
checkpoint's data is found under the checkpoint dirs). The nearest-neighbour indexes over the
training set are built once and cached on disk (the same cache entries as ``dcgan-viz
memorization``). Buttons run the copy test (C_T, NN ratio, local copying, closest pairs) and the
training set's near-duplicate report; both are background jobs with progress, cached on disk.

The same library calls as the CLI (``dcgan_viz.analysis.memorization``, ``.nearest``, ``.dedup``).
Page state lives in the URL: ``/memorization?checkpoint=<path>&source=generated&seed=0&index=3&k=5&n=1000``.
"""

# No ``from __future__ import annotations``: Dash executes page modules before they are in sys.modules,
# and dataclasses with string annotations look their module up there.

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

import dash
import numpy as np
from dash import ALL, Input, Output, State, callback, ctx, dcc, html

from apps.app import app_state
from apps.components import (CAPTION_STYLE, PIXELATED_STYLE, ROW_STYLE, checked_checkpoint, checkpoint_dropdown,
                             error_box, find_checkpoints, image_src, one_line, parse_int, parse_seed, seed_input)
from apps.pages.filters import cache_dir
from dcgan_viz.analysis.memorization import (COPYING_THRESHOLD, ClosestPairs, CopyingResult, held_out_spec,
                                             memorization_statistics)
from dcgan_viz.analysis.nearest import NearestIndex, Neighbours, classifier_features, d_features, open_index, pixel_features
from dcgan_viz.cache import cache_key, cached
from dcgan_viz.checkpoint import Bundle
from dcgan_viz.data.spec import DataSpec, ImageSet
from dcgan_viz.plots.memorization import closest_pairs_grid, ct_cells_figure, dedup_groups_grid

dash.register_page(__name__, path="/memorization", name="Memorization", title="dcgan-viz: memorization", order=3)

SOURCES = ("generated", "train")
DEFAULT_K, MAX_K = 5, 16
MAX_OPEN_INDEXES = 6  # training-set NN indexes kept open (3 spaces x 2 checkpoints)
MAX_INDEX = 10**6 - 1
PICK_GRID = 16            # generated samples offered for clicking: latents (seed, 0..15)
DEFAULT_N, MIN_N, MAX_N = 1000, 10, 10000  # copy test: generated and held-out images (the CLI uses 10,000)
CELLS, MIN_COUNT = 20, 20  # the CLI's k-means cells and minimum cell counts for C_T
PIXEL_SIZE = 16            # pixel space: images area-downsampled to 16x16 (the CLI's default)
TOP_PAIRS = 16
DEDUP_METHODS = ("phash", "semantic")
DEDUP = {"radius": None, "threshold": 0.08, "max_shift": 2, "max_bucket": 256, "seed": 0, "steps": 3000}  # the CLI's defaults
SPACE_NAMES = {"pixel": f"pixels ({PIXEL_SIZE}x{PIXEL_SIZE})", "d": "D features", "classifier": "classifier features"}
DATA_CACHE_DIR = Path("cache")  # prepared training sets (memmapped), the CLI's default --cache-dir of dedup
DATA_CACHE_KEY = "DCGAN_DATA_CACHE"  # optional override in server.config (tests)
ProgressFn = Callable[[tuple], None]



def _app_cache(name: str) -> tuple[threading.Lock, dict]:
    """(lock, dict) of a cache that belongs to the running app (kept in ``server.config``, so two
    apps never share one and nothing lives in module state)."""
    config = dash.get_app().server.config
    return config.setdefault(f"DCGAN_MEMORIZATION_{name.upper()}", (threading.Lock(), {}))


def get_bundle(path: Path) -> Bundle:
    """The loaded checkpoint from the app's model cache (background jobs run in server threads)."""
    return app_state()[1].get(path)


def _keep(value, parse):
    try:
        return parse(value)
    except ValueError:
        return value


def data_cache_dir() -> Path:
    return Path(dash.get_app().server.config.get(DATA_CACHE_KEY, DATA_CACHE_DIR))


def training_set(bundle: Bundle) -> ImageSet:
    """The checkpoint's training images uint8 (N, H, W, C), prepared once under ``data_cache_dir()``
    and memmapped; a one-line ValueError when the data cannot be loaded (e.g. offline)."""
    if bundle.data.source == "none":
        raise ValueError(f"{bundle.path} records no training data (an imported model); this page needs it. "
                         "Use `dcgan-viz memorization CHECKPOINT --data SPEC`, or import with --data SPEC")
    key = json.dumps(bundle.data.to_dict(), sort_keys=True)
    lock, train_sets = _app_cache("train_sets")
    with lock:
        if key not in train_sets:
            from dcgan_viz.data.loading import load_imageset

            try:
                train_sets[key] = load_imageset(bundle.data, cache_dir=data_cache_dir())
            except Exception as exc:  # noqa: BLE001 - network, missing files, changed data: one line
                raise ValueError(f"cannot load the training data ({bundle.data.source}) of {bundle.path}: "
                                 f"{one_line(exc)}") from None
        return train_sets[key]


def find_classifier(dirs: list[Path], spec: DataSpec) -> Path | None:
    """An evaluation classifier (``config.json`` of kind classifier) under ``dirs`` trained on the
    same data source, size and channels as ``spec``; None when there is none."""
    for root in dirs:
        for config in sorted(Path(root).rglob("config.json")):
            try:
                meta = json.loads(config.read_text())
            except (OSError, ValueError):
                continue
            data = meta.get("data_spec") or {}
            if (meta.get("format") == "dcgan-viz-evaluator" and meta.get("kind") == "classifier"
                    and data.get("source") == spec.source and data.get("size") == spec.size
                    and data.get("channels") == spec.channels):
                return config.parent
    return None


def evaluation_classifier(bundle: Bundle):
    """(classifier model or None, cache key of its weights, path or None) for the checkpoint's data."""
    path = find_classifier(app_state()[0], bundle.data)
    if path is None:
        return None, "", None
    lock, classifiers = _app_cache("classifiers")
    with lock:
        if str(path) not in classifiers:
            from dcgan_viz.evaluation import load_evaluator

            model, meta = load_evaluator(path, bundle.device, kind="classifier")
            classifiers[str(path)] = (model, str(meta.get("weights_sha256", path)))
        model, key = classifiers[str(path)]
    return model, key, path


def feature_spaces(bundle: Bundle, classifier=None) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Space name -> feature function (uint8 (n, H, W, C) -> float32 (n, d)), as the CLI builds them."""
    spaces = {"pixel": lambda x: pixel_features(x, PIXEL_SIZE)}
    if bundle.D is not None:  # an imported generator without its discriminator has no D space
        spaces["d"] = lambda x: d_features(bundle.D, x)
    if classifier is not None:
        spaces["classifier"] = lambda x: classifier_features(classifier, x)
    return spaces


def training_indexes(bundle: Bundle, train: ImageSet, spaces: dict, classifier_key: str = "",
                     progress: ProgressFn | None = None) -> dict[str, NearestIndex]:
    """Exact NN indexes over the training features per space, cached on disk under the same keys as
    ``measure_checkpoint`` (``memo-train-<space>``): built once, loaded after."""
    keys = {"pixel": f"px{PIXEL_SIZE}", "d": bundle.key, "classifier": classifier_key}
    lock, opened = _app_cache("indexes")  # opening one from disk (read + faiss add) costs ~1 s: once per app
    indexes = {}
    for i, (name, fn) in enumerate(spaces.items()):
        if progress is not None:
            progress((i, len(spaces) + 1, f"index of training {SPACE_NAMES[name]} ({len(train)} images)"))
        key = (name, train.spec.content_hash, keys[name], str(cache_dir()))
        with lock:
            if key not in opened:
                opened[key] = open_index(cache_dir(), f"memo-train-{name}", lambda fn=fn: fn(train.images), "auto",
                                         data=train.spec.content_hash, model=keys[name])
                while len(opened) > MAX_OPEN_INDEXES:
                    opened.pop(next(iter(opened)))  # the oldest
            indexes[name] = opened[key]
    return indexes


@dataclass
class NeighbourView:
    """The query image uint8 (H, W, C) and, per space, its k nearest training images uint8 (k, H, W, C)
    with their training indices (k,) and L2 distances (k,), nearest first."""

    query: np.ndarray
    images: dict[str, np.ndarray]
    neighbours: dict[str, Neighbours]
    classifier: Path | None
    n_train: int


def find_neighbours(checkpoint, source, seed, index, k, progress: ProgressFn | None = None) -> NeighbourView:
    """The k nearest training images of a generated sample (latent (seed, index)) or of training image
    ``index`` (the control: itself at distance 0) in every space; ValueError on bad input."""
    from dcgan_viz.sampling import generate

    path = checked_checkpoint(checkpoint)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    seed = parse_seed(seed)
    index = parse_int(index, "index", 0, MAX_INDEX)
    k = parse_int(k, "k", 1, MAX_K)
    bundle = get_bundle(path)
    train = training_set(bundle)
    if source == "train" and index >= len(train):
        raise ValueError(f"index must be a whole number in 0..{len(train) - 1} for a training image, got {index}")
    if k > len(train):
        raise ValueError(f"k must be at most the {len(train)} training images, got {k}")
    classifier, clf_key, clf_path = evaluation_classifier(bundle)
    spaces = feature_spaces(bundle, classifier)
    indexes = training_indexes(bundle, train, spaces, clf_key, progress)
    if progress is not None:
        progress((len(spaces), len(spaces) + 1, "searching"))
    query = np.asarray(train.images[index : index + 1]) if source == "train" else generate(bundle, seed, [index]).numpy()
    found = {name: indexes[name].search(fn(query), k) for name, fn in spaces.items()}
    images = {name: np.stack([np.asarray(train.images[int(i)]) for i in nb.indices[0]]) for name, nb in found.items()}
    return NeighbourView(query[0], images, found, clf_path, len(train))


def _thumb(image: np.ndarray, caption: str, scale: int = 2, **extra) -> html.Figure:
    return html.Figure([html.Img(src=image_src(image, scale), style=PIXELATED_STYLE),
                        html.Figcaption(caption, style={**CAPTION_STYLE, "fontSize": "0.8em"})],
                       style={"margin": "0.2em", "textAlign": "center"}, **extra)


def neighbour_rows(view: NeighbourView) -> list:
    """One row per space: the k nearest training images with their index and distance."""
    rows = []
    for name, nb in view.neighbours.items():
        thumbs = [_thumb(img, f"#{int(i)} d={float(d):.3f}")
                  for img, i, d in zip(view.images[name], nb.indices[0], nb.distances[0])]
        rows.append(html.Div([html.Div(SPACE_NAMES[name], style={"width": "10em", **CAPTION_STYLE}), *thumbs],
                             className="dcgan-neighbours", **{"data-space": name},
                             style={"display": "flex", "alignItems": "center", "flexWrap": "wrap"}))
    return rows


def _progress_bar(prefix: str) -> html.Div:
    return html.Div([html.Progress(id=f"{prefix}-progress", value="0", max="1", style={"width": "14em"}),
                     html.Span(id=f"{prefix}-progress-text", style={**CAPTION_STYLE, "marginLeft": "0.6em"})],
                    style={"margin": "0.3em 0"})


def layout(checkpoint: str | None = None, source: str | None = None, seed: str | None = None,
           index: str | None = None, k: str | None = None, n: str | None = None, **_query) -> html.Div:
    dirs, _ = app_state()
    if checkpoint is None:
        found = find_checkpoints(dirs)
        checkpoint = str(found[0]) if found else None
    seed = _keep(0 if seed is None else seed, parse_seed)
    index = _keep(0 if index is None else index, lambda v: parse_int(v, "index", 0, MAX_INDEX))
    k = _keep(DEFAULT_K if k is None else k, lambda v: parse_int(v, "k", 1, MAX_K))
    n = _keep(DEFAULT_N if n is None else n, lambda v: parse_int(v, "n", MIN_N, MAX_N))
    source = source or "generated"
    sources = [{"label": s, "value": s} for s in SOURCES] + ([] if source in SOURCES else [{"label": source, "value": source}])

    def number(id, value, lo, hi, width="6em"):
        return dcc.Input(id=id, type="number", min=lo, max=hi, step=1, value=value, debounce=True, style={"width": width})

    return html.Div([
        html.H2("Memorization"),
        html.Div([
            checkpoint_dropdown("memo-checkpoint", dirs, checkpoint),
            html.Label(["query ", dcc.RadioItems(id="memo-source", options=sources, value=source, inline=True)],
                       style={"display": "flex", "gap": "0.4em", "alignItems": "center"}),
            seed_input("memo-seed", seed),
            html.Label(["index ", number("memo-index", index, 0, MAX_INDEX, "7em")]),
            html.Label(["k ", number("memo-k", k, 1, MAX_K, "4em")]),
        ], style=ROW_STYLE),
        html.Div(f"Click a generated sample (latents (seed, 0..{PICK_GRID - 1})) or type an index; query "
                 f"'train' looks up training image #index: the control, its nearest neighbour is itself at "
                 f"distance 0.", style=CAPTION_STYLE),
        html.Div(id="memo-pick", style={"display": "flex", "flexWrap": "wrap", "margin": "0.4em 0"}),
        html.H3("Nearest training images"),
        html.Div(id="memo-error", style={"margin": "0.8em 0"}),
        _progress_bar("memo-nn"),
        html.Div([html.Div(id="memo-query"), html.Div(id="memo-neighbours")],
                 style={"display": "flex", "gap": "1em", "alignItems": "flex-start"}),
        html.Div(id="memo-caption", style=CAPTION_STYLE),
        html.H3("Copy test"),
        html.Div([html.Label(["n (generated and held-out) ", number("memo-n", n, MIN_N, MAX_N)]),
                  html.Button("Run copy test", id="memo-copy-run", n_clicks=0)], style=ROW_STYLE),
        html.Div(f"Data-copying test C_T (Meehan et al. 2020) in each space: copying when the pixel C_T < "
                 f"{COPYING_THRESHOLD:g}, local copying when a pixel-space cell has z < {COPYING_THRESHOLD:g}. The CLI "
                 f"uses n = 10,000; results are cached on disk.", style=CAPTION_STYLE),
        _progress_bar("memo-copy"),
        html.Div(id="memo-copy-output", style={"margin": "0.8em 0"}),
        html.H3("Near duplicates in the training set"),
        html.Div([html.Label(["hash ", dcc.RadioItems(id="memo-dedup-method", value="phash", inline=True,
                                                      options=[{"label": m, "value": m} for m in DEDUP_METHODS])],
                             style={"display": "flex", "gap": "0.4em", "alignItems": "center"}),
                  html.Button("Run dedup", id="memo-dedup-run", n_clicks=0)], style=ROW_STYLE),
        html.Div("phash: DCT perceptual hash (fast); semantic: the paper's autoencoder hash (trains an "
                 "autoencoder: slow on CPU). Hamming radius 4 (phash) or 8 (semantic), pixel verification 0.08 RMS, shift probes 2 px.",
                 style=CAPTION_STYLE),
        _progress_bar("memo-dedup"),
        html.Div(id="memo-dedup-output", style={"margin": "0.8em 0"}),
    ])


@callback(Output("url", "search", allow_duplicate=True), Input("memo-checkpoint", "value"),
          Input("memo-source", "value"), Input("memo-seed", "value"), Input("memo-index", "value"),
          Input("memo-k", "value"), Input("memo-n", "value"), prevent_initial_call=True)
def update_url(checkpoint, source, seed, index, k, n) -> str:
    """Write the page state into the query string, so the view can be shared."""
    state = {key: v for key, v in (("checkpoint", checkpoint), ("source", source), ("seed", seed), ("index", index),
                                   ("k", k), ("n", n)) if v is not None}
    return "?" + urlencode(state) if state else ""


@callback(Output("memo-pick", "children"), Input("memo-checkpoint", "value"), Input("memo-seed", "value"))
def render_pick_grid(checkpoint, seed) -> list:
    """Clickable generated samples latents (seed, 0..PICK_GRID-1); nothing on bad input (the
    neighbours callback says what is wrong)."""
    from dcgan_viz.sampling import generate

    try:
        path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
        images = generate(get_bundle(path), seed, range(PICK_GRID)).numpy()
    except Exception:  # noqa: BLE001 - render_neighbours shows the message
        return []
    return [html.Img(id={"type": "memo-pick-sample", "index": i}, src=image_src(img, 2), n_clicks=0,
                     title=f"latent ({seed}, {i})", className="dcgan-pick",
                     style={**PIXELATED_STYLE, "cursor": "pointer", "margin": "2px", "border": "1px solid #ddd"})
            for i, img in enumerate(images)]


@callback(Output("memo-index", "value"), Output("memo-source", "value"),
          Input({"type": "memo-pick-sample", "index": ALL}, "n_clicks"), prevent_initial_call=True)
def pick_sample(clicks):
    """A click on a generated sample sets the index (and the query source to generated)."""
    if not ctx.triggered_id or not any(clicks or []):
        return dash.no_update, dash.no_update
    return ctx.triggered_id["index"], "generated"


@callback(Output("memo-error", "children"), Output("memo-query", "children"), Output("memo-neighbours", "children"),
          Output("memo-caption", "children"), Input("memo-checkpoint", "value"), Input("memo-source", "value"),
          Input("memo-seed", "value"), Input("memo-index", "value"), Input("memo-k", "value"),
          background=True, progress=[Output("memo-nn-progress", "value"), Output("memo-nn-progress", "max"),
                                     Output("memo-nn-progress-text", "children")])
def render_neighbours(set_progress, checkpoint, source, seed, index, k):
    """(error, query image, neighbour rows, caption); on bad input only the one-line error."""
    try:
        view = find_neighbours(checkpoint, source, seed, index, k, set_progress)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        set_progress((0, 1, ""))
        return error_box(one_line(exc)), None, [], ""
    set_progress((1, 1, "done"))
    what = f"latent ({seed}, {index})" if source == "generated" else f"training image #{index}"
    query = _thumb(view.query, what, scale=3, className="dcgan-query")
    clf = (f"classifier {view.classifier}" if view.classifier is not None
           else "no evaluation classifier for this data under the checkpoint dirs")
    caption = (f"{what}: its {k} nearest of {view.n_train} training images per space (exact L2, nearest first; "
               f"d = distance in that space); {clf}. Indexes cached on disk.")
    return None, query, neighbour_rows(view), caption


# ---------------------------------------------------------------- copy test


@dataclass
class CopyTest:
    """A memorization report, flat for the disk cache. ``rows``: one dict per space (C_T, NN ratio, ...);
    closest pairs: generated latent indices (P,), training indices (P,), distances (P,); pixel-space
    cells: z-scores (K,) (NaN where unused), used (K,) and counts (K,) of train, held-out, generated."""

    verdict: str
    copying: bool
    local_copying: bool
    copying_sample_share: float
    counts: dict
    rows: list
    closest_gen: np.ndarray
    closest_train: np.ndarray
    closest_dist: np.ndarray
    pixel_ct: float
    cell_z: np.ndarray
    cell_used: np.ndarray
    train_counts: np.ndarray
    test_counts: np.ndarray
    gen_counts: np.ndarray

    def cells(self) -> CopyingResult:
        return CopyingResult(self.pixel_ct, self.cell_z, self.train_counts, self.test_counts, self.gen_counts,
                             self.cell_used.astype(bool))


def copy_test(bundle: Bundle, n: int, seed: int, progress: ProgressFn | None = None) -> CopyTest:
    """The memorization report (no latent recovery) of n generated samples (latents (seed, 0..n-1)) vs
    n held-out images; cached on disk by weights, data, classifier and parameters."""
    from dcgan_viz.data.loading import load_imageset
    from dcgan_viz.sampling import generate

    train = training_set(bundle)
    classifier, clf_key, _ = evaluation_classifier(bundle)
    key = cache_key("memo-copy-test", weights=bundle.key, data=train.spec.content_hash, n=n, seed=seed,
                    classifier=clf_key, cells=CELLS, min_count=MIN_COUNT, pixel_size=PIXEL_SIZE, top=TOP_PAIRS)

    def compute() -> CopyTest:
        spaces = feature_spaces(bundle, classifier)
        total = len(spaces) + 3
        indexes = training_indexes(bundle, train, spaces, clf_key,
                                   None if progress is None else (lambda p: progress((p[0], total, p[2]))))
        if progress is not None:
            progress((len(spaces), total, f"loading {n} held-out images, generating {n} samples"))
        try:
            test = load_imageset(held_out_spec(bundle.data, n))
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"cannot load the held-out data of {bundle.data.source}: {one_line(exc)}") from None
        gen = generate(bundle, seed, n).numpy()
        if progress is not None:
            progress((len(spaces) + 1, total, "nearest neighbours and C_T in every space"))
        report = memorization_statistics(np.asarray(train.images), np.asarray(test.images), gen, spaces, "auto",
                                         CELLS, MIN_COUNT, seed, TOP_PAIRS, indexes)
        summary = report.summary()
        rows = [{"space": name, **s} for name, s in summary["spaces"].items()]
        pix = report.spaces["pixel"].copying
        return CopyTest(report.verdict, report.copying, report.local_copying, report.copying_sample_share,
                        summary["counts"], rows, report.closest.gen_indices, report.closest.train_indices,
                        report.closest.distances, float(pix.ct), pix.cell_z, pix.used, pix.train_counts,
                        pix.test_counts, pix.gen_counts)

    return cached(cache_dir(), key, CopyTest, compute)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "—" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def html_table(rows: list[dict], columns: dict[str, str], class_name: str) -> html.Table:
    """A small table of ``rows`` (dicts) showing ``columns`` (key -> heading)."""
    cell = {"padding": "0.2em 0.6em", "borderBottom": "1px solid #eee", "textAlign": "right"}
    return html.Table([html.Thead(html.Tr([html.Th(h, style=cell) for h in columns.values()])),
                       html.Tbody([html.Tr([html.Td(_fmt(r.get(c)), style=cell) for c in columns]) for r in rows])],
                      className=class_name, style={"borderCollapse": "collapse", "fontSize": "0.9em"})


COPY_COLUMNS = {"space": "space", "ct": "C_T", "cells_used": "cells used", "cells_copying": "cells z < -3",
                "min_cell_z": "min cell z", "nn_ratio": "NN ratio gen/held-out", "near_copy_fraction": "near-copy fraction",
                "median_gen_to_train": "median gen→train", "median_test_to_train": "median held-out→train"}


@callback(Output("memo-copy-output", "children"), Input("memo-copy-run", "n_clicks"),
          State("memo-checkpoint", "value"), State("memo-seed", "value"), State("memo-n", "value"),
          background=True, prevent_initial_call=True,
          running=[(Output("memo-copy-run", "disabled"), True, False)],
          progress=[Output("memo-copy-progress", "value"), Output("memo-copy-progress", "max"),
                    Output("memo-copy-progress-text", "children")])
def run_copy_test(set_progress, n_clicks, checkpoint, seed, n):
    """The copy-test table (verdict, C_T, NN ratio, local-copying share) and the closest pairs grid."""
    if not n_clicks:
        return dash.no_update
    from dcgan_viz.sampling import generate

    try:
        path, seed = checked_checkpoint(checkpoint), parse_seed(seed)
        n = parse_int(n, "n", MIN_N, MAX_N)
        bundle = get_bundle(path)
        result = copy_test(bundle, n, seed, set_progress)
        train = training_set(bundle)
        gen = generate(bundle, seed, result.closest_gen.tolist()).numpy()
        pairs = ClosestPairs(np.arange(len(gen)), result.closest_train, result.closest_dist)
        picture = image_src(closest_pairs_grid(pairs, gen, train.images), scale=2)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        set_progress((0, 1, ""))
        return error_box(one_line(exc))
    set_progress((1, 1, "done"))
    c = result.counts
    verdict = html.P([html.Strong(f"Verdict: {result.verdict}"),
                      f" — pixel C_T {_fmt(result.pixel_ct)}; local-copying fraction (share of samples in cells with "
                      f"z < {COPYING_THRESHOLD:g}) {result.copying_sample_share:.1%}; train {c['train']}, held-out "
                      f"{c['test']}, generated {c['generated']} (latents ({seed}, 0..{n - 1})). C_T is — when no cell has "
                      f"{MIN_COUNT} held-out and generated samples: raise n."], className="dcgan-verdict")
    pairs_caption = (f"the {len(pairs.distances)} generated samples closest to a training image (pixel space), each "
                     f"above its nearest training image; distances {', '.join(f'{d:.3f}' for d in result.closest_dist[:8])}…")
    return html.Div([verdict, html_table(result.rows, COPY_COLUMNS, "dcgan-copy-table"),
                     html.H4("Closest generated / training pairs"), html.Img(id="memo-pairs", src=picture, style=PIXELATED_STYLE),
                     html.Div(pairs_caption, style=CAPTION_STYLE),
                     dcc.Graph(figure=ct_cells_figure(result.cells(), "Pixel-space C_T cells"),
                               style={"height": "320px", "maxWidth": "48em"})])


# ---------------------------------------------------------------- dedup


def dedup_training_set(bundle: Bundle, method: str, progress: ProgressFn | None = None):
    """(DedupResult, training ImageSet): near-duplicate groups of the checkpoint's training set with
    the CLI's default parameters, cached on disk by the data's content hash and the parameters."""
    from dcgan_viz.analysis.dedup import DedupResult, find_duplicates

    if method not in DEDUP_METHODS:
        raise ValueError(f"hash must be one of {', '.join(DEDUP_METHODS)}, got {method!r}")
    if progress is not None:
        progress((0, 2, "loading the training set"))
    train = training_set(bundle)
    key = cache_key("memo-dedup", data=train.spec.content_hash or bundle.data.to_dict(), n=len(train), method=method,
                    **DEDUP)

    def compute():
        if progress is not None:
            progress((1, 2, f"{method} hashes of {len(train)} images, shift probes, verification"))
        return find_duplicates(np.asarray(train.images), method, **DEDUP)

    return cached(cache_dir(), key, DedupResult, compute), train


@callback(Output("memo-dedup-output", "children"), Input("memo-dedup-run", "n_clicks"),
          State("memo-checkpoint", "value"), State("memo-dedup-method", "value"),
          background=True, prevent_initial_call=True,
          running=[(Output("memo-dedup-run", "disabled"), True, False)],
          progress=[Output("memo-dedup-progress", "value"), Output("memo-dedup-progress", "max"),
                    Output("memo-dedup-progress-text", "children")])
def run_dedup(set_progress, n_clicks, checkpoint, method):
    """The near-duplicate report of the training set: counts and a grid of the largest groups."""
    if not n_clicks:
        return dash.no_update
    try:
        bundle = get_bundle(checked_checkpoint(checkpoint))
        result, train = dedup_training_set(bundle, method, set_progress)
        picture = dedup_groups_grid(result, train.images)
    except Exception as exc:  # noqa: BLE001 - any failure is shown as one line, never a traceback
        set_progress((0, 1, ""))
        return error_box(one_line(exc))
    set_progress((1, 1, "done"))
    groups = result.groups()
    summary = (f"{method} hash: {len(result.pairs)} near-duplicate pairs in {len(groups)} groups (largest "
               f"{len(groups[0]) if groups else 1}); keeping the first of each group leaves {len(result.keep)} of "
               f"{len(train)} training images ({len(train) - len(result.keep)} removed); {result.truncated_buckets} "
               f"truncated bucket lookups.")
    children = [html.P(summary, className="dcgan-dedup-summary")]
    if picture is not None:
        children += [html.Img(id="memo-dedup-groups", src=image_src(picture, 2), style=PIXELATED_STYLE),
                     html.Div("one row per group, largest first (up to 16 groups, 8 members each); indices: "
                              + "; ".join(",".join(map(str, g[:8].tolist())) for g in groups[:4]), style=CAPTION_STYLE)]
    return html.Div(children)
