"""`dcgan-viz dashboard` serves with waitress (threads option), Flask's development server only with
--debug, and warns in one line when bound to anything but this machine's loopback.

The app and both servers are replaced by fakes: the tests check which server is called with which
arguments, not that a socket opens (the served tests: test_concurrency.py, the browser tests).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dcgan_viz.cli import app as cli
from dcgan_viz.commands import dashboard as command

pytest.importorskip("dash")
pytest.importorskip("waitress")
runner = CliRunner()
WARNING = "reachable by others on the network"


class FakeApp:
    """What create_app returns, as far as serving goes: a WSGI ``server`` and Flask's ``run``."""

    def __init__(self):
        self.server = object()
        self.runs: list[dict] = []

    def run(self, **kwargs):
        self.runs.append(kwargs)


@pytest.fixture
def served(monkeypatch, tmp_path):
    """Invoke the CLI with fakes -> (result, fake app, waitress.serve calls)."""
    import apps.app
    import waitress

    fake, calls = FakeApp(), []
    monkeypatch.setattr(apps.app, "create_app", lambda dirs, device=None: fake)
    monkeypatch.setattr(waitress, "serve", lambda *args, **kwargs: calls.append((args, kwargs)))
    (tmp_path / "ckpts").mkdir()

    def invoke(*args: str):
        result = runner.invoke(cli, ["dashboard", "--checkpoints", str(tmp_path / "ckpts"), *args])
        return result, fake, calls

    return invoke


def test_default_is_waitress_on_loopback(served) -> None:
    result, fake, calls = served("--port", "8123")
    assert result.exit_code == 0, result.output
    assert calls == [((fake.server,), {"host": "127.0.0.1", "port": 8123, "threads": command.DEFAULT_THREADS,
                                       "ident": "dcgan-viz"})]
    assert fake.runs == []  # never the development server
    assert WARNING not in result.stderr and "waitress" in result.stdout


def test_threads_option(served) -> None:
    result, fake, calls = served("--threads", "3")
    assert result.exit_code == 0, result.output
    assert calls[0][1]["threads"] == 3 and "3 threads" in result.stdout
    result, _, _ = served("--threads", "0")
    assert result.exit_code != 0 and "--threads must be at least 1" in result.output


def test_debug_uses_the_flask_development_server(served) -> None:
    result, fake, calls = served("--debug", "--port", "8124")
    assert result.exit_code == 0, result.output
    assert calls == [] and fake.runs == [{"host": "127.0.0.1", "port": 8124, "debug": True}]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "my-lab-box"])
def test_warning_when_reachable_from_the_network(served, host) -> None:
    result, fake, calls = served("--host", host)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if WARNING in line]
    assert len(lines) == 1 and host in lines[0] and lines[0].startswith("warning:")
    assert WARNING not in result.stdout and calls[0][1]["host"] == host


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "LOCALHOST"])
def test_no_warning_on_loopback(served, host) -> None:
    result, _, calls = served("--host", host)
    assert result.exit_code == 0, result.output
    assert WARNING not in result.stderr and WARNING not in result.stdout and calls


def test_warning_also_in_debug_mode(served) -> None:
    result, fake, _ = served("--host", "0.0.0.0", "--debug")
    assert result.exit_code == 0 and fake.runs and result.stderr.count(WARNING) == 1


def test_network_warning_is_one_line() -> None:
    assert command.network_warning("127.0.0.1", 8050) is None
    text = command.network_warning("0.0.0.0", 8050)
    assert "\n" not in text and "8050" in text and WARNING in text
