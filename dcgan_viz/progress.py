"""Progress of long loops on stderr: a tqdm bar on a terminal; elsewhere (logs, pipes, CI) a plain
line every ``LINE_FRACTION`` of the work or ``LINE_SECONDS``, whichever comes first."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

LINE_FRACTION = 0.1
LINE_SECONDS = 30.0


class LineProgress:
    """tqdm's ``update``/``close`` for a stream that is not a terminal: one line per report."""

    def __init__(self, total: int, desc: str, unit: str, stream: TextIO,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit, self.stream, self.clock = max(int(total), 0), desc, unit, stream, clock
        self.n = 0
        self.started = self.last_time = clock()
        self.last_n = 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        step = max(1, int(self.total * LINE_FRACTION))
        if self.n - self.last_n >= step or now - self.last_time >= LINE_SECONDS or (self.n >= self.total > self.last_n):
            self._line(now)

    def _line(self, now: float) -> None:
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{share}, {now - self.started:.0f} s",
              file=self.stream, flush=True)
        self.last_n, self.last_time = self.n, now

    def close(self) -> None:
        pass

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress(total: int, desc: str, unit: str = "it", enabled: bool = True, stream: TextIO | None = None):
    """A context manager with ``update(n)`` reporting ``total`` units of work on ``stream`` (stderr):
    a tqdm bar when it is a terminal, else ``LineProgress``; silent when not ``enabled``."""
    if not enabled:
        return _Silent()
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
    return LineProgress(total, desc, unit, stream)
