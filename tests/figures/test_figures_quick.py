"""`dcgan-viz figures --quick` end to end on the shipped checkpoints: every expected file exists,
every section is produced and every table holds numbers. rooms64 is copied without its epoch
grids, so Fig. 2/3 must retrain a small model."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcgan_viz.cli import app
from dcgan_viz.figures.run import SECTIONS

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"
pytest.importorskip("plotly")
pytest.importorskip("sklearn")
pytest.importorskip("umap")
pytestmark = pytest.mark.slow


def _checkpoints(tmp_path: Path) -> Path:
    root = tmp_path / "checkpoints"
    root.mkdir()
    for ck in SHIPPED.iterdir():
        if ck.is_dir() and ck.name != "rooms64":
            (root / ck.name).symlink_to(ck)
    shutil.copytree(SHIPPED / "rooms64", root / "rooms64", ignore=shutil.ignore_patterns("epoch_*.png"))
    return root


def _tables(markdown: str) -> list[list[str]]:
    tables, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_quick_mode_writes_every_figure_and_table(tmp_path: Path) -> None:
    if not (Path("/usr/share/datasets/fashion-mnist").is_dir()):
        pytest.skip("dataset-fashion-mnist is not installed")
    out = tmp_path / "figures"
    result = CliRunner().invoke(app, ["figures", "--quick", "--checkpoints", str(_checkpoints(tmp_path)), "--out",
                                      str(out), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["quick"] is True
    sections = results["sections"]
    assert set(sections) == set(SECTIONS)
    for key, section in sections.items():
        assert section["skipped"] is None, (key, section["skipped"])
        assert re.search(r"\d", section["measured"]), key  # a measured number, not just words
        assert section["numbers"], key
        for name in section["images"] + section["plots"]:
            assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "retrained-rooms" / "samples" / "epoch_005.png").is_file()  # Fig. 2/3 retrained a small model
    for expected in ("fig2_epoch1.png", "fig3_epoch5.png", "fig4_walk.png", "fig5_guided.png", "fig6_with_without.png",
                     "fig7_arithmetic.png", "fig8_turn.png", "fig6_ace_curve.html", "representation_umap.html",
                     "report.html", "report.md"):
        assert (out / expected).is_file(), expected
    md = (out / "report.md").read_text()
    tables = _tables(md)
    assert len(tables) >= 9
    for table in tables:
        body = [row for row in table[2:]]
        assert body and all(re.search(r"\d", row) for row in body), table[0]
    page = (out / "report.html").read_text()
    for section in sections.values():
        assert section["title"].split(" — ")[0] in page


def test_unknown_section_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["figures", "--only", "walk,bogus", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "unknown figure 'bogus'" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
