"""The dashboard shell and its Checkpoints & training page, on a tiny checkpoint.

The page's callbacks are plain functions: they are called directly here (no browser).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

pytest.importorskip("dash")
pytest.importorskip("plotly")



@pytest.fixture(scope="module")
def dashboard(dash_app):
    """(app, page module, checkpoint path, model cache) on the shared app (see conftest.py)."""
    from apps.app import MODELS_KEY
    from apps.pages import checkpoints as page

    app, ckpt, _ = dash_app
    return app, page, str(ckpt), app.server.config[MODELS_KEY]


def test_server_serves_shell_and_layout(dashboard):
    app, _, ckpt, _ = dashboard
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    assert client.get(f"/?checkpoint={ckpt}&seed=3").status_code == 200
    layout = client.get("/_dash-layout")
    assert layout.status_code == 200
    assert b"Checkpoints & training" in layout.data  # navbar link of the registered page


def test_grid_is_png_data_uri_and_card_has_no_images(dashboard):
    _, page, ckpt, cache = dashboard
    error, card, src, caption = page.render_checkpoint(ckpt, 3)
    assert error is None
    assert src.startswith("data:image/png;base64,")
    assert "A tiny test model" in card and "![" not in card
    assert "seed 3" in caption
    page.render_checkpoint(ckpt, 4)
    assert len(cache) == 1  # loaded once
    assert page.render_checkpoint(ckpt, 3)[2] == src  # same latents -> same picture


@pytest.mark.parametrize("seed", [-1, None, "abc", 1.5])
def test_bad_seed_gives_message(dashboard, seed):
    _, page, ckpt, _ = dashboard
    error, card, src, _ = page.render_checkpoint(ckpt, seed)
    assert "seed must be a whole number ≥ 0" in error.children
    assert src is None and card == ""


def test_unknown_checkpoint_gives_message(dashboard, tmp_path):
    _, page, _, _ = dashboard
    error, _, src, _ = page.render_checkpoint(str(tmp_path / "elsewhere"), 0)
    assert "unknown checkpoint" in error.children and src is None
    figure, _ = page.render_curves(0, "../../etc", None)
    assert len(figure.data) == 0


def test_curves_have_loss_traces_and_refresh_only_on_change(dashboard):
    _, page, ckpt, _ = dashboard
    figure, signature = page.render_curves(None, ckpt, None)
    names = {t.name for t in figure.data}
    assert {"loss_D", "loss_G", "D(x)", "D(G(z)) before D step", "D(G(z)) after D step"} <= names
    assert list(figure.data[0].y) == [1.2] * 10
    import dash

    assert page.render_curves(1, ckpt, signature)[0] is dash.no_update
    log = Path(ckpt) / "log.jsonl"
    log.write_text(log.read_text() + json.dumps({"step": 11, "loss_d": 1.0, "loss_g": 0.9}) + "\n{\"step\": 12, ")
    figure, _ = page.render_curves(2, ckpt, signature)  # a live run appended (mid-write)
    assert len(figure.data[0].y) == 11


def test_url_state_round_trips(dashboard):
    _, page, ckpt, _ = dashboard
    search = page.update_url(ckpt, 5)
    query = dict(parse_qsl(urlsplit(search).query))
    assert query == {"checkpoint": ckpt, "seed": "5"}
    layout = page.layout(**query)
    assert layout.children[1].children[0].value == ckpt
    seed_box = layout.children[1].children[1].children[1]
    assert seed_box.value == 5
    bad = page.layout(checkpoint="nope", seed="-2")  # kept as given, so the page can say what is wrong
    assert bad.children[1].children[0].value == "nope" and bad.children[1].children[1].children[1].value == "-2"


def test_cli_dashboard_wiring(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import apps.app

    from dcgan_viz.cli import app as cli

    import waitress

    calls = {}

    class FakeApp:
        server = "wsgi"

        def run(self, **kwargs):
            calls["run"] = kwargs

    def fake_create_app(dirs, device=None):
        calls["create"] = (dirs, device)
        return FakeApp()

    monkeypatch.setattr(apps.app, "create_app", fake_create_app)
    monkeypatch.setattr(waitress, "serve", lambda app, **kwargs: calls.setdefault("serve", (app, kwargs)))
    result = CliRunner().invoke(cli, ["dashboard", "--checkpoints", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert calls["create"] == ([tmp_path], "cpu")
    app, kwargs = calls["serve"]  # waitress, not Flask's development server (tests/apps/test_serving.py)
    assert app == "wsgi" and kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8050 and "run" not in calls
    bad = CliRunner().invoke(cli, ["dashboard", "--checkpoints", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "error: no such checkpoint directory" in bad.output


def test_a_run_directory_link_follows_the_next_save(dashboard, tmp_path, monkeypatch):
    """?checkpoint=RUN (a training run directory under the listed dirs) shows its newest checkpoint,
    also after a later save; the run is offered in the dropdown. Controls: a directory that is not a
    run, and a run outside the listed dirs, are refused."""
    import torch

    from apps.app import DIRS_KEY
    from apps.components import checked_checkpoint, checkpoint_options
    from dcgan_viz.checkpoint import save_checkpoint
    from dcgan_viz.data.spec import DataSpec
    from dcgan_viz.models import Discriminator, Generator, ModelConfig

    app, page, _, _ = dashboard
    cfg = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)

    def save(run: Path, step: int) -> Path:
        torch.manual_seed(step)
        return save_checkpoint(run / "checkpoints" / f"step-{step:08d}", Generator(cfg), Discriminator(cfg),
                               data=DataSpec(source="rooms", size=32, count=64), step=step)

    root = tmp_path / "runs"
    run = root / "r1"
    save(run, 10)
    monkeypatch.setitem(app.server.config, DIRS_KEY, [*app.server.config[DIRS_KEY], root])
    assert app.server.test_client().get(f"/?checkpoint={run}").status_code == 200
    error, _, first, caption = page.render_checkpoint(str(run), 0)
    assert error is None and caption.endswith("step 10")
    assert checked_checkpoint(str(run)) == run / "checkpoints" / "step-00000010"
    assert checkpoint_options([root])[0] == {"label": f"{run} (run: newest checkpoint, now step-00000010)",
                                             "value": str(run)}
    save(run, 20)  # the next save: the same link now shows it
    error, _, second, caption = page.render_checkpoint(str(run), 0)
    assert error is None and caption.endswith("step 20") and second != first
    assert {"label": f"{run} (run: newest checkpoint, now step-00000020)", "value": str(run)} in \
        checkpoint_options([root])
    for not_a_run in (root, run / "checkpoints"):
        error, _, src, _ = page.render_checkpoint(str(not_a_run), 0)
        assert "unknown checkpoint" in error.children and src is None
    outside = tmp_path / "elsewhere" / "r2"
    save(outside, 5)
    error, _, src, _ = page.render_checkpoint(str(outside), 0)
    assert "unknown checkpoint" in error.children and src is None
