"""Checkpoints: a directory of safetensors weights + JSON, loaded in one call.

Layout of a checkpoint directory::

    checkpoint.json       format, model config, training config, data spec, step/epoch,
                          metrics, package version, sha256 of the weights file
    model.safetensors     "G.<param>" and "D.<param>" tensors (fp32, or fp16 for shipped models)
    train_state.pt        optional: optimizer state for exact resume, a plain tensor/number dict
                          read only with torch.load(weights_only=True) (no code is unpickled)

A training run directory holds ``checkpoints/step-XXXXXXXX/`` directories; ``load_checkpoint``
accepts a run directory too and picks the newest complete one. Each checkpoint directory is
written under a temporary name and renamed into place, so a run killed at any moment leaves
only complete checkpoints behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .checkpoint_schema import FORMAT, FORMAT_VERSION, SchemaError, read_json, validate_meta
from .data.spec import DataSpec
from .devices import resolve_device
from .models import Discriminator, Generator, ModelConfig

META_FILE = "checkpoint.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "train_state.pt"
RUN_CHECKPOINTS = "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message is one line naming the path and the problem."""


@dataclass
class Bundle:
    """A loaded checkpoint: models in eval mode on ``device`` plus everything needed to analyse them."""

    G: Generator
    D: Discriminator | None  # None: a generator imported without its discriminator (see require_D)
    config: ModelConfig
    data: DataSpec
    train: dict[str, Any]
    meta: dict[str, Any]
    path: Path
    device: torch.device
    weights_sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Short stable identity of the weights, for cache keys."""
        return self.weights_sha256[:16]


def default_device() -> torch.device:
    return resolve_device(None)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    G: Generator,
    D: Discriminator | None,
    *,
    data: DataSpec,
    train: dict[str, Any] | None = None,
    step: int = 0,
    epoch: int = 0,
    metrics: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
    half: bool = False,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (temp dir + rename); returns its path.

    ``half`` stores weights as fp16 (loaded back as fp32). An existing checkpoint directory at
    ``path`` is replaced only after the new one is complete; anything else there is refused.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise CheckpointError(f"{path}: is an existing file, not a checkpoint directory; choose another destination")
    if path.is_dir() and not _is_checkpoint_dir(path) and any(path.iterdir()):
        raise CheckpointError(f"{path}: exists and is not a checkpoint; a save replaces only a checkpoint directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, net in (("G", G), ("D", D)):
            if net is None:  # a generator-only checkpoint (imported without a discriminator)
                continue
            for name, t in net.state_dict().items():
                t = t.detach().to("cpu")
                if half and t.is_floating_point():
                    t = t.half()
                tensors[f"{prefix}.{name}"] = t.contiguous()
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        if train_state is not None:
            torch.save(train_state, tmp / STATE_FILE)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "model": G.cfg.to_dict(),
            "train": train or {},
            "data": data.to_dict(),
            "step": int(step),
            "epoch": int(epoch),
            "metrics": metrics or {},
            "weights_dtype": "float16" if half else "float32",
            "weights_sha256": sha256_file(tmp / WEIGHTS_FILE),
        }
        if D is None:
            meta["discriminator"] = False
        if extra:
            meta.update(extra)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _is_checkpoint_dir(path: Path) -> bool:
    return (path / META_FILE).is_file()


def run_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    root = Path(run_dir) / RUN_CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith("step-") and _is_checkpoint_dir(p))


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a run directory's newest checkpoint; CheckpointError otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(2)
        kind = "a pickle/torch.save file" if head[:1] == b"\x80" or head == b"PK" else "a file"
        raise CheckpointError(
            f"{path}: is {kind}, not a checkpoint directory; pickled checkpoints are refused (never unpickled)"
        )
    if _is_checkpoint_dir(path):
        return path
    found = run_checkpoints(path)
    if found:
        return found[-1]
    raise CheckpointError(f"{path}: not a checkpoint ({META_FILE} missing) and no checkpoints/step-* inside")


def read_meta(path: str | Path) -> dict[str, Any]:
    """The checkpoint's JSON, validated (format, version, types, ranges, sizes, nesting) by
    checkpoint_schema; CheckpointError (one line naming the file) otherwise."""
    path = resolve_checkpoint(path)
    meta_file = path / META_FILE
    try:
        return validate_meta(read_json(meta_file, META_FILE), meta_file)
    except SchemaError as exc:
        raise CheckpointError(str(exc)) from None
    except OSError as exc:
        raise CheckpointError(f"{meta_file}: unreadable ({exc.strerror or exc})") from None


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """``"G.<param>"`` / ``"D.<param>"`` -> shape for ``cfg``, computed on the meta device (nothing allocated)."""
    with torch.device("meta"):
        G, D = Generator(cfg), Discriminator(cfg)
    return {f"{prefix}.{k}": tuple(v.shape) for prefix, net in (("G", G), ("D", D)) for k, v in net.state_dict().items()}


def has_discriminator(meta: dict[str, Any]) -> bool:
    """Whether a checkpoint holds D's weights (an imported generator alone records ``"discriminator": false``)."""
    return meta.get("discriminator", True) is not False


def check_weights(path: Path, meta: dict[str, Any], cfg: ModelConfig, verify_hash: bool = True) -> None:
    """The weights file exists, matches its recorded sha256 (``verify_hash``), and its safetensors header
    holds exactly the tensors ``cfg`` needs with the right shapes; read from the header alone, before
    any net is built or any tensor allocated. CheckpointError (one line) otherwise."""
    from safetensors import SafetensorError, safe_open

    wfile = path / WEIGHTS_FILE
    if not wfile.is_file():
        raise CheckpointError(f"{path}: weights file {WEIGHTS_FILE} is missing")
    expected_sha = meta.get("weights_sha256")
    if verify_hash and expected_sha and sha256_file(wfile) != expected_sha:
        raise CheckpointError(f"{wfile}: weights are truncated or corrupt (sha256 does not match checkpoint.json)")
    try:
        with safe_open(str(wfile), framework="pt") as fh:
            found = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{wfile}: unreadable weights ({(str(exc).splitlines() or [type(exc).__name__])[0][:200]})") from None
    want = expected_shapes(cfg)
    for prefix in ("G", "D") if has_discriminator(meta) else ("G",):
        mine = {k for k in want if k.startswith(prefix + ".")}
        theirs = {k for k in found if k.startswith(prefix + ".")}
        missing, unexpected = sorted(mine - theirs), sorted(theirs - mine)
        if missing or unexpected:
            what = f"missing {[k[2:] for k in missing[:3]]}" if missing else f"unexpected {[k[2:] for k in unexpected[:3]]}"
            raise CheckpointError(f"{path}: {prefix} weights do not fit the model config ({what})")
        for k in sorted(mine):
            if found[k] != want[k]:
                raise CheckpointError(f"{path}: {prefix} weights do not fit the model config "
                                      f"({k[2:]}: {found[k]} vs {want[k]})")


def _read_weights(path: Path, meta: dict[str, Any], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    check_weights(path, meta, cfg)
    wfile = path / WEIGHTS_FILE
    try:
        return load_file(str(wfile))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{wfile}: unreadable weights ({str(exc).splitlines()[0]})") from None


def model_config(path: Path, meta: dict[str, Any]) -> ModelConfig:
    """The (already validated) model config of a checkpoint's meta."""
    try:
        return ModelConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config in {META_FILE} ({exc})") from None


def _load_net(net: torch.nn.Module, prefix: str, tensors: dict[str, torch.Tensor], path: Path) -> None:
    own = net.state_dict()
    sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    missing = sorted(set(own) - set(sub))
    unexpected = sorted(set(sub) - set(own))
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{path}: {prefix} weights do not fit the model config ({what})")
    for k, v in sub.items():
        if v.shape != own[k].shape:
            raise CheckpointError(
                f"{path}: {prefix} weights do not fit the model config ({k}: {tuple(v.shape)} vs {tuple(own[k].shape)})"
            )
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in sub.items()})


def load_checkpoint(path: str | Path, device: torch.device | str | None = None) -> Bundle:
    """Load a checkpoint (or a run directory's newest) -> Bundle with G, D in eval mode on ``device``.

    ``device`` None = CUDA when available, else CPU. Raises CheckpointError (one line) on any problem.
    """
    dev = resolve_device(device)  # a bad --device fails before anything is read
    path = resolve_checkpoint(path)
    meta = read_meta(path)
    cfg = model_config(path, meta)
    try:
        data = DataSpec.from_dict(meta.get("data") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid data spec in {META_FILE} ({exc})") from None
    tensors = _read_weights(path, meta, cfg)  # shapes checked from the header before the nets are built
    G = Generator(cfg)
    _load_net(G, "G", tensors, path)
    D: Discriminator | None = None
    if has_discriminator(meta):
        D = Discriminator(cfg)
        _load_net(D, "D", tensors, path)
    for net in (G, D):
        if net is not None:
            net.to(dev).eval()
            for p in net.parameters():
                p.requires_grad_(False)
    return Bundle(
        G=G, D=D, config=cfg, data=data, train=meta.get("train", {}), meta=meta, path=path, device=dev,
        weights_sha256=meta.get("weights_sha256", ""), metrics=meta.get("metrics", {}),
    )


def load_train_state(path: str | Path) -> dict[str, Any] | None:
    """Optimizer state for resume, read with torch.load(weights_only=True); None if absent."""
    path = resolve_checkpoint(path)
    sfile = path / STATE_FILE
    if not sfile.is_file():
        return None
    try:
        return torch.load(sfile, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable file
        raise CheckpointError(f"{sfile}: unreadable training state ({str(exc).splitlines()[0][:200]})") from None


def load_weights_into(path: str | Path, G: Generator, D: Discriminator) -> dict[str, Any]:
    """Load a checkpoint's weights into existing models (for resume); returns its meta."""
    path = resolve_checkpoint(path)
    meta = read_meta(path)
    if model_config(path, meta) != G.cfg:
        raise CheckpointError(f"{path}: checkpoint model config differs from the run's config")
    tensors = _read_weights(path, meta, G.cfg)
    _load_net(G, "G", tensors, path)
    _load_net(D, "D", tensors, path)
    return meta


def export_checkpoint(src: str | Path, dest: str | Path, half: bool = True, extra: dict[str, Any] | None = None) -> Path:
    """Re-save a checkpoint (or a run's newest) for shipping: weights only (fp16 when ``half``),
    no optimizer state; ``extra`` is merged into checkpoint.json (e.g. how it was trained)."""
    bundle = load_checkpoint(src, device="cpu")
    meta = bundle.meta
    return save_checkpoint(dest, bundle.G, bundle.D, data=bundle.data, train=bundle.train, step=meta["step"],
                           epoch=meta["epoch"], metrics=bundle.metrics, half=half,
                           extra={**{k: meta[k] for k in ("training_run",) if k in meta}, **(extra or {})})


def require_D(bundle: Bundle, what: str) -> Discriminator:
    """The bundle's discriminator, or a one-line CheckpointError saying ``what`` needs one."""
    if bundle.D is None:
        raise CheckpointError(f"{what} needs a discriminator; {bundle.path} has none "
                              "(imported without --netD, or a wrapped generator without D)")
    return bundle.D


def with_data(bundle: Bundle, data: str | None) -> Bundle:
    """The bundle with its data spec replaced by ``data`` (``--data SPEC``: an imported model records
    none, or analyse another set), parsed at the model's image size and channels; unchanged if None."""
    from dataclasses import replace

    if data is None:
        return bundle
    spec = DataSpec.parse(data, size=bundle.config.image_size, channels=bundle.config.nc)
    return replace(bundle, data=spec)
