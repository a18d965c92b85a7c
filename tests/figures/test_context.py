"""FigureContext: which checkpoints a section finds, and the reason it gives when one is missing."""

from __future__ import annotations

from dcgan_viz.figures.context import FigureContext, FiguresConfig


def test_missing_names_absent_checkpoints_and_passes_present_ones(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "checkpoint.json").write_text("{}")
    (tmp_path / "empty").mkdir()  # a directory without a checkpoint file does not count
    ctx = FigureContext(tmp_path, tmp_path / "out", None, FiguresConfig())
    assert ctx.missing("a") is None and ctx.path("a") == tmp_path / "a"
    assert ctx.missing("empty") == f"no empty checkpoint under {tmp_path}"
    assert ctx.missing("a", "b") == f"needs a and b under {tmp_path}"
