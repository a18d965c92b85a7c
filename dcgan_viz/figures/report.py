"""The evaluation report: each figure beside the paper's claim and our measured number, as one
self-contained HTML file (images inlined, plotly.js embedded once), a Markdown summary and a
JSON file of every number."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write, atomic_write_json


@dataclass
class Section:
    """One paper figure (or table) reproduced and measured.

    ``tables`` are Markdown pipe tables (with optional prose lines); ``images`` are
    (file, caption) of PNGs in the output directory; ``plots`` are (file, caption, figure) of
    interactive plotly figures also saved as stand-alone HTML; ``numbers`` go to results.json.
    ``skipped`` says why a section could not be produced (e.g. its checkpoint is absent).
    ``verdict`` is one of VERDICTS, decided by the rule written in ``rule`` from the section's own
    numbers; ``headline`` is the one number the opening table quotes (default: ``measured``)."""

    key: str
    title: str
    claim: str
    measured: str = ""
    tables: list[str] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)
    plots: list[tuple[str, str, Any]] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    skipped: str | None = None
    seconds: float = 0.0
    verdict: str = "not judged"
    rule: str = ""
    headline: str = ""

    def judge(self, holds: bool | None, rule: str, partly: bool = False) -> None:
        """Set the verdict from the rule's outcome: True holds, False does not (``partly`` when a
        weaker form holds), None when the numbers needed are absent."""
        self.rule = rule
        self.verdict = "not judged" if holds is None else "holds" if holds else "partly" if partly else "does not hold"


VERDICTS = ("holds", "partly", "does not hold", "not judged")


_INLINE = [(re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"), (re.compile(r"`([^`]+)`"), r"<code>\1</code>")]


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def markdown_to_html(text: str) -> str:
    """The small Markdown subset the analyses write: pipe tables, headings, paragraphs, **bold**, `code`."""
    parts, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            head, body = rows[0], rows[1:]
            parts.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                         + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
                         + "</tbody></table>")
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)
            parts.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line:
            parts.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(parts)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.claim{border-left:4px solid #999;padding:.3em .8em;background:#fafafa;color:#444}
.measured{border-left:4px solid #2a7;padding:.3em .8em;background:#f2fbf6}figure{margin:1em 0}
figcaption{color:#666;font-size:.9em}img{image-rendering:pixelated;max-width:100%}.skipped{color:#8a1f11}
"""


def write_report(sections: list[Section], out: Path, title: str, preamble: str, meta: dict) -> dict[str, Path]:
    """Write ``report.html`` (self-contained), ``report.md`` and ``results.json`` into ``out``."""
    from plotly.offline import get_plotlyjs

    body = [f"<h1>{html.escape(title)}</h1>", markdown_to_html(opening_table(sections)), markdown_to_html(preamble)]
    for s in sections:
        body += [f"<h2 id='{s.key}'>{html.escape(s.title)}</h2>",
                 f"<p class='claim'><strong>Paper:</strong> {_inline(s.claim)}</p>"]
        if s.skipped:
            body.append(f"<p class='skipped'>Skipped: {_inline(s.skipped)}</p>")
            continue
        body.append(f"<p class='measured'><strong>Measured:</strong> {_inline(s.measured)}</p>")
        body.append(f"<p><strong>Verdict: {html.escape(s.verdict)}</strong> ({_inline(s.rule or 'no rule')}; "
                    f"{s.seconds:.0f} s)</p>")
        for name, caption in s.images:
            data = base64.b64encode((out / name).read_bytes()).decode("ascii")
            body.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(name)}'>"
                        f"<figcaption>{_inline(caption)} (<code>{html.escape(name)}</code>)</figcaption></figure>")
        for table in s.tables:
            body.append(markdown_to_html(table))
        for name, caption, fig in s.plots:
            body.append("<figure>" + fig.to_html(include_plotlyjs=False, full_html=False)
                        + f"<figcaption>{_inline(caption)} (interactive: <code>{html.escape(name)}</code>)"
                        "</figcaption></figure>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
            + "\n".join(body) + "</body></html>")
    if any(s.plots for s in sections):
        script = get_plotlyjs()
        atomic_write(out / "plotly.min.js", lambda p: p.write_text(script, encoding="utf-8"))
    for s in sections:
        for name, _, fig in s.plots:  # stand-alone pages sharing that plotly.min.js
            text = fig.to_html(include_plotlyjs="directory", full_html=True)
            atomic_write(out / name, lambda p, text=text: p.write_text(text, encoding="utf-8"))
    paths = {"html": out / "report.html", "markdown": out / "report.md", "json": out / "results.json"}
    atomic_write(paths["html"], lambda p: p.write_text(page, encoding="utf-8"))
    atomic_write(paths["markdown"], lambda p: p.write_text(report_markdown(sections, title, preamble), encoding="utf-8"))
    atomic_write_json(paths["json"], {**meta, "sections": {s.key: {"title": s.title, "measured": s.measured,
                                                                    "skipped": s.skipped, "seconds": s.seconds,
                                                                    "verdict": s.verdict, "rule": s.rule,
                                                                    "headline": s.headline,
                                                                    "numbers": s.numbers,
                                                                    "images": [n for n, _ in s.images],
                                                                    "plots": [n for n, _, _ in s.plots]}
                                                          for s in sections}})
    return paths


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def opening_table(sections: list[Section], link: bool = False) -> str:
    """The report's first table: per figure the paper's claim, our number, and whether it holds."""
    lines = ["| figure | the paper's claim | our number | holds? |", "|---|---|---|---|"]
    for s in sections:
        name = f"[{s.title}](#{s.key})" if link else s.title
        number = s.skipped and f"skipped: {s.skipped}" or s.headline or s.measured
        lines.append(f"| {_cell(name)} | {_cell(s.claim)} | {_cell(number)} | "
                     f"{'not run' if s.skipped else s.verdict} |")
    return "\n".join(lines)


def report_markdown(sections: list[Section], title: str, preamble: str) -> str:
    """The Markdown summary: the opening table (claim, our number, verdict per figure), then per
    figure the claim, the measurement, the verdict's rule, the tables and links to the images and
    interactive plots."""
    lines = [f"# {title}", "", opening_table(sections, link=True), "", preamble]
    for s in sections:
        lines += ["", f'<a id="{s.key}"></a>', f"## {s.title}", "", f"> **Paper:** {s.claim}", ""]
        if s.skipped:
            lines += [f"Skipped: {s.skipped}"]
            continue
        lines += [f"**Measured:** {s.measured}", "", f"**Verdict: {s.verdict}** ({s.rule or 'no rule'}; "
                  f"{s.seconds:.0f} s)", ""]
        lines += [f"![{caption}]({name})" for name, caption in s.images]
        for table in s.tables:
            lines += ["", table.strip()]
        lines += [f"- interactive: [{name}]({name}) — {caption}" for name, caption, _ in s.plots]
    return "\n".join(lines) + "\n"
