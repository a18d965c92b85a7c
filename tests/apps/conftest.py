"""One dashboard app per test process.

Dash pages register their callbacks in a process-wide list each time an app is built, so a
second app in the same process would carry every callback twice; the real server builds one.
The page test modules therefore share this session-scoped app (under pytest-xdist, one per
worker).
"""

from __future__ import annotations

import json

import pytest

from fixtures_dashboard import tiny_checkpoint


@pytest.fixture(scope="session")
def dash_app(tmp_path_factory):
    """(app, checkpoint path, D) for a tiny rooms checkpoint with a model card and a training log."""
    pytest.importorskip("dash")
    pytest.importorskip("plotly")
    pytest.importorskip("captum")
    root = tmp_path_factory.mktemp("ckpts")
    ckpt, D = tiny_checkpoint(root)
    (ckpt / "README.md").write_text("# tiny\n\nA tiny test model.\n\nSamples: ![samples](samples_final.png)\n")
    rows = [{"step": i, "epoch": 1, "loss_d": 1.2, "loss_g": 0.8, "d_x": 0.6, "d_g_z1": 0.4, "d_g_z2": 0.35,
             "img_per_s": 50.0} for i in range(1, 11)]
    (ckpt / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from apps.app import create_app

    app = create_app([root], device="cpu", job_dir=tmp_path_factory.mktemp("jobs"))
    from apps.pages.filters import CACHE_KEY  # page modules import only after the app exists

    app.server.config[CACHE_KEY] = str(tmp_path_factory.mktemp("cache"))
    return app, ckpt, D


from browser_fixtures import browser, served  # noqa: E402,F401 - fixtures of the headless-browser tests
