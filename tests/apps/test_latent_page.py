"""The dashboard's Latent space page on a tiny checkpoint; its callbacks are called directly."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from fixtures_dashboard import components_by_id

pytest.importorskip("dash")
pytest.importorskip("plotly")
pytest.importorskip("captum")  # create_app imports every page, the filters page needs it


PNG = "data:image/png;base64,"


@pytest.fixture(scope="module")
def dashboard(dash_app):
    """(app, page module, checkpoint path) on the shared app (see conftest.py)."""
    from apps.pages import latent as page

    app, ckpt, _ = dash_app
    return app, page, str(ckpt)


def test_page_is_served(dashboard):
    app, _, ckpt = dashboard
    client = app.server.test_client()
    assert client.get(f"/latent?checkpoint={ckpt}").status_code == 200
    assert b"Latent space" in client.get("/_dash-layout").data  # navbar link
    outputs = [d["output"] for d in client.get("/_dash-dependencies").get_json()]
    assert len(outputs) == len(set(outputs))


@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_walk_is_png_with_step_figure(dashboard, method):
    _, page, ckpt = dashboard
    error, src, fig, caption = page.render_walk(ckpt, 3, 3, 2, method)
    assert error is None and src.startswith(PNG)
    m = (3 - 1) * (2 + 1) + 1
    assert len(fig.data) == 1 and len(fig.data[0].y) == m - 1
    assert "spike ratio" in caption and method in caption and f"{m} images" in caption


def test_walk_bad_input_gives_message(dashboard, tmp_path):
    _, page, ckpt = dashboard
    cases = [((str(tmp_path), 0, 3, 2, "slerp"), "unknown checkpoint"),
             ((ckpt, 0, 1, 2, "slerp"), "anchor points must be a whole number in 2..16"),
             ((ckpt, 0, 17, 2, "slerp"), "anchor points must be a whole number in 2..16"),
             ((ckpt, 0, 3, -1, "slerp"), "steps between must be a whole number in 0..16"),
             ((ckpt, 0, 3, None, "slerp"), "steps between must be a whole number in 0..16"),
             ((ckpt, -1, 3, 2, "slerp"), "seed must be a whole number"),
             ((ckpt, 0, 3, 2, "cubic"), "method must be one of lerp, slerp")]
    for args, message in cases:
        error, src, fig, caption = page.render_walk(*args)
        assert message in error.children and "\n" not in error.children and src is None and caption == ""


def test_arithmetic_image_and_parser_messages(dashboard):
    _, page, ckpt = dashboard
    concepts = ("0:12, 0:40, 0:77", "0:3, 0:25", "1:5")
    error, src, caption = page.render_arithmetic(ckpt, *concepts, "A - B + C", 3)
    assert error is None and src.startswith(PNG)
    assert "A, B, C" in caption and "A - B + C" in caption and "3 noise neighbours" in caption
    error, src, _ = page.render_arithmetic(ckpt, *concepts, "A * B", 3)
    assert error.children.startswith("bad expression 'A * B': unexpected '*'") and src is None
    error, src, _ = page.render_arithmetic(ckpt, *concepts, "A - D", 3)
    assert error.children == "unknown concept 'D'; known: A, B, C" and src is None
    error, src, _ = page.render_arithmetic(ckpt, "0:1", "", None, "A + B", 0)  # empty box: undefined
    assert error.children == "unknown concept 'B'; known: A" and src is None
    assert page.render_arithmetic(ckpt, "0:1", "", None, "A", 0)[0] is None
    error, src, _ = page.render_arithmetic(ckpt, "x:1", *concepts[1:], "A", 3)
    assert error.children.startswith("concept A: expected seed:index pairs") and src is None
    error, *_ = page.render_arithmetic(ckpt, *concepts, "A", 17)
    assert "noise neighbours must be a whole number in 0..16" in error.children


def test_pair_parser(dashboard):
    parse_pairs = dashboard[1].parse_pairs

    assert parse_pairs("0:12, 3:4") == [(0, 12), (3, 4)]
    assert parse_pairs(" 7 : 1 ") == [(7, 1)]
    for bad in ("x:1", "0:-1", "", "  ", None, "0:1,", "0", "1:2:3"):
        with pytest.raises(ValueError, match="seed:index pairs") as info:
            parse_pairs(bad, "concept A")
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="at most 16 exemplars"):
        parse_pairs(", ".join(f"0:{i}" for i in range(17)))


def test_url_state_round_trips(dashboard):
    _, page, ckpt = dashboard
    search = page.update_url(ckpt, 5, 3, 2, "lerp", "0:1, 0:2", "1:3", "2:4", "A + B - C", 6)
    query = dict(parse_qsl(urlsplit(search).query))
    assert query == {"checkpoint": ckpt, "seed": "5", "points": "3", "steps": "2", "method": "lerp",
                     "A": "0:1, 0:2", "B": "1:3", "C": "2:4", "expr": "A + B - C", "neighbours": "6"}
    ids = components_by_id(page.layout(**query))
    values = {k: ids[f"latent-{k}"].value for k in ("checkpoint", "seed", "points", "steps", "method", "concept-A",
                                                     "concept-B", "concept-C", "expression", "neighbours")}
    assert values == {"checkpoint": ckpt, "seed": 5, "points": 3, "steps": 2, "method": "lerp", "concept-A": "0:1, 0:2",
                      "concept-B": "1:3", "concept-C": "2:4", "expression": "A + B - C", "neighbours": 6}
    default = components_by_id(page.layout())
    assert default["latent-checkpoint"].value == ckpt and default["latent-method"].value == "slerp"
    assert default["latent-expression"].value == "A - B + C" and default["latent-concept-A"].value == "0:12, 0:40, 0:77"
    bad = components_by_id(page.layout(checkpoint=ckpt, points="40", method="cubic", seed="-2"))
    assert bad["latent-points"].value == "40" and bad["latent-seed"].value == "-2"  # kept: the page says why
    assert bad["latent-method"].value == "cubic"
