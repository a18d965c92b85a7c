"""The dashboard's Embedding page on the tiny checkpoint (callbacks called directly) and its plot."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

pytest.importorskip("dash")
pytest.importorskip("plotly")
pytest.importorskip("captum")  # create_app imports every page, the filters page needs it


@pytest.fixture(scope="module")
def dashboard(dash_app, tmp_path_factory):
    """(app, page module, checkpoint path) on the shared app, with its own data cache."""
    from apps.pages import embedding as page
    from apps.pages import memorization

    app, ckpt, _ = dash_app
    app.server.config.setdefault(memorization.DATA_CACHE_KEY, str(tmp_path_factory.mktemp("data")))
    return app, page, str(ckpt)


def _synthetic():
    from dcgan_viz.analysis.representation import UmapResult

    rng = np.random.default_rng(0)
    return UmapResult(coords=rng.normal(size=(9, 2)).astype(np.float32),
                      generated=np.array([0, 0, 0, 0, 0, 0, 1, 1, 1], bool),
                      labels=np.array([0, 1, 1, 2, 0, 1, -1, -1, -1]), index=np.array([0, 1, 2, 3, 4, 5, 0, 1, 2]),
                      label_names=["a", "b", "c"], latent_seed=7)


def test_umap_scatter_by_source_and_label():
    from dcgan_viz.plots.representation import umap_scatter

    fig = umap_scatter(_synthetic(), "source")
    assert [t.name for t in fig.data] == ["real (6)", "generated (3)"]
    assert fig.data[0].customdata.tolist() == [[0, i] for i in range(6)]
    assert fig.data[1].customdata.tolist() == [[1, 0], [1, 1], [1, 2]]
    by_label = umap_scatter(_synthetic(), "label")
    assert [t.name for t in by_label.data] == ["a", "b", "c", "generated"]
    assert [len(t.x) for t in by_label.data] == [2, 3, 1, 3]
    with pytest.raises(ValueError, match="colour must be source or label"):
        umap_scatter(_synthetic(), "size")


def test_page_is_served(dashboard):
    app, _, ckpt = dashboard
    client = app.server.test_client()
    assert client.get(f"/embedding?checkpoint={ckpt}").status_code == 200
    assert b"Embedding" in client.get("/_dash-layout").data


def test_embedding_store_figure_and_cache(dashboard, tmp_path, monkeypatch):
    app, page, ckpt = dashboard
    from apps.pages.filters import CACHE_KEY

    monkeypatch.setitem(app.server.config, CACHE_KEY, str(tmp_path))
    steps = []
    error, data, caption = page.run_embedding(steps.append, ckpt, 1, 20, 10)
    assert error is None and len(data["coords"]) == 30 and sum(data["generated"]) == 10
    assert data["index"][:20] == list(range(20)) and data["latent_seed"] == 1
    assert "first 20 of 64 training images and 10 generated" in caption and steps[-1][2] == "done"
    assert any(p.name.startswith("umap-") for p in tmp_path.iterdir())
    fig = page.render_figure(data, "source")
    assert [t.name for t in fig.data] == ["real (20)", "generated (10)"] and fig.data[0].hoverinfo == "none"
    assert [t.name for t in page.render_figure(data, "label").data] == ["unlabelled", "generated"]  # rooms: no labels
    assert len(page.render_figure(None, "source").data) == 0
    import dcgan_viz.analysis.representation as rep

    monkeypatch.setattr(rep, "pooled_features", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = page.run_embedding(lambda p: None, ckpt, 1, 20, 10)
    assert again[0] is None and again[1] == data  # from the disk cache


def test_projected_keeps_the_real_map_and_takes_any_seed(dashboard, tmp_path, monkeypatch):
    """Projected (the default): one fit per checkpoint and real count, real points identical across
    seeds, seeds beyond UMAP's 2**32 accepted (they only pick latents); jointly fitted: the map moves."""
    app, page, ckpt = dashboard
    from apps.pages.filters import CACHE_KEY

    monkeypatch.setitem(app.server.config, CACHE_KEY, str(tmp_path))
    fits = []
    import apps.pages.embedding as module

    real_fit = module.fit_real_map
    monkeypatch.setattr(module, "fit_real_map", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    results = [page.run_embedding(lambda p: None, ckpt, seed, 30, 12, "projected") for seed in (1, 2, 2**40)]
    assert [r[0] for r in results] == [None] * 3 and len(fits) == 1
    coords = [np.asarray(r[1]["coords"]) for r in results]
    assert np.array_equal(coords[0][:30], coords[1][:30]) and np.array_equal(coords[0][:30], coords[2][:30])
    assert not np.array_equal(coords[0][30:], coords[1][30:])  # other latents, other places
    assert results[2][1]["latent_seed"] == 2**40 and "projected into it" in results[0][2]
    joint = [page.run_embedding(lambda p: None, ckpt, seed, 30, 12, "joint") for seed in (1, 2)]
    assert joint[0][0] is None and "fitted on training and generated images together" in joint[0][2]
    assert not np.array_equal(np.asarray(joint[0][1]["coords"])[:30], np.asarray(joint[1][1]["coords"])[:30])


def test_bad_input_gives_one_line_messages(dashboard, tmp_path):
    _, page, ckpt = dashboard
    cases = [((str(tmp_path), 0, 20, 10), "unknown checkpoint"),
             ((ckpt, 0, 4, 10), "real images must be a whole number in 5..5000"),
             ((ckpt, 0, 65, 10), "real images must be at most the 64 training images"),
             ((ckpt, 0, 20, -1), "generated images must be a whole number in 0..5000"),
             ((ckpt, 0, 20, "x"), "generated images must be a whole number in 0..5000"),
             ((ckpt, -1, 20, 10), "seed must be a whole number"),
             ((ckpt, 0, 20, 10, "tsne"), "fit must be one of joint, projected")]
    for args, message in cases:
        error, data, caption = page.run_embedding(lambda p: None, *args)
        assert message in error.children and "\n" not in error.children and data is None and caption == ""


def test_hover_shows_the_image(dashboard):
    _, page, ckpt = dashboard
    from apps.pages.memorization import training_set
    from apps.components import image_src
    from pathlib import Path

    data = page.result_to_store(_synthetic())
    bbox = {"x0": 1, "x1": 2, "y0": 3, "y1": 4}
    show, box, children = page.hover_thumbnail({"points": [{"customdata": [0, 5], "bbox": bbox}]}, ckpt, data)
    train = training_set(page.app_state()[1].get(Path(ckpt)))
    assert show and box == bbox and children.children[0].src == image_src(np.asarray(train.images[5]), 3)
    assert children.children[1].children == "training image #5"
    show, _, children = page.hover_thumbnail({"points": [{"customdata": [1, 2], "bbox": bbox}]}, ckpt, data)
    assert show and children.children[1].children == "generated: latent (7, 2)"
    assert page.hover_thumbnail(None, ckpt, data)[0] is False
    show, _, children = page.hover_thumbnail({"points": [{"customdata": [0, 500], "bbox": bbox}]}, ckpt, data)
    assert show and "index 500 is out of bounds" in children.children


def test_url_state_round_trips(dashboard):
    _, page, ckpt = dashboard
    search = page.update_url(ckpt, 3, 40, 20, "joint", "label")
    query = dict(parse_qsl(urlsplit(search).query))
    assert query == {"checkpoint": ckpt, "seed": "3", "real": "40", "generated": "20", "fit": "joint",
                     "colour": "label"}
    layout = page.layout(**query)
    ids = {}

    def walk(c):
        if getattr(c, "id", None) is not None:
            ids[c.id] = c
        kids = getattr(c, "children", None)
        for k in kids if isinstance(kids, list) else [kids]:
            if hasattr(k, "to_plotly_json"):
                walk(k)

    walk(layout)
    assert [ids[f"embed-{k}"].value for k in ("checkpoint", "seed", "real", "generated", "fit", "colour")] == \
        [ckpt, 3, 40, 20, "joint", "label"]
    bad = page.layout(checkpoint=ckpt, real="2", fit="umap", colour="size")
    walk(bad)
    assert ids["embed-real"].value == "2" and ids["embed-colour"].value == "source"
    assert ids["embed-fit"].value == "projected"
