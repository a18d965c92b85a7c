"""`dcgan-viz dashboard`: serve the Dash dashboard (``apps/``) over local checkpoint directories."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dcgan_viz.devices import resolve_device


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
        """Serve the dashboard: checkpoints and training curves, filters, latent space."""
        from dcgan_viz.cli import _run

        def go() -> None:
            dirs = list(checkpoints or [Path("checkpoints")])
            missing = [str(d) for d in dirs if not d.is_dir()]
            if missing:
                raise FileNotFoundError(f"no such checkpoint directory: {', '.join(missing)}")
            if not 0 < port < 65536:
                raise ValueError(f"--port must be between 1 and 65535, got {port}")
            resolve_device(device)  # a bad --device fails now, not when the first page loads a model
            try:
                from apps.app import create_app  # installed with the package (pyproject includes apps*)
            except ImportError as exc:
                raise FileNotFoundError(f'the dashboard needs dash and plotly ({exc.name} is missing): '
                                        'pip install -e ".[dashboard]"') from None

            web = create_app(dirs, device=device)
            typer.echo(f"dashboard on http://{host}:{port}/ (checkpoints under {', '.join(map(str, dirs))}; Ctrl-C stops)")
            web.run(host=host, port=port, debug=debug)
        _run(go)
