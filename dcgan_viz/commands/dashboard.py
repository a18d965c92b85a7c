"""`dcgan-viz dashboard`: serve the Dash dashboard (``apps/``) over local checkpoint directories.

The dashboard is served by waitress, a production WSGI server (pure Python, multi-threaded);
Flask's development server (reloader, Dash dev tools) only with ``--debug``. Binding to an address
other than this machine's loopback prints one line saying that others on the network can reach it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from dcgan_viz.devices import resolve_device

DEFAULT_THREADS = 8  # waitress worker threads: concurrent requests (model work still shares the CPU cores)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def network_warning(host: str, port: int) -> str | None:
    """The one-line warning for a bind address other than loopback (None for 127.0.0.1/localhost/::1)."""
    if host.strip("[]").lower() in LOCAL_HOSTS:
        return None
    return (f"warning: bound to {host}: the dashboard is then reachable by others on the network at port {port} "
            f"(it has no login); use --host 127.0.0.1 to keep it to this machine")


def serve(web: Any, host: str, port: int, threads: int = DEFAULT_THREADS, debug: bool = False) -> None:
    """Serve the Dash app ``web``: waitress with ``threads`` worker threads, or with ``debug`` Flask's
    development server in Dash debug mode. Prints the network warning (stderr) first when it applies."""
    warning = network_warning(host, port)
    if warning:
        typer.echo(warning, err=True)
    if debug:
        web.run(host=host, port=port, debug=True)
        return
    try:
        import waitress
    except ImportError as exc:
        raise FileNotFoundError(f'the dashboard is served by waitress ({exc.name} is missing): '
                                'pip install -e ".[dashboard]" (or run with --debug for Flask\'s development server)') from None
    waitress.serve(web.server, host=host, port=port, threads=threads, ident="dcgan-viz")


def register(app: typer.Typer) -> None:
    @app.command()
    def dashboard(
        checkpoints: Optional[List[Path]] = typer.Option(
            None, "--checkpoints", help="Directory searched for checkpoints (repeatable; default: checkpoints)."),
        host: str = typer.Option("127.0.0.1", help="Interface to bind (default: this machine only; "
                                 "anything else makes the dashboard reachable by others on the network)."),
        port: int = typer.Option(8050, help="Port."),
        threads: int = typer.Option(DEFAULT_THREADS, help="Worker threads of the server (concurrent requests)."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
        debug: bool = typer.Option(False, "--debug", help="Flask's development server in Dash debug mode "
                                   "(reloader, dev tools); not for shared use."),
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
            if threads < 1:
                raise ValueError(f"--threads must be at least 1, got {threads}")
            try:
                from apps.app import create_app  # installed with the package (pyproject includes apps*)
            except ImportError as exc:
                raise FileNotFoundError(f'the dashboard needs dash and plotly ({exc.name} is missing): '
                                        'pip install -e ".[dashboard]"') from None

            web = create_app(dirs, device=device)
            server = "Flask development server, debug mode" if debug else f"waitress, {threads} threads"
            typer.echo(f"dashboard on http://{host}:{port}/ ({server}; checkpoints under "
                       f"{', '.join(map(str, dirs))}; Ctrl-C stops)")
            sys.stdout.flush()
            serve(web, host, port, threads, debug)
        _run(go)
