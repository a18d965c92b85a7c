"""Progress on stderr: a tqdm bar on a terminal, a line per 10 % or 30 s elsewhere, nothing when disabled."""

from __future__ import annotations

import io

from dcgan_viz.progress import LINE_SECONDS, LineProgress, progress


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_line_every_tenth_of_the_work() -> None:
    out = io.StringIO()
    with LineProgress(200, "hashing", "img", out, _Clock()) as bar:
        for _ in range(200):
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("hashing: 20/200 img (10%)")
    assert lines[-1].startswith("hashing: 200/200 img (100%)")


def test_a_line_when_30_seconds_passed_without_a_tenth() -> None:
    out, clock = io.StringIO(), _Clock()
    bar = LineProgress(1000, "training", "step", out, clock)
    bar.update(1)
    assert out.getvalue() == ""  # control: 0.1 % and no time passed
    clock.now = LINE_SECONDS
    bar.update(1)
    assert out.getvalue().splitlines() == ["training: 2/1000 step (0%), 30 s"]


def test_terminal_gets_a_bar_disabled_gets_nothing() -> None:
    term = _Terminal()
    with progress(10, "x", enabled=True, stream=term) as bar:
        bar.update(10)
    assert "10/10" in term.getvalue() and "\r" in term.getvalue()  # tqdm redraws in place
    quiet = io.StringIO()
    with progress(10, "x", enabled=False, stream=quiet) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""
