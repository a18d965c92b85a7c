"""`dcgan-viz figures`: regenerate every figure of the paper's experiments, measured, and the report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dcgan_viz.outputs import results_dir


def register(app: typer.Typer) -> None:
    @app.command()
    def figures(
        out: Path = typer.Option(Path("out/figures"), help="Output directory (PNGs, interactive HTML, report.html, "
                                 "report.md, results.json)."),
        checkpoints: Path = typer.Option(Path("checkpoints"), help="Directory holding rooms64, faces64, fashion32, "
                                         "fashion-overfit and the evaluators (sections whose checkpoint is absent "
                                         "are skipped and say so)."),
        quick: bool = typer.Option(False, "--quick", help="Small samples (about a minute): for tests, not for numbers."),
        only: Optional[str] = typer.Option(None, help="Comma-separated sections: samples, walk, filters, removal, "
                                           "arithmetic, turn, memorization, dedup, representation."),
        cache_dir: Optional[Path] = typer.Option(Path("cache/analysis"), help="Cache of analysis results "
                                                 "(a second run is mostly reads)."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Paper figures 2-8, memorization, dedup and representation tables, with an HTML/Markdown report."""
        from dcgan_viz.cli import _run

        def go() -> None:
            results_dir(out)  # the output-path policy, before any expensive work
            from dcgan_viz.figures.context import FiguresConfig
            from dcgan_viz.figures.run import check_sections, run_figures

            keys = check_sections([k.strip() for k in only.split(",") if k.strip()] if only else None)
            config = FiguresConfig.quick() if quick else FiguresConfig.full()
            _, paths = run_figures(checkpoints, out, config, cache_dir, device, keys, log=typer.echo)
            typer.echo(f"wrote {paths['html']}, {paths['markdown']} and {paths['json']}")
        _run(go)
