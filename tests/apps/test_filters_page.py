"""The dashboard's Filters page on a tiny rooms checkpoint; its callbacks are called directly."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

pytest.importorskip("dash")
pytest.importorskip("plotly")
pytest.importorskip("captum")



@pytest.fixture(scope="module")
def dashboard(dash_app):
    """(app, page module, checkpoint path, layers) on the shared app (see conftest.py)."""
    from apps.pages import filters as page

    app, ckpt, D = dash_app
    return app, page, str(ckpt), list(D.feature_layers)


def test_page_is_served(dashboard):
    app, _, ckpt, _ = dashboard
    client = app.server.test_client()
    assert client.get(f"/filters?checkpoint={ckpt}&layer=conv2").status_code == 200
    layout = client.get("/_dash-layout")
    assert layout.status_code == 200 and b"Filters" in layout.data  # navbar link
    deps = client.get("/_dash-dependencies")
    assert deps.status_code == 200
    outputs = [d["output"] for d in deps.get_json()]
    assert len(outputs) == len(set(outputs))  # no callback registered twice (the browser would refuse)


def test_unknown_checkpoint_gives_message(dashboard, tmp_path):
    _, page, _, _ = dashboard
    error, fig5, *_ = page.render_fig5(str(tmp_path), "conv1", "0:3", 32)
    assert "unknown checkpoint" in error.children and fig5 is None
    error, gmaps, _ = page.render_gmaps(str(tmp_path), 0)
    assert "unknown checkpoint" in error.children and gmaps is None
    assert "unknown checkpoint" in page.run_dissection(1, str(tmp_path), 32).children


def test_fig5_and_feature_maps_are_png(dashboard):
    _, page, ckpt, layers = dashboard
    error, fig5, style, caption = page.render_fig5(ckpt, layers[-1], "0:3", 32)
    assert style["imageRendering"] == "pixelated" and style["width"].endswith("px")
    gerror, gmaps, gcaption = page.render_gmaps(ckpt, 2)
    assert error is None and gerror is None
    assert fig5.startswith("data:image/png;base64,") and gmaps.startswith("data:image/png;base64,")
    assert "random init" in caption and "of 32 training images" in caption
    assert "seed 2, 0" in gcaption


def test_bad_layer_and_filters_give_library_message(dashboard):
    _, page, ckpt, layers = dashboard
    error, fig5, *_ = page.render_fig5(ckpt, "conv9", "0:3", 32)
    assert error.children.startswith(f"unknown layer 'conv9'; layers are {', '.join(layers)}") and fig5 is None
    error, fig5, *_ = page.render_fig5(ckpt, layers[0], "0:999", 32)
    assert "out of range" in error.children and "valid filters are 0.." in error.children and fig5 is None
    error, fig5, *_ = page.render_fig5(ckpt, layers[-1], "0:20", 32)  # conv3 has 32 filters
    assert error.children == "at most 16 filters at a time, got 20" and fig5 is None
    for bad in ("x:y", "", None):
        error, fig5, *_ = page.render_fig5(ckpt, layers[0], bad, 32)
        assert error.children.startswith("filters must look like 0:6") and fig5 is None
    assert page.render_fig5(ckpt, layers[0], "6:0", 32)[0].children == "filters '6:0' selects no filter"
    error, *_ = page.render_fig5(ckpt, layers[0], "0:3", 0)
    assert "images must be a whole number in 1..2000" in error.children
    error, gmaps, _ = page.render_gmaps(ckpt, -1)
    assert "seed must be a whole number" in error.children and gmaps is None


def test_dissection_table(dashboard):
    _, page, ckpt, layers = dashboard
    out = page.run_dissection(1, ckpt, 32)
    table = out.children[0]
    assert table.className == "dcgan-detectors"
    header = [th.children for th in table.children[0].children.children]
    assert header[:5] == ["net", "layer", "units", "detectors", "mean_best_iou"]
    rows = table.children[1].children
    assert len(rows) == 2 * len(layers)  # trained and random, one row per layer
    assert {row.children[0].children for row in rows} == {"trained", "random"}
    assert "32 images" in out.children[1].children
    assert any(Path(page.cache_dir()).iterdir())  # cached on disk: the next press is instant
    assert "must be a whole number" in page.run_dissection(1, ckpt, 5000).children
    assert "P(a > T_k) = 0.01," in out.children[1].children  # the default: top 1%
    strict = page.run_dissection(1, ckpt, 32, 0.005)
    assert "P(a > T_k) = 0.005," in strict.children[1].children
    for bad in (0.3, "0.01", [0.01]):
        assert "unit threshold must be one of [0.01, 0.005]" in page.run_dissection(1, ckpt, 32, bad).children


def test_url_state_round_trips(dashboard):
    _, page, ckpt, layers = dashboard
    search = page.update_url(ckpt, layers[0], "1,2", 64, 5)
    query = dict(parse_qsl(urlsplit(search).query))
    assert query == {"checkpoint": ckpt, "layer": layers[0], "filters": "1,2", "images": "64", "seed": "5"}
    controls = page.layout(**query).children[1].children
    assert controls[0].value == ckpt
    assert controls[1].children[1].value == layers[0]
    assert [o["value"] for o in controls[1].children[1].options] == layers
    assert controls[2].children[1].value == "1,2"
    assert controls[3].children[1].value == 64
    assert controls[4].children[1].value == 5
    default = page.layout().children[1].children  # first checkpoint, last layer, 0:6
    assert default[1].children[1].value == layers[-1] and default[2].children[1].value == "0:6"
    bad = page.layout(checkpoint=ckpt, layer="conv9", seed="-2").children[1].children
    assert bad[1].children[1].value == "conv9" and bad[4].children[1].value == "-2"  # kept: the page says why
    assert page.update_layers(ckpt, "conv9") == (page._layer_options(ckpt), layers[-1])
