"""The report writer: Markdown subset -> HTML, self-contained HTML, Markdown and JSON outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dcgan_viz.images import save_png

pytest.importorskip("plotly")

from dcgan_viz.figures.report import Section, markdown_to_html, write_report  # noqa: E402


def test_markdown_tables_become_html_tables_and_text_is_escaped() -> None:
    html = markdown_to_html("Intro with **bold** and `code` <script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("<tr>") == 3 and "<th>a</th>" in html and "<td>4</td>" in html
    assert "---" not in html  # the separator row is not a data row


def test_report_inlines_images_and_plots_and_lists_every_number(tmp_path: Path) -> None:
    import plotly.graph_objects as go

    save_png(tmp_path / "a.png", np.full((8, 8, 3), 200, np.uint8))
    done = Section("a", "Figure A", "The paper says A.", measured="A is 0.5", tables=["| x |\n|---|\n| 0.5 |"],
                   images=[("a.png", "an image")], plots=[("a.html", "a plot", go.Figure(go.Bar(y=[1, 2])))],
                   numbers={"x": 0.5}, seconds=1.0)
    skipped = Section("b", "Figure B", "The paper says B.", skipped="no checkpoint b")
    paths = write_report([done, skipped], tmp_path, "Report", "Preamble.", {"quick": True})
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page  # the PNG is inlined
    assert "Plotly.newPlot" in page and "<script src" not in page  # plotly.js embedded, no external script
    assert "The paper says A." in page and "A is 0.5" in page and "Skipped: no checkpoint b" in page
    assert (tmp_path / "a.html").is_file() and (tmp_path / "plotly.min.js").is_file()
    results = json.loads(paths["json"].read_text())
    assert results["sections"]["a"]["numbers"] == {"x": 0.5} and results["sections"]["b"]["skipped"]
    md = paths["markdown"].read_text()
    assert "| [Figure A](#a) | The paper says A. | A is 0.5 | not judged |" in md
    assert "![an image](a.png)" in md and "[a.html](a.html)" in md


def test_report_opens_with_claim_number_and_verdict_per_figure(tmp_path: Path) -> None:
    held = Section("a", "Fig. A", "A is large.", measured="A = 0.9 over 100 trials", headline="A = 0.9")
    held.judge(True, "holds if A > 0.5")
    failed = Section("b", "Fig. B", "B is small.", measured="B = 0.7")
    failed.judge(False, "holds if B < 0.1")
    weak = Section("c", "Fig. C", "C beats chance clearly.", measured="C = 0.6")
    weak.judge(False, "holds if C > 0.8, partly if above chance", partly=True)
    unknown = Section("d", "Fig. D", "D exists.", measured="no numbers")
    unknown.judge(None, "needs per-epoch numbers")
    skipped = Section("e", "Fig. E", "E.", skipped="no checkpoint e")
    paths = write_report([held, failed, weak, unknown, skipped], tmp_path, "Report", "Preamble.", {})
    md = paths["markdown"].read_text().splitlines()
    assert md[2] == "| figure | the paper's claim | our number | holds? |"  # the report opens with the table
    assert md[4] == "| [Fig. A](#a) | A is large. | A = 0.9 | holds |"
    assert md[5] == "| [Fig. B](#b) | B is small. | B = 0.7 | does not hold |"
    assert md[6].endswith("| partly |") and md[7].endswith("| not judged |")
    assert md[8] == "| [Fig. E](#e) | E. | skipped: no checkpoint e | not run |"
    assert "**Verdict: holds** (holds if A > 0.5" in "\n".join(md)
    page = paths["html"].read_text()
    assert page.index("<th>holds?</th>") < page.index("Preamble.")
    results = json.loads(paths["json"].read_text())["sections"]
    assert results["b"]["verdict"] == "does not hold" and results["a"]["rule"] == "holds if A > 0.5"
