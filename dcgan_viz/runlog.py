"""Training logs: ``log.jsonl`` (a run directory) or ``log.jsonl.gz`` (a shipped checkpoint).

One JSON object per step (``step``, ``epoch``, ``loss_d``, ``loss_g``, ``d_x``, ``d_g_z1``,
``d_g_z2``, ``img_per_s``). A log being written by a live run may end in a partial line (or a
gzip stream may be cut short); reading stops quietly at the first unreadable line.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import numpy as np

LOG_NAMES = ("log.jsonl", "log.jsonl.gz")


def find_log(checkpoint_dir: str | Path) -> Path | None:
    """The log that belongs to a checkpoint directory: its own ``log.jsonl[.gz]`` (shipped
    checkpoints, run directories), else the run's log for ``<run>/checkpoints/step-*``; None if none."""
    path = Path(checkpoint_dir)
    candidates = [path]
    if path.parent.name == "checkpoints":
        candidates.append(path.parent.parent)
    for folder in candidates:
        for name in LOG_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def _lines(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        try:
            for line in fh:
                yield line
        except (EOFError, OSError, zlib.error):  # gzip stream cut short: keep what was read
            return


def read_log(path: str | Path) -> dict[str, np.ndarray]:
    """Numeric columns of a ``.jsonl`` / ``.jsonl.gz`` log -> {name: float64 array}, one entry
    per complete line (a key missing from a line is NaN). Empty dict for an empty log.

    A partially written last line (live run) and a truncated gzip stream are tolerated;
    a missing file raises FileNotFoundError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such log file")
    rows: list[dict] = []
    for line in _lines(path):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break  # partial last line of a live run (or garbage): stop here
        if isinstance(rec, dict):
            rows.append(rec)
    keys: list[str] = []
    for rec in rows:
        for k, v in rec.items():
            if k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.append(k)
    out: dict[str, np.ndarray] = {}
    for k in keys:
        col = np.full(len(rows), np.nan, dtype=np.float64)
        for i, rec in enumerate(rows):
            v = rec.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                col[i] = v
        out[k] = col
    return out
