"""Save and load evaluation helpers as checkpoint directories (no pickle anywhere).

A checkpoint is a directory::

    model.safetensors   weights (fp32, or fp16 with ``half=True``; loaded back as fp32)
    config.json         {"format": "dcgan-viz-evaluator", "format_version": 1,
                         "kind": "segmenter" | "attributes" | "classifier",
                         "model": {constructor config}, "weights_sha256": ..., "weights_dtype": ...,
                         "classes" | "attribute_names" + "attribute_kinds" | "label_names": ...,
                         "metrics": {...}, "data_spec": {...}, "training": {...}, "package_version": ...}

The directory is written complete under a temporary name next to the target and renamed
into place, so a reader never sees a half-written checkpoint; the weights' SHA-256 in
config.json catches a weights file changed or damaged afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import safetensors.torch
import torch
from torch import nn

import dcgan_viz
from dcgan_viz.evaluation.attributes import AttributeClassifier, AttributeConfig
from dcgan_viz.evaluation.classifier import Classifier, ClassifierConfig
from dcgan_viz.evaluation.segmenter import Segmenter, SegmenterConfig
from dcgan_viz.fsutil import atomic_write_bytes, atomic_write_json

FORMAT = "dcgan-viz-evaluator"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"

# kind -> (model class, config class, name of the per-output names entry a caller may give)
_KINDS: dict[str, tuple[type[nn.Module], type, str | None]] = {
    "segmenter": (Segmenter, SegmenterConfig, "classes"),
    "attributes": (AttributeClassifier, AttributeConfig, None),
    "classifier": (Classifier, ClassifierConfig, "label_names"),
}
_META_KEYS = {"metrics", "data_spec", "training"}

Evaluator = Segmenter | AttributeClassifier | Classifier


def _kind_of(model: nn.Module) -> str:
    for kind, (cls, _, _) in _KINDS.items():
        if isinstance(model, cls):
            return kind
    raise ValueError(f"not an evaluation helper: {type(model).__name__}")


def _plain(value: Any) -> Any:
    """DataSpec-like objects (with ``to_dict``) -> dicts; anything else unchanged."""
    return value.to_dict() if hasattr(value, "to_dict") else value


def _build_config(model: nn.Module, meta: Mapping[str, Any], weights: bytes, half: bool) -> dict:
    kind = _kind_of(model)
    names_key = _KINDS[kind][2]
    allowed = _META_KEYS | ({names_key} if names_key else set())
    unknown = set(meta) - allowed
    if unknown:
        raise ValueError(f"unknown meta keys for a {kind} checkpoint: {sorted(unknown)} (allowed: {sorted(allowed)})")
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model": model.config.to_dict(),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "weights_dtype": "float16" if half else "float32",
        "metrics": dict(meta.get("metrics") or {}),
        "data_spec": _plain(meta.get("data_spec")),
        "training": dict(meta.get("training") or {}),
        "package_version": dcgan_viz.__version__,
    }
    if kind == "attributes":
        config["attribute_names"] = list(model.config.names)
        config["attribute_kinds"] = model.config.kinds
    else:
        names = meta.get(names_key)
        names = [str(i) for i in range(model.config.n_classes)] if names is None else [str(n) for n in names]
        if len(names) != model.config.n_classes:
            raise ValueError(f"{names_key} has {len(names)} entries but the model has {model.config.n_classes} classes")
        config[names_key] = names
    return config


def _weights_bytes(model: nn.Module, half: bool) -> bytes:
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu")
        if half and t.is_floating_point():
            t = t.half()
        tensors[name] = t.contiguous()
    return safetensors.torch.save(tensors)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_evaluator(
    model: Evaluator, path: str | Path, meta: Mapping[str, Any] | None = None, *, half: bool = False
) -> Path:
    """Write ``model`` as a checkpoint directory at ``path`` (replacing an existing checkpoint there).

    ``meta`` may hold ``metrics``, ``data_spec`` (dict or DataSpec), ``training`` (settings) and
    the output names: ``classes`` for a segmenter, ``label_names`` for a classifier (default
    "0".."K-1"); an attribute classifier's names and kinds come from its config. ``half``
    stores weights as fp16 (half the size; loaded back as fp32).
    """
    path = Path(path)
    weights = _weights_bytes(model, half)
    config = _build_config(model, meta or {}, weights, half)
    if path.exists() and not (path.is_dir() and ((path / CONFIG).is_file() or not any(path.iterdir()))):
        raise ValueError(f"refusing to overwrite {path}: it exists and is not an evaluator checkpoint directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        atomic_write_bytes(tmp / WEIGHTS, weights)
        atomic_write_json(tmp / CONFIG, config)
        _fsync_dir(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _read_config(path: Path) -> dict:
    if not path.is_dir():
        raise ValueError(f"evaluator checkpoint {path} does not exist or is not a directory")
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise ValueError(f"evaluator checkpoint {path} has no {CONFIG}")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"evaluator checkpoint {path}: {CONFIG} is not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{cfg_path} is not a {FORMAT} config")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{cfg_path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{cfg_path} has format_version {version}, newer than this dcgan-viz reads ({FORMAT_VERSION}); "
            "upgrade dcgan-viz"
        )
    if config.get("kind") not in _KINDS:
        raise ValueError(f"{cfg_path}: unknown kind {config.get('kind')!r}; expected one of {sorted(_KINDS)}")
    return config


def _read_weights(path: Path, config: dict) -> dict[str, torch.Tensor]:
    w_path = path / WEIGHTS
    if not w_path.is_file():
        raise ValueError(f"evaluator checkpoint {path} has no {WEIGHTS}")
    data = w_path.read_bytes()
    expected = config.get("weights_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"{w_path} is corrupt or was replaced: its SHA-256 does not match {CONFIG}")
    try:
        return safetensors.torch.load(data)
    except Exception as err:  # safetensors raises its own error types for malformed files
        raise ValueError(f"{w_path} is not a readable safetensors file ({type(err).__name__}: {err})") from None


def load_evaluator(
    path: str | Path, device: str | torch.device | None = None, *, kind: str | None = None
) -> tuple[Evaluator, dict]:
    """Load a checkpoint directory -> (model in eval mode with fp32 weights on ``device``, config dict).

    ``kind``: the kind the caller expects ("segmenter", "attributes" or "classifier"); a
    checkpoint of another kind is refused. ``device`` None = CPU. Raises one-line
    ``ValueError``s for a missing or damaged checkpoint.
    """
    path = Path(path)
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"unknown evaluator kind {kind!r}; expected one of {sorted(_KINDS)}")
    config = _read_config(path)
    if kind is not None and config["kind"] != kind:
        raise ValueError(f"{path} holds a {config['kind']} evaluator, not a {kind}")
    model_cls, config_cls, _ = _KINDS[config["kind"]]
    try:
        model = model_cls(config_cls.from_dict(config.get("model") or {}))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path / CONFIG}: bad model config ({err})") from None
    state = {name: t.float() if t.is_floating_point() else t for name, t in _read_weights(path, config).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"weights in {path / WEIGHTS} do not fit the model config: {detail[:300]}") from None
    return model.to(device or "cpu").eval(), config
