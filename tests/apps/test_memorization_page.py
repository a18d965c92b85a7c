"""The dashboard's Memorization page on the tiny checkpoint; its callbacks are called directly."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from fixtures_dashboard import components_by_id

pytest.importorskip("dash")
pytest.importorskip("plotly")
pytest.importorskip("captum")  # create_app imports every page, the filters page needs it

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dashboard(dash_app, tmp_path_factory):
    """(app, page module, checkpoint path) on the shared app, with its own data cache."""
    from apps.pages import memorization as page

    app, ckpt, _ = dash_app
    app.server.config[page.DATA_CACHE_KEY] = str(tmp_path_factory.mktemp("data"))
    return app, page, str(ckpt)


@pytest.fixture
def fresh_cache(dashboard, tmp_path, monkeypatch):
    """An empty analysis cache for one test."""
    from apps.pages.filters import CACHE_KEY

    monkeypatch.setitem(dashboard[0].server.config, CACHE_KEY, str(tmp_path))
    return tmp_path


def _texts(component) -> list[str]:
    """Every string in a layout tree."""
    if component is None:
        return []
    if isinstance(component, str):
        return [component]
    if isinstance(component, (list, tuple)):
        return [t for c in component for t in _texts(c)]
    return _texts(getattr(component, "children", None))


def test_page_is_served(dashboard):
    app, _, ckpt = dashboard
    client = app.server.test_client()
    assert client.get(f"/memorization?checkpoint={ckpt}").status_code == 200
    assert b"Memorization" in client.get("/_dash-layout").data  # navbar link
    outputs = [d["output"] for d in client.get("/_dash-dependencies").get_json()]
    assert len(outputs) == len(set(outputs))


def test_neighbours_of_a_sample_are_sorted_by_distance(dashboard, fresh_cache):
    _, page, ckpt = dashboard
    steps = []
    view = page.find_neighbours(ckpt, "generated", 3, 7, 5, steps.append)
    assert set(view.neighbours) == {"pixel", "d"}  # no evaluation classifier for rooms
    assert view.n_train == 64 and view.query.shape == (32, 32, 3) and view.query.dtype == np.uint8
    for name, nb in view.neighbours.items():
        d = nb.distances[0]
        assert nb.indices.shape == (1, 5) and len(set(nb.indices[0].tolist())) == 5
        assert np.all(np.diff(d) >= 0) and d[0] > 0  # a random G does not reproduce a training image
        assert view.images[name].shape == (5, 32, 32, 3)
    train = page.training_set(page.app_state()[1].get(Path(ckpt)))
    first = view.neighbours["pixel"].indices[0, 0]
    assert np.array_equal(view.images["pixel"][0], train.images[first])
    assert steps and all(len(s) == 3 and s[0] < s[1] for s in steps)


def test_training_indexes_are_opened_once_per_app(dashboard, fresh_cache, monkeypatch):
    """Opening an index (reading the features, building it) does not depend on the request: the second
    query of the same checkpoint uses the indexes the first one opened."""
    _, page, ckpt = dashboard
    opened = []
    real = page.open_index
    monkeypatch.setattr(page, "open_index", lambda *a, **k: opened.append(a[1]) or real(*a, **k))
    first = page.find_neighbours(ckpt, "generated", 3, 1, 4)
    assert sorted(opened) == ["memo-train-d", "memo-train-pixel"]
    again = page.find_neighbours(ckpt, "generated", 4, 2, 4)
    assert len(opened) == 2 and set(again.neighbours) == set(first.neighbours)


def test_training_image_is_its_own_nearest_neighbour(dashboard, fresh_cache):
    """The control: a training image's nearest training image is itself, at distance 0, in every space."""
    _, page, ckpt = dashboard
    for index in (0, 5, 63):
        view = page.find_neighbours(ckpt, "train", 0, index, 3)
        for nb in view.neighbours.values():
            assert nb.indices[0, 0] == index and nb.distances[0, 0] == pytest.approx(0.0, abs=1e-5)
            assert nb.distances[0, 1] > 0
    error, query, rows, caption = page.render_neighbours(lambda p: None, ckpt, "train", 0, 5, 3)
    assert error is None and len(rows) == 2
    assert "#5 d=0.000" in _texts(rows) and "training image #5" in caption and "3 nearest of 64" in caption


def test_index_is_built_once_and_cached_on_disk(dashboard, fresh_cache, monkeypatch):
    _, page, ckpt = dashboard
    sizes = []
    real = page.d_features

    def counting(D, images):
        sizes.append(len(images))
        return real(D, images)

    monkeypatch.setattr(page, "d_features", counting)
    first = page.find_neighbours(ckpt, "generated", 0, 1, 4)
    assert 64 in sizes  # the training features were computed
    assert any(p.name.startswith("memo-train-d-") for p in fresh_cache.iterdir())
    assert any(p.name.startswith("memo-train-pixel-") for p in fresh_cache.iterdir())
    sizes.clear()
    second = page.find_neighbours(ckpt, "generated", 0, 1, 4)
    assert sizes == [1]  # only the query: the index came from the disk cache
    for name in first.neighbours:
        assert np.array_equal(first.neighbours[name].indices, second.neighbours[name].indices)


def test_bad_input_gives_one_line_messages(dashboard, tmp_path):
    _, page, ckpt = dashboard
    cases = [((str(tmp_path), "generated", 0, 0, 5), "unknown checkpoint"),
             ((ckpt, "generated", 0, -1, 5), "index must be a whole number in 0..999999"),
             ((ckpt, "generated", 0, 1.5, 5), "index must be a whole number"),
             ((ckpt, "train", 0, 64, 5), "index must be a whole number in 0..63 for a training image"),
             ((ckpt, "generated", 0, 0, 0), "k must be a whole number in 1..16"),
             ((ckpt, "generated", 0, 0, 17), "k must be a whole number in 1..16"),
             ((ckpt, "generated", 0, 0, None), "k must be a whole number in 1..16"),
             ((ckpt, "generated", -2, 0, 5), "seed must be a whole number"),
             ((ckpt, "fake", 0, 0, 5), "source must be one of generated, train")]
    for args, message in cases:
        error, query, rows, caption = page.render_neighbours(lambda p: None, *args)
        assert message in error.children and "\n" not in error.children
        assert query is None and rows == [] and caption == ""


def test_data_that_cannot_be_loaded_gives_a_message(dashboard, monkeypatch):
    app, page, ckpt = dashboard
    import threading

    import dcgan_viz.data.loading as loading

    def offline(*args, **kwargs):
        raise OSError("could not download fashion-mnist:\nnetwork is unreachable")

    monkeypatch.setattr(loading, "load_imageset", offline)
    monkeypatch.setitem(app.server.config, "DCGAN_MEMORIZATION_TRAIN_SETS", (threading.Lock(), {}))  # nothing loaded yet
    error, *_ = page.render_neighbours(lambda p: None, ckpt, "generated", 0, 0, 3)
    assert error.children.startswith("cannot load the training data (rooms) of ")
    assert error.children.endswith("could not download fashion-mnist:") and "\n" not in error.children
    out = page.run_copy_test(lambda p: None, 1, ckpt, 0, 20)
    assert out.children.startswith("cannot load the training data (rooms)")


def test_copy_test_table_pairs_and_cache(dashboard, fresh_cache, monkeypatch):
    _, page, ckpt = dashboard
    steps = []
    out = page.run_copy_test(steps.append, 1, ckpt, 0, 20)
    ids, texts = components_by_id(out), _texts(out)
    assert ids["memo-pairs"].src.startswith("data:image/png;base64,")
    table = [t for t in texts if t in ("pixel", "d")]
    assert table == ["pixel", "d"]
    assert any(t.startswith("Verdict: ") for t in texts)
    assert any("local-copying fraction" in t and "generated 20" in t for t in texts)
    assert len(steps) >= 4 and steps[-1][2] == "done"
    result = page.copy_test(page.app_state()[1].get(Path(ckpt)), 20, 0)
    assert result.counts == {"train": 64, "test": 20, "generated": 20}
    assert np.all(np.diff(result.closest_dist) >= 0) and len(result.closest_dist) == 16
    assert result.verdict in ("COPYING", "no copying") or result.verdict.startswith("LOCAL COPYING")

    def boom(*args, **kwargs):
        raise AssertionError("recomputed instead of read from the cache")

    monkeypatch.setattr(page, "memorization_statistics", boom)
    again = page.run_copy_test(lambda p: None, 2, ckpt, 0, 20)
    assert _texts(again) == texts
    bad = page.run_copy_test(lambda p: None, 1, ckpt, 0, 5)
    assert "n must be a whole number in 10..10000" in bad.children
    assert page.run_copy_test(lambda p: None, 0, ckpt, 0, 20) is page.dash.no_update


def test_copy_test_of_a_model_trained_on_a_prepared_cache(dashboard, fresh_cache, tmp_path):
    """The copy test compares with the held-out split a prepared cache stores; a cache from an older
    prepare (no held-out split) gives a one-line message that says to prepare it again."""
    import json

    import torch

    from dcgan_viz.checkpoint import load_checkpoint, save_checkpoint
    from dcgan_viz.data.prepare import prepare
    from dcgan_viz.data.spec import DataSpec
    from dcgan_viz.models import Discriminator, Generator, ModelConfig

    _, page, _ = dashboard
    cache = tmp_path / "prepared"
    train = prepare(DataSpec(source="random", size=32, count=48, test_count=20), cache, progress=False)
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)
    ckpt = save_checkpoint(tmp_path / "ck", Generator(cfg), Discriminator(cfg),
                           data=DataSpec(source="prepared", path=str(cache), size=32, content_hash=train.spec.content_hash))
    result = page.copy_test(load_checkpoint(ckpt, device="cpu"), 20, 0)
    assert result.counts == {"train": 48, "test": 20, "generated": 20}

    manifest = json.loads((cache / "manifest.json").read_text())
    del manifest["held_out"]  # an older prepare
    (cache / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError) as info:
        page.copy_test(load_checkpoint(ckpt, device="cpu"), 20, 1)
    assert "\n" not in str(info.value) and "prepared without its held-out split" in str(info.value)


def test_dedup_finds_planted_copies_and_caches(dashboard, fresh_cache, monkeypatch):
    _, page, ckpt = dashboard
    from dcgan_viz.data.spec import DataSpec, ImageSet

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    images[30:34] = images[0:4]  # four exact copies
    fake = ImageSet(images=images, spec=DataSpec(source="random", size=32, count=40, content_hash="planted" * 4))
    monkeypatch.setattr(page, "training_set", lambda bundle: fake)
    out = page.run_dedup(lambda p: None, 1, ckpt, "phash")
    summary = _texts(out)[0]
    assert "4 near-duplicate pairs in 4 groups (largest 2)" in summary and "leaves 36 of 40" in summary
    assert components_by_id(out)["memo-dedup-groups"].src.startswith("data:image/png;base64,")
    result, _ = page.dedup_training_set(None, "phash")
    assert sorted(map(sorted, (g.tolist() for g in result.groups()))) == [[0, 30], [1, 31], [2, 32], [3, 33]]
    import dcgan_viz.analysis.dedup as dedup

    monkeypatch.setattr(dedup, "find_duplicates", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert _texts(page.run_dedup(lambda p: None, 2, ckpt, "phash"))[0] == summary
    assert "hash must be one of phash, semantic" in page.run_dedup(lambda p: None, 1, ckpt, "md5").children


def test_classifier_is_found_for_its_data():
    from apps.pages.memorization import find_classifier
    from dcgan_viz.checkpoint import read_meta
    from dcgan_viz.data.spec import DataSpec

    if not (REPO / "checkpoints" / "fashion-classifier" / "config.json").is_file():
        pytest.skip("shipped checkpoints are not present")
    fashion = DataSpec.from_dict(read_meta(REPO / "checkpoints" / "fashion32")["data"])
    assert find_classifier([REPO / "checkpoints"], fashion) == REPO / "checkpoints" / "fashion-classifier"
    rooms = DataSpec.from_dict(read_meta(REPO / "checkpoints" / "rooms64")["data"])
    assert find_classifier([REPO / "checkpoints"], rooms) is None


def test_url_state_round_trips(dashboard):
    _, page, ckpt = dashboard
    search = page.update_url(ckpt, "train", 4, 9, 6, 300)
    query = dict(parse_qsl(urlsplit(search).query))
    assert query == {"checkpoint": ckpt, "source": "train", "seed": "4", "index": "9", "k": "6", "n": "300"}
    ids = components_by_id(page.layout(**query))
    values = {k: ids[f"memo-{k}"].value for k in ("checkpoint", "source", "seed", "index", "k", "n")}
    assert values == {"checkpoint": ckpt, "source": "train", "seed": 4, "index": 9, "k": 6, "n": 300}
    default = components_by_id(page.layout())
    assert default["memo-checkpoint"].value == ckpt and default["memo-k"].value == 5
    bad = components_by_id(page.layout(checkpoint=ckpt, index="-3", k="99"))
    assert bad["memo-index"].value == "-3" and bad["memo-k"].value == "99"  # kept: the page says why


def test_pick_grid_offers_clickable_samples(dashboard):
    _, page, ckpt = dashboard
    samples = page.render_pick_grid(ckpt, 2)
    assert len(samples) == page.PICK_GRID and samples[3].id == {"type": "memo-pick-sample", "index": 3}
    assert samples[3].title == "latent (2, 3)" and samples[0].src.startswith("data:image/png;base64,")
    assert page.render_pick_grid(ckpt, -1) == []
