"""read_log: plain and gzip logs, a live run's partial last line, a cut-short gzip stream."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from dcgan_viz.plots.training import loss_figure
from dcgan_viz.runlog import find_log, read_log


def _records(n: int) -> list[dict]:
    return [{"step": i + 1, "epoch": 1, "loss_d": 1.0 / (i + 1), "loss_g": 2.0 + i, "d_x": 0.5, "d_g_z1": 0.4,
             "d_g_z2": 0.3, "img_per_s": 100.0} for i in range(n)]


def _text(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_plain_log_columns(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(_text(_records(5)))
    log = read_log(path)
    np.testing.assert_array_equal(log["step"], [1, 2, 3, 4, 5])
    np.testing.assert_allclose(log["loss_d"], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert set(log) == {"step", "epoch", "loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "img_per_s"}


def test_partial_last_line_is_ignored(tmp_path):
    path = tmp_path / "log.jsonl"
    text = _text(_records(4))
    path.write_text(text + text.splitlines()[0][:25])  # a live run mid-write
    assert len(read_log(path)["step"]) == 4


def test_gzip_and_truncated_gzip(tmp_path):
    path = tmp_path / "log.jsonl.gz"
    data = gzip.compress(_text(_records(200)).encode())
    path.write_bytes(data)
    assert len(read_log(path)["loss_g"]) == 200
    path.write_bytes(data[: len(data) // 2])  # stream cut short
    log = read_log(path)
    assert 0 < len(log["loss_g"]) < 200
    np.testing.assert_array_equal(log["step"], np.arange(1, len(log["step"]) + 1))


def test_missing_keys_are_nan_and_empty_log(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1, "loss_d": 0.5}\n\n{"step": 2, "loss_d": 0.4, "loss_g": 3.0}\n')
    log = read_log(path)
    assert np.isnan(log["loss_g"][0]) and log["loss_g"][1] == 3.0
    path.write_text("")
    assert read_log(path) == {}
    assert len(loss_figure({}).data) == 0
    with pytest.raises(FileNotFoundError):
        read_log(tmp_path / "nope.jsonl")


def test_find_log(tmp_path):
    ship = tmp_path / "ship"
    ship.mkdir()
    (ship / "log.jsonl.gz").write_bytes(gzip.compress(b""))
    assert find_log(ship) == ship / "log.jsonl.gz"
    run = tmp_path / "run"
    step = run / "checkpoints" / "step-00000010"
    step.mkdir(parents=True)
    (run / "log.jsonl").write_text(_text(_records(1)))
    assert find_log(step) == run / "log.jsonl"
    assert find_log(tmp_path) is None


def test_loss_figure_traces_and_thinning():
    log = {k: np.asarray(v, dtype=float) for k, v in
           {k: [r[k] for r in _records(1000)] for k in _records(1)[0]}.items()}
    fig = loss_figure(log, max_points=100)
    names = [t.name for t in fig.data]
    assert names == ["loss_D", "loss_G", "D(x)", "D(G(z)) before D step", "D(G(z)) after D step"]
    assert len(fig.data[0].x) <= 101 and fig.data[0].x[-1] == 1000


def test_loss_figure_plots_the_sparse_health_checks():
    """Health rows come every health_every steps (NaN between): each check is a point of its trace."""
    recs = _records(1000)
    for r in recs:
        if r["step"] % 250 == 0:
            r.update(div_d=0.8, nn_d=0.6, div_pix=0.9)
    log = read_log_text(recs)
    fig = loss_figure(log, max_points=100)
    health = {t.name: t for t in fig.data if t.name.startswith(("diversity", "distinct"))}
    assert sorted(health) == ["distinct real neighbours", "diversity in D's features", "diversity in pixels"]
    assert list(health["diversity in D's features"].x) == [250, 500, 750, 1000]
    assert list(health["distinct real neighbours"].y) == [0.6] * 4


def read_log_text(recs: list[dict]) -> dict[str, np.ndarray]:
    keys = sorted({k for r in recs for k in r})
    return {k: np.asarray([r.get(k, np.nan) for r in recs], dtype=float) for k in keys}
