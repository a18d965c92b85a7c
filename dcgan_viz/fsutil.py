"""Atomic file writes: a temp file in the same directory, fsync, then rename over the target.

A reader (or a run killed mid-write) sees either the old file or the new one, never half.
Temporary names carry the writer's PID (``.<name>.<pid>.<random>.tmp``), so ``clean_stale``
can remove what a killed writer left behind without touching a live writer's files.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

# The toolkit's own temporary names, each with the writer's PID:
#   .<name>.<pid>.<random>.tmp / .old   atomic_write files, prepared caches (data/prepare.py)
#   .step-XXXXXXXX.tmp-<pid> / .old-<pid>  checkpoint directories (checkpoint.save_checkpoint)
TEMP_NAMES = (
    re.compile(r"^\..+\.(?P<pid>\d+)\.[a-z0-9_]{8}\.(tmp|old)$"),
    re.compile(r"^\.step-\d+\.(tmp|old)-(?P<pid>\d+)$"),
)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically rename ``tmp_path`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (another user's counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def clean_stale(directory: str | Path, stem: str | None = None) -> list[Path]:
    """Remove, in ``directory`` only, the temporary files and directories of the toolkit's own naming
    (TEMP_NAMES) whose writer process is gone (killed mid-save); returns what was removed. ``stem``:
    only the temporaries of ``<directory>/<stem>`` (in a directory the toolkit does not own). Anything
    else, and any temp of a live process, is left alone."""
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if stem is not None and not entry.name.startswith(f".{stem}."):
            continue
        for pattern in TEMP_NAMES:
            m = pattern.match(entry.name)
            if m is None:
                continue
            pid = int(m.group("pid"))
            if pid == os.getpid() or pid_alive(pid):
                break
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
            break
    if removed:
        log.info("%s: removed %d temporary file(s) left by interrupted writes", directory, len(removed))
    return removed
