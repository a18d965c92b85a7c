"""The dashboard's Object removal page on a tiny checkpoint; its callbacks are called directly."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
import torch

pytest.importorskip("dash")
pytest.importorskip("plotly")
pytest.importorskip("captum")  # create_app imports every page, the filters page needs it

PNG = "data:image/png;base64,"
SIZE, PAD, CELL = 32, 2, 34  # the tiny checkpoint's image size, the grid padding, size + padding
# sample 5 of the 4x4 grid is row 1, col 1: its pixels start at (36, 36) in the grid image
SHAPE_5 = {"type": "rect", "x0": 60.2, "y0": 64.4, "x1": 39.8, "y1": 43.6}  # dragged bottom-right to top-left
BOX_5 = [4, 8, 24, 28]
SHAPE_0 = {"type": "rect", "x0": 4, "y0": 20, "x1": 30, "y1": 34}  # sample 0, local [2, 18, 28, 32]


@pytest.fixture(scope="module")
def dashboard(dash_app):
    """(app, page module, checkpoint path) on the shared app (see conftest.py)."""
    from apps.pages import removal as page

    app, ckpt, _ = dash_app
    return app, page, str(ckpt)


@pytest.fixture(scope="module")
def fitted(dashboard):
    """(shapes, probe record) fitted from boxes on samples 0 and 5 of seed 3, layer conv2."""
    _, page, ckpt = dashboard
    shapes = page.shapes_from_relayout({"shapes": [SHAPE_5, SHAPE_0]}, [])
    error, record = page.fit_probe(1, ckpt, 3, "conv2", "draw", None, shapes)
    assert error is None
    return shapes, record


def test_page_is_served(dashboard):
    app, _, ckpt = dashboard
    client = app.server.test_client()
    assert client.get(f"/removal?checkpoint={ckpt}").status_code == 200
    assert b"Object removal" in client.get("/_dash-layout").data  # navbar link
    outputs = [d["output"] for d in client.get("/_dash-dependencies").get_json()]
    assert len(outputs) == len(set(outputs))


def test_layout_defaults_and_bad_url_values(dashboard):
    _, page, ckpt = dashboard
    from apps.app import app_state

    G = app_state()[1].get(ckpt).G
    assert page.default_layer(G) == G.layer_names[-3] == "conv2"  # second-highest hidden layer, as conv3 at 64 px
    page.layout(checkpoint=ckpt, seed="3", layer="conv9", mode="nonsense", k="-2")  # renders, no exception
    error, fig, shapes = page.render_grid(ckpt, 3, "nonsense", 0)
    assert "mode must be one of draw, auto, insert" in error.children and shapes == []


def test_grid_figure_draws_rectangles(dashboard):
    _, page, ckpt = dashboard
    error, fig, shapes = page.render_grid(ckpt, 3, "draw", 0)
    assert error is None and shapes == []
    assert fig.layout.dragmode == "drawrect"
    side = 4 * CELL + PAD
    assert tuple(fig.layout.xaxis.range) == (0, side) and tuple(fig.layout.yaxis.range) == (side, 0)
    assert fig.data[0].source.startswith(PNG)


def test_relayout_boxes_map_to_sample_pixels(dashboard):
    _, page, _ = dashboard
    shapes = page.record_shapes({"shapes": [SHAPE_5, {"type": "line", "x0": 0, "y0": 0, "x1": 1, "y1": 1}]}, [])
    assert shapes == [{k: float(SHAPE_5[k]) for k in ("x0", "y0", "x1", "y1")}]  # the line is not a box
    assert page.boxes_from_shapes(shapes, 3, SIZE) == [{"seed": 3, "index": 5, "boxes": [BOX_5]}]
    # editing one corner of a drawn box
    moved = page.record_shapes({"shapes[0].x1": 44.0}, shapes)  # x1 was the left edge
    assert page.boxes_from_shapes(moved, 3, SIZE) == [{"seed": 3, "index": 5, "boxes": [[8, 8, 24, 28]]}]
    # other relayout events (zoom, autosize) leave the boxes alone
    import dash

    assert page.record_shapes({"autosize": True}, shapes) is dash.no_update
    # two boxes on one sample are one entry; a slight overhang into the padding is clipped
    two = [SHAPE_5, {"x0": 37, "y0": 35, "x1": 47, "y1": 45}, SHAPE_0]
    assert page.boxes_from_shapes(two, 0, SIZE) == [{"seed": 0, "index": 0, "boxes": [[2, 18, 28, 32]]},
                                                   {"seed": 0, "index": 5, "boxes": [BOX_5, [1, 0, 11, 9]]}]


@pytest.mark.parametrize("shape, message", [
    ({"x0": 0, "y0": 0, "x1": 1.5, "y1": 1.5}, "outside the samples"),       # in the padding
    ({"x0": 200, "y0": 10, "x1": 220, "y1": 20}, "outside the samples"),     # right of the grid
    ({"x0": 20, "y0": 10, "x1": 60, "y1": 20}, "crosses the edge of sample"),
    ({"x0": 10, "y0": 10, "x1": 10.2, "y1": 20}, "is empty"),
])
def test_bad_boxes_give_messages(dashboard, shape, message):
    _, page, ckpt = dashboard
    error, record = page.fit_probe(1, ckpt, 0, "conv2", "draw", None, [shape])
    assert message in error.children and "\n" not in error.children
    import dash

    assert record is dash.no_update


def test_fit_from_boxes_returns_units(dashboard, fitted):
    _, page, ckpt = dashboard
    _, record = fitted
    assert record["layer"] == "conv2" and len(record["weights"]) == 16 and record["checkpoint"] == ckpt
    assert record["n_positive"] > 0 and "2 drawn box(es) on 2 sample(s)" == record["source"]
    positive = [i for i, w in enumerate(record["weights"]) if w > 0]
    assert 0 < len(positive) < 16
    error, units, src, _ = page.render_compare(record, ["on"], None, ckpt, 3, "conv2", "draw", [])
    text = str(units)
    assert error is None and f"{len(positive)} of 16 conv2 units" in text
    assert f"{100 * len(positive) / 16:.1f}% of the layer" in text
    error, units, _, _ = page.render_compare(record, ["on"], 3, ckpt, 3, "conv2", "draw", [])
    top3 = page.select_units(record["weights"], 3)
    assert "3 of 16 conv2 units" in str(units) and ", ".join(map(str, top3)) in str(units)
    assert top3 == sorted(range(16), key=lambda u: -record["weights"][u])[:3]


def test_drop_toggle_changes_image_and_keeps_cached_G(dashboard, fitted):
    _, page, ckpt = dashboard
    _, record = fitted
    from apps.app import app_state

    G = app_state()[1].get(ckpt).G
    before = {k: v.clone() for k, v in G.state_dict().items()}
    error, _, plain, caption = page.render_compare(record, [], 4, ckpt, 3, "conv2", "draw", [])
    assert error is None and plain.startswith(PNG) and "tick the box" in caption
    error, _, compared, caption = page.render_compare(record, ["on"], 4, ckpt, 3, "conv2", "draw", [])
    assert error is None and compared.startswith(PNG) and compared != plain
    assert "left with, right without the 4 units" in caption
    after = G.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m._forward_hooks for m in G.modules())  # no hook left on the shared model
    # the ablated half really differs from the original half (same latents)
    units = page.select_units(record["weights"], 4)
    orig, dropped = page.compare_images(app_state()[1].get(ckpt), 3, "conv2", units)
    assert orig.shape == dropped.shape == (64, SIZE, SIZE, 3) and not np.array_equal(orig, dropped)
    with torch.no_grad():
        from dcgan_viz.images import to_uint8
        from dcgan_viz.latents import latents

        z = latents(app_state()[1].get(ckpt).config, 3, 64)
        assert np.array_equal(to_uint8(G(z)).numpy(), orig)


def test_insertion_sets_units_inside_the_box_only(dashboard, fitted):
    _, page, ckpt = dashboard
    _, record = fitted
    insert_shape = [{"x0": 2, "y0": 2, "x1": 18, "y1": 18}]  # sample 0, local [0, 0, 16, 16]
    error, _, src, caption = page.render_compare(record, ["on"], 4, ckpt, 3, "conv2", "insert", insert_shape)
    assert error is None and src.startswith(PNG) and "inside box [0, 0, 16, 16]" in caption
    from apps.app import app_state

    units = page.select_units(record["weights"], 4)
    before, after = page.compare_images(app_state()[1].get(ckpt), 3, "conv2", units, [0, 0, 16, 16])
    diff = np.abs(before.astype(int) - after.astype(int)).sum(axis=(0, 3))  # (S, S)
    assert diff[:16, :16].sum() > 0
    # the far corner is beyond every receptive-field overlap of a 4x4-cell region at 8x8 resolution
    assert diff[:16, :16].mean() > diff[24:, 24:].mean()
    error, _, src, _ = page.render_compare(record, ["on"], 4, ckpt, 3, "conv2", "insert", [])
    assert "draw a box where the object should appear" in error.children and src is None


def test_bad_inputs_give_messages(dashboard, fitted, tmp_path):
    _, page, ckpt = dashboard
    shapes, record = fitted
    fit_cases = [((ckpt, 3, "conv9", "draw", None, shapes), "unknown layer 'conv9'"),
                 ((ckpt, 3, "conv4", "draw", None, shapes), "unknown layer 'conv4'"),  # the image layer
                 ((ckpt, 3, "conv2", "draw", None, []), "no boxes drawn yet"),
                 ((ckpt, 3, "conv2", "auto", "window", []), "no segmenter for this checkpoint's data"),
                 ((ckpt, 3, "conv2", "insert", None, shapes), "fit the probe in draw or automatic mode first"),
                 ((str(tmp_path), 3, "conv2", "draw", None, shapes), "unknown checkpoint"),
                 ((ckpt, -1, "conv2", "draw", None, shapes), "seed must be a whole number")]
    for args, message in fit_cases:
        error, _ = page.fit_probe(1, *args)
        assert message in error.children and "\n" not in error.children, (args, error.children)
    compare_cases = [((record, ["on"], 0, ckpt, 3, "conv2", "draw", []), "k must be empty (weight > 0) or a whole"),
                     ((record, ["on"], 17, ckpt, 3, "conv2", "draw", []), "1..16"),
                     ((record, ["on"], 2.5, ckpt, 3, "conv2", "draw", []), "k must be"),
                     ((record, ["on"], None, ckpt, 3, "nope", "draw", []), "unknown layer 'nope'")]
    for args, message in compare_cases:
        error, units, src, _ = page.render_compare(*args)
        assert message in error.children and src is None, (args, error.children)
    # a probe of another layer is not applied: the page asks for a fit instead
    error, units, src, _ = page.render_compare(record, ["on"], None, ckpt, 3, "conv1", "draw", [])
    assert error is None and "no probe fitted" in units and src.startswith(PNG)
    # all weights negative: k is needed
    neg = dict(record, weights=[-1.0] * 16)
    error, _, _, _ = page.render_compare(neg, ["on"], None, ckpt, 3, "conv2", "draw", [])
    assert "no unit has a positive probe weight" in error.children
    # the automatic class list and the ACE curve say that there is no segmenter
    options, value, note = page.update_classes(ckpt, None)
    assert options == [] and value is None and "no segmenter" in note
    calls = []
    out = page.ace_curve(calls.append, ckpt, "conv2", "window", 20, 0, record)
    assert "no segmenter for this checkpoint's data (rooms, 32 px)" in out.children and calls == []
    out = page.ace_curve(calls.append, ckpt, "conv2", "window", 0, 0, record)
    assert "latents must be a whole number" in out.children


def test_url_holds_page_state(dashboard):
    _, page, ckpt = dashboard
    query = page.update_url(ckpt, 3, "conv2", "insert", 5)
    assert dict(parse_qsl(urlsplit(query).query)) == {"checkpoint": ckpt, "seed": "3", "layer": "conv2",
                                                      "mode": "insert", "k": "5"}
    assert "k=" not in page.update_url(ckpt, 3, "conv2", "draw", None)


def test_removal_figure_on_synthetic_result():
    from dcgan_viz.analysis.ablation import RemovalResult
    from dcgan_viz.plots.ablation import removal_figure

    rows = [{"ranking": name, "count": c, "ace": a, "max_other_change": o, "max_other_class": "wall"}
            for name, scale in (("probe", 0.4), ("dissection", 0.2), ("random", 0.02))
            for c, a, o in ((8, scale, 0.01), (4, scale / 2, 0.005))]
    result = RemovalResult(checkpoint="x", class_name="window", layer="conv3", n_units=128, n_latents=10, seed=0,
                           classes=["wall", "window"], baseline_pixels={"wall": 5, "window": 5}, rows=rows)
    fig = removal_figure(result)
    ace = [t for t in fig.data if t.yaxis in ("y", None)]
    other = [t for t in fig.data if t.yaxis == "y2"]
    assert [t.name for t in ace] == ["probe", "dissection", "random"] and len(other) == 3
    assert list(ace[0].x) == [4, 8] and list(ace[0].y) == [0.2, 0.4]  # sorted by count
    assert list(other[2].y) == [0.005, 0.01] and list(other[2].customdata) == ["wall", "wall"]
    assert "of 128" in fig.layout.xaxis2.title.text and "window" in fig.layout.annotations[0].text


def test_removal_curve_with_a_tiny_segmenter_is_cached(dashboard, tmp_path, monkeypatch):
    """The ACE path end to end with a tiny (untrained) segmenter found beside the checkpoint dir."""
    _, page, ckpt = dashboard
    from apps.app import app_state
    from dcgan_viz.analysis import ablation as A
    from dcgan_viz.evaluation import Segmenter, SegmenterConfig, predict_masks
    from dcgan_viz.evaluation.store import save_evaluator

    bundle = app_state()[1].get(ckpt)
    torch.manual_seed(0)
    classes = list(A.ROOM_CLASSES)
    seg_dir = save_evaluator(Segmenter(SegmenterConfig(width=4, depth=2)), tmp_path / "rooms-segmenter",
                             {"classes": classes, "data_spec": {"source": "rooms", "size": SIZE}})
    assert page.find_segmenter(bundle, [tmp_path]) == seg_dir
    seg, seg_classes, seg_key = page.load_segmenter(seg_dir, bundle.device)
    assert seg_classes == classes
    from dcgan_viz.latents import latents

    with torch.no_grad():
        red = bundle.G(latents(bundle.config, 1, page.N_FIT))[:, 0]
    threshold = float(red.median())

    class RedIsWindow(torch.nn.Module):
        """A stand-in segmenter: 'window' (class 3) where the red channel is above the median, else wall."""

        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))  # predict_masks finds the device from a parameter

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> logits (B, 9, S, S)
            logits = torch.zeros(x.shape[0], 9, *x.shape[2:])
            logits[:, 3] = (x[:, 0] > threshold).float() * self.scale
            logits[:, 0] = 0.5
            return logits

    seg, cls = RedIsWindow(), "window"
    labels = predict_masks(seg, red[:, None].expand(-1, 3, -1, -1))
    assert 0.2 < float((labels == 3).float().mean()) < 0.8
    steps = []
    result, source = page.removal_result(bundle, seg, classes, seg_key, cls, "conv2", 12, 0, None, tmp_path / "c",
                                         lambda i, total: steps.append((i, total)))
    assert steps == [(i, 6) for i in range(7)]
    assert {r["ranking"] for r in result.rows} == {"probe", "optimized", "greedy", "dissection", "random"}
    assert sorted({r["count"] for r in result.rows}) == page.removal_counts(16) == [1, 2, 3, 4]
    assert "segmenter labels" in source
    monkeypatch.setattr(A, "removal_curve", lambda *a, **k: pytest.fail("not served from the cache"))
    monkeypatch.setattr(A, "optimize_ablation", lambda *a, **k: pytest.fail("mask not served from the cache"))
    monkeypatch.setattr(A, "greedy_ablation", lambda *a, **k: pytest.fail("greedy not served from the cache"))
    again, _ = page.removal_result(bundle, seg, classes, seg_key, cls, "conv2", 12, 0, None, tmp_path / "c")
    assert again.rows == result.rows
    from dcgan_viz.plots.ablation import removal_figure

    assert len(removal_figure(again).data) == 10
