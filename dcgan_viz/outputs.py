"""One output-path policy for every verb (DESIGN.md 3b): never overwrite or delete what the
toolkit did not write; check before any expensive work; a one-line error otherwise.

Each verb calls one of these at its start, before it loads data or a model:

* ``run_dir(path, resume)`` -- ``train --out``: a new or empty directory; a run directory only
  with ``--resume`` (or a run that never reached its first checkpoint, which starts again).
* ``prepared_dir(path)`` -- ``prepare --out``: a new or empty directory, or a prepared cache
  (replaced atomically only when complete).
* ``results_dir(path)`` -- analysis verbs: a new directory or an existing one; the verb adds or
  replaces only its own named files there and never deletes anything.
* ``image_file(path)`` -- ``sample`` / ``interpolate --out``: not a directory; an existing file is
  replaced only when it is a PNG this toolkit wrote (tagged ``Software: dcgan-viz``).

Every one also checks that the location is writable (by creating and removing a probe file), so
``--out`` on a read-only or foreign directory fails in a second, not after an hour of work.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

PNG_SOFTWARE = "dcgan-viz"  # the tEXt "Software" value of every PNG the toolkit writes
RUN_ENTRIES = {"run.json", "log.jsonl", "samples", "checkpoints"}
PREPARED_MANIFEST = "manifest.json"


class OutputError(ValueError):
    """An output path the toolkit refuses to write; the message is one line."""


def _visible(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _existing_ancestor(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists() or parent.is_symlink():
            return parent
    return Path(".")


def check_writable(path: Path, what: str = "--out") -> None:
    """``path`` (a directory, existing or to be created) can be written: the nearest existing
    ancestor is a directory in which a file can be created."""
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise OutputError(f"{path}: cannot create {what}: {base} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".dcgan-viz-probe-", dir=base)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason = "permission denied" if exc.errno != errno.EROFS else "read-only file system"
        raise OutputError(f"{path}: {what} is not writable ({base}: {reason})") from None
    os.close(fd)
    os.unlink(probe)


def _not_a_file(path: Path, expected: str) -> None:
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is an existing file; {expected} must be a directory (choose another --out)")


def run_dir(path: str | Path, resume: bool = False) -> Path:
    """Check ``train --out``. A fresh run needs a new or empty directory (or a run that died before
    its first checkpoint: nothing was saved, it starts again); an existing run needs ``--resume``."""
    path = Path(path)
    _not_a_file(path, "a run directory")
    if path.is_dir():
        entries = _visible(path)
        is_run = "run.json" in entries or "checkpoints" in entries
        if resume:
            if not is_run:
                what = "empty" if not entries else f"not a training run (holds {_listing(entries)})"
                raise OutputError(f"{path}: nothing to resume: the directory is {what}")
        elif entries:
            foreign = [e for e in entries if e not in RUN_ENTRIES and not _own_temp(e)]
            if foreign or not is_run:
                raise OutputError(f"{path}: exists and was not written by dcgan-viz (holds {_listing(foreign or entries)}); "
                                  "choose a new or empty --out")
            if _has_checkpoint(path):
                raise OutputError(f"{path}: holds a training run; continue it with --resume, or choose a new --out")
    elif resume:
        raise OutputError(f"{path}: nothing to resume (no such run directory)")
    check_writable(path)
    return path


def _has_checkpoint(path: Path) -> bool:
    root = path / "checkpoints"
    return root.is_dir() and any(p.name.startswith("step-") and (p / "checkpoint.json").is_file() for p in root.iterdir())


def _own_temp(name: str) -> bool:
    return name.startswith(".") and (".tmp" in name or ".old" in name)


def _listing(entries: list[str]) -> str:
    shown = ", ".join(entries[:3])
    return shown + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")


def prepared_dir(path: str | Path) -> Path:
    """Check ``prepare --out``: a new or empty directory, or an existing prepared cache."""
    path = Path(path)
    _not_a_file(path, "a prepared cache")
    if path.is_dir():
        entries = _visible(path)
        if entries and PREPARED_MANIFEST not in entries:
            raise OutputError(f"{path}: exists and is not a prepared cache (holds {_listing(entries)}); "
                              "prepare replaces only its own caches: choose a new or empty --out")
    check_writable(path)
    return path


def results_dir(path: str | Path) -> Path:
    """Check an analysis verb's output directory: new or existing directory, writable."""
    path = Path(path)
    _not_a_file(path, "the output")
    check_writable(path)
    return path


def is_own_png(path: Path) -> bool:
    """A PNG this toolkit wrote (its tEXt ``Software`` is ``dcgan-viz``)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.startswith(b"\x89PNG\r\n\x1a\n") and b"Software\x00" + PNG_SOFTWARE.encode() in head


def image_file(path: str | Path, *siblings: str | Path) -> Path:
    """Check a PNG output file (and the ``siblings`` written next to it, e.g. OUT.json)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; --out names a PNG file (e.g. {path / 'samples.png'})")
    if path.exists() and not is_own_png(path):
        raise OutputError(f"{path}: exists and was not written by dcgan-viz; choose another --out or remove it")
    for sib in map(Path, siblings):
        if sib.is_dir():
            raise OutputError(f"{sib}: is a directory, but the toolkit writes a file there")
    check_writable(path.parent)
    return path
