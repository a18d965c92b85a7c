"""Disk cache for expensive analysis results, keyed by their inputs.

A result is a dataclass of numpy arrays, numbers, strings, lists and dicts (nested dataclasses
allowed). It is stored as ``<key>.npz`` (arrays, ``allow_pickle=False``) + ``<key>.json`` (the
rest), never pickled. The key is a hash of the analysis name, the checkpoint's weights hash
and the parameters, so a changed input is a cache miss, never a stale hit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from .fsutil import atomic_write, atomic_write_json

T = TypeVar("T")


def cache_key(name: str, **parts: Any) -> str:
    """``name-<16 hex>`` from a stable JSON encoding of ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return f"{name}-{hashlib.sha256(blob).hexdigest()[:16]}"


def _split(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dataclass__": True, **{f.name: _split(getattr(obj, f.name), arrays, f"{path}.{f.name}")
                                          for f in dataclasses.fields(obj)}}
    if isinstance(obj, np.ndarray):
        arrays[path] = obj
        return {"__array__": path}
    if isinstance(obj, dict):
        return {str(k): _split(v, arrays, f"{path}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _join(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        return {k: _join(v, arrays) for k, v in obj.items() if k != "__dataclass__"}
    if isinstance(obj, list):
        return [_join(v, arrays) for v in obj]
    return obj


def save_result(directory: str | Path, key: str, result: Any) -> None:
    arrays: dict[str, np.ndarray] = {}
    tree = _split(result, arrays, "r")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    atomic_write(Path(directory) / f"{key}.npz", lambda p: p.write_bytes(data))
    atomic_write_json(Path(directory) / f"{key}.json", tree)  # written last: its presence marks completeness


def load_result(directory: str | Path, key: str, cls: Callable[..., T]) -> T | None:
    """The cached result, rebuilt with ``cls(**fields)`` (one level), or None when absent/corrupt."""
    jpath, npath = Path(directory) / f"{key}.json", Path(directory) / f"{key}.npz"
    if not jpath.is_file() or not npath.is_file():
        return None
    try:
        with np.load(npath, allow_pickle=False) as npz:
            fields = _join(json.loads(jpath.read_text()), {k: npz[k] for k in npz.files})
        return cls(**fields)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def cached(directory: str | Path | None, key: str, cls: Callable[..., T], compute: Callable[[], T]) -> T:
    """``compute()`` unless ``directory`` holds a result under ``key``; stores what it computes.

    ``directory`` None disables caching. Nested dataclasses come back as dicts unless ``cls``
    rebuilds them (give it a classmethod that does).
    """
    if directory is None:
        return compute()
    hit = load_result(directory, key, cls)
    if hit is not None:
        return hit
    result = compute()
    save_result(directory, key, result)
    return result
