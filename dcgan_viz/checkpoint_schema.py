"""One validation layer for the JSON files the toolkit reads back: checkpoint.json and run.json.

Every reader goes through ``read_json`` (size and nesting bounded, one-line errors naming the
file) and then ``validate_meta`` / ``validate_run_info`` (types, ranges, sizes), so a hand-edited
or damaged file is refused with one line before anything is built or allocated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 8 << 20  # checkpoint.json / run.json are a few KB
MAX_DEPTH = 32  # deepest legitimate nesting is ~4 (metrics, options, segments)
FORMAT = "dcgan-viz-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_DTYPES = ("float32", "float16")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class SchemaError(ValueError):
    """A JSON file the toolkit wrote was changed or damaged; the message is one line."""


def _depth(text: str) -> int:
    """Deepest bracket nesting of JSON text (brackets inside strings are skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch in "]}":
            depth -= 1
    return deepest


def read_json(path: str | Path, what: str = "JSON") -> Any:
    """Parse a small JSON file; SchemaError (one line, naming the file) when it is too large,
    nested deeper than MAX_DEPTH, not UTF-8 or not JSON. FileNotFoundError passes through."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise SchemaError(f"{path}: {what} is {size:,} bytes, larger than any the toolkit writes ({MAX_JSON_BYTES:,})")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: corrupt JSON (not UTF-8 text)") from None
    if _depth(text) > MAX_DEPTH:
        raise SchemaError(f"{path}: corrupt JSON (nested more than {MAX_DEPTH} levels deep)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: corrupt JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:  # ValueError: e.g. an integer with too many digits
        raise SchemaError(f"{path}: corrupt JSON ({type(exc).__name__}: {str(exc)[:80]})") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _need(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise SchemaError(f"{where}: {message}")


def _int_field(obj: dict, key: str, where: str, low: int, high: int, optional: bool = False) -> None:
    if key not in obj or (optional and obj[key] is None):
        _need(optional, where, f"{key} is missing")
        return
    value = obj[key]
    _need(_is_int(value), where, f"{key} must be an integer, got {_short(value)}")
    _need(low <= value <= high, where, f"{key} must be between {low} and {high}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_model(model: Any, where: str) -> None:
    """The ``model`` section: a ModelConfig's fields with the right types and sane sizes."""
    from .models import ModelConfig

    _need(isinstance(model, dict), where, f"model must be an object, got {type(model).__name__}")
    try:
        ModelConfig.from_dict(model)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{where}: invalid model config ({str(exc).splitlines()[0]})") from None


def validate_data(data: Any, where: str) -> None:
    """The ``data`` section: a DataSpec's fields with the right types."""
    from .data.spec import DataSpec

    _need(isinstance(data, dict), where, f"data must be an object, got {type(data).__name__}")
    try:
        DataSpec.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{where}: invalid data spec ({str(exc).splitlines()[0]})") from None


def validate_meta(meta: Any, where: str | Path) -> dict[str, Any]:
    """Check a parsed checkpoint.json; returns it, or SchemaError (one line starting with ``where``)."""
    where = str(where)
    _need(isinstance(meta, dict), where, f"checkpoint.json must hold an object, got {type(meta).__name__}")
    fmt = meta.get("format")
    _need(fmt == FORMAT, where, f"not a dcgan-viz checkpoint (format is {_short(fmt)})")
    version = meta.get("format_version")
    _need(_is_int(version), where, f"format_version must be an integer, got {_short(version)}")
    _need(version >= 1, where, f"format_version must be >= 1, got {version}")
    _need(version <= FORMAT_VERSION, where,
          f"checkpoint format version {version} is newer than this dcgan-viz understands ({FORMAT_VERSION}); "
          "upgrade dcgan-viz")
    _need("model" in meta, where, "model config is missing")
    validate_model(meta["model"], where)
    validate_data(meta.get("data") or {}, where)
    for key in ("train", "metrics"):
        if meta.get(key) is not None:
            _need(isinstance(meta[key], dict), where, f"{key} must be an object, got {type(meta[key]).__name__}")
    for key in ("step", "epoch"):
        _int_field(meta, key, where, 0, 1 << 53, optional=True)
    sha = meta.get("weights_sha256")
    _need(sha is None or (isinstance(sha, str) and _SHA256.fullmatch(sha) is not None), where,
          f"weights_sha256 must be 64 hex digits, got {_short(sha)}")
    dtype = meta.get("weights_dtype")
    _need(dtype is None or dtype in WEIGHTS_DTYPES, where, f"weights_dtype must be one of {WEIGHTS_DTYPES}, got {_short(dtype)}")
    version_text = meta.get("package_version")
    _need(version_text is None or isinstance(version_text, str), where, f"package_version must be text, got {_short(version_text)}")
    return meta


def validate_run_info(info: Any, where: str | Path) -> dict[str, Any]:
    """Check a parsed run.json (a training run's own settings); returns it or SchemaError."""
    from .train import TrainConfig

    where = str(where)
    _need(isinstance(info, dict), where, f"run.json must hold an object, got {type(info).__name__}")
    for key in ("model", "train", "data"):
        _need(key in info, where, f"{key} is missing")
    validate_model(info["model"], where)
    validate_data(info["data"], where)
    _need(isinstance(info["train"], dict), where, f"train must be an object, got {type(info['train']).__name__}")
    try:
        TrainConfig.from_dict(info["train"])
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{where}: invalid train config ({str(exc).splitlines()[0]})") from None
    segments = info.get("segments")
    if segments is not None:
        _need(isinstance(segments, list) and all(isinstance(s, dict) and _is_int(s.get("start_step"))
                                                 for s in segments), where, "segments must be a list of {start_step, ...}")
    return info
