"""`dcgan-viz dashboard`: serve the Dash dashboard (``apps/``) over local checkpoint directories."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer


def _import_create_app():
    """``apps`` sits next to the package in the repository (not installed): make it importable."""
    try:
        from apps.app import create_app
    except ModuleNotFoundError as exc:
        if exc.name not in ("apps", "apps.app"):
            raise
        repo = Path(__file__).resolve().parents[2]
        if not (repo / "apps" / "app.py").is_file():
            raise FileNotFoundError("the dashboard (apps/app.py) is not in this installation; "
                                    "install dcgan-viz from the repository with pip install -e \".[dashboard]\"") from None
        sys.path.insert(0, str(repo))
        from apps.app import create_app
    return create_app


def register(app: typer.Typer) -> None:
    @app.command()
    def dashboard(
        checkpoints: Optional[List[Path]] = typer.Option(
            None, "--checkpoints", help="Directory searched for checkpoints (repeatable; default: checkpoints)."),
        host: str = typer.Option("127.0.0.1", help="Interface to bind (default: this machine only)."),
        port: int = typer.Option(8050, help="Port."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
        debug: bool = typer.Option(False, "--debug", help="Dash debug mode (reloader, dev tools)."),
    ) -> None:
        """Serve the dashboard: model cards, sample grids and live training curves."""
        from dcgan_viz.cli import _run

        def go() -> None:
            dirs = list(checkpoints or [Path("checkpoints")])
            missing = [str(d) for d in dirs if not d.is_dir()]
            if missing:
                raise FileNotFoundError(f"no such checkpoint directory: {', '.join(missing)}")
            if not 0 < port < 65536:
                raise ValueError(f"--port must be between 1 and 65535, got {port}")
            try:
                import dash  # noqa: F401
            except ImportError:
                raise FileNotFoundError('the dashboard needs dash and plotly: pip install -e ".[dashboard]"') from None
            web = _import_create_app()(dirs, device=device)
            typer.echo(f"dashboard on http://{host}:{port}/ (checkpoints under {', '.join(map(str, dirs))}; Ctrl-C stops)")
            web.run(host=host, port=port, debug=debug)
        _run(go)
