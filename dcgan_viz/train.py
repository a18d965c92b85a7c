"""Training engine: the paper's DCGAN recipe, fast on a GPU, exact on a CPU, resumable.

Paper defaults (TrainConfig): Adam lr 2e-4, betas (0.5, 0.999), batch 128, non-saturating
loss (BCE with logits on D's logits), images in [-1, 1], z uniform in [-1, 1].

Fast path on CUDA (DESIGN.md section 6): the training set lives on the GPU as uint8 NHWC and
each batch is gathered and scaled there; bf16 autocast; channels_last; fused Adam; and the
whole D-step + G-step captured in one CUDA graph (launch overhead dominates otherwise). Metrics
stay on the GPU and are copied back every ``flush_every`` steps, so logging does not sync the
device each step.

Randomness is a pure function of (seed, epoch, step): the epoch's permutation comes from a
generator seeded by (seed, epoch), each step's noise from one seeded by (seed, step, rank).
A resumed run therefore replays the uninterrupted run exactly without storing RNG state.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import (
    RUN_CHECKPOINTS,
    CheckpointError,
    load_train_state,
    load_weights_into,
    read_meta,
    resolve_checkpoint,
    run_checkpoints,
    save_checkpoint,
)
from .checkpoint_schema import read_json, validate_run_info
from .data.spec import DataSpec
from .devices import resolve_device
from .fsutil import atomic_write, atomic_write_json, clean_stale
from .health import HEALTH_WARMUP, FrechetTracker, HealthProbe, collapse_advice, collapse_signs
from .images import from_uint8, grid, save_png
from .latents import latents
from .models import Discriminator, Generator, ModelConfig
from .remedies import Remedies, RemedyBuffers, parse_augment

log = logging.getLogger(__name__)
LOG_FILE = "log.jsonl"
BEST_CHECKPOINT = "best"  # checkpoints/best: the epoch with the lowest Fréchet distance (with --evaluator)
SAMPLES_DIR = "samples"
GRID_SEED = 0  # the fixed-noise grid is latents (seed 0, indices 0..63) of the model's prior


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (NaN/inf losses, collapse); the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """How to train. Defaults are the paper's; CLI and dashboard read them from here."""

    epochs: int = 5
    max_steps: int | None = None
    max_seconds: float | None = None  # stop (with a checkpoint) once this much wall time has passed
    batch_size: int = 128
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # "auto" (bf16 on CUDA), "bf16", "off"
    channels_last: str = "auto"  # "auto" (on CUDA), "on", "off"
    cuda_graph: str = "auto"  # "auto" (on for single-process CUDA), "on", "off"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    flush_every: int | None = None  # None: 1 on CPU, 50 on CUDA
    collapse_steps: int = 1000  # stop when D(G(z)) < collapse_threshold this many steps in a row; 0 = never
    collapse_threshold: float = 1e-3
    grid_size: int = 64
    grid_every: int = 1  # epochs between fixed-noise sample grids (epochs 1 and 5 always get one)
    progress: bool = True
    # Remedies against collapse (dcgan_viz.remedies); all off by default = the paper's recipe.
    lr_d: float | None = None  # D's learning rate (TTUR); None: the same as lr
    label_smoothing: float = 0.0  # one-sided: D's target for real images is 1 - this
    instance_noise: float = 0.0  # std (model units, images in [-1, 1]) of noise on D's inputs at step 0
    instance_noise_steps: int = 10000  # ... annealed linearly to 0 at this step
    dequantize: float = 0.0  # uniform noise of this many uint8 levels on real images
    augment: str = ""  # DiffAugment policy on D's inputs: comma-separated translation, cutout, color
    health_every: int = 500  # steps between health checks (sample diversity vs real; 0 = never)
    health_warmup: int = HEALTH_WARMUP  # steps before low diversity counts as a sign of collapse
    evaluator: str | None = None  # evaluation helper: Fréchet distance each epoch, best epoch kept (checkpoints/best)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def remedies(self) -> Remedies:
        return Remedies(label_smoothing=self.label_smoothing, instance_noise=self.instance_noise,
                        instance_noise_steps=self.instance_noise_steps, dequantize=self.dequantize,
                        augment=parse_augment(self.augment))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def __post_init__(self) -> None:
        _check_train_numbers(self)
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (batchnorm needs a batch)")
        if self.epochs < 1 and not self.max_steps:
            raise ValueError("epochs must be >= 1")
        if self.lr_d is not None and not self.lr_d > 0:
            raise ValueError(f"lr_d must be > 0, got {self.lr_d}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if not 0 <= self.instance_noise <= 2:
            raise ValueError(f"instance_noise must be in [0, 2] (images are in [-1, 1]), got {self.instance_noise}")
        if self.instance_noise_steps < 1:
            raise ValueError(f"instance_noise_steps must be >= 1, got {self.instance_noise_steps}")
        if not 0 <= self.dequantize <= 64:
            raise ValueError(f"dequantize must be in [0, 64] uint8 levels, got {self.dequantize}")
        if self.health_every < 0 or self.health_warmup < 0:
            raise ValueError(f"health_every and health_warmup must be >= 0, got {self.health_every}, {self.health_warmup}")
        parse_augment(self.augment)
        for name, allowed in (("amp", ("auto", "bf16", "off")), ("channels_last", ("auto", "on", "off")),
                              ("cuda_graph", ("auto", "on", "off"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")


def _check_train_numbers(cfg: TrainConfig) -> None:
    """Types and ranges of TrainConfig's numbers: nonsense (``max_steps=-3``, ``keep_checkpoints=0``,
    ``checkpoint_every=-1``, a string from a hand-edited run.json) is a ValueError, not a silent no-op."""
    def integer(name: str, low: int, optional: bool = False) -> None:
        value = getattr(cfg, name)
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")

    def number(name: str, low: float, high: float, optional: bool = False) -> None:
        value = getattr(cfg, name)
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low} and {high}, got {value}")

    integer("epochs", 0)
    integer("max_steps", 1, optional=True)
    integer("batch_size", 2)
    integer("seed", -(1 << 63))
    integer("checkpoint_every", 0)  # 0: only the final checkpoint
    integer("keep_checkpoints", 1)
    integer("flush_every", 1, optional=True)
    integer("collapse_steps", 0)
    integer("grid_size", 1)
    integer("grid_every", 1)
    number("max_seconds", 1e-9, 1e12, optional=True)
    number("lr", 1e-12, 10.0)
    number("beta1", 0.0, 0.999999)
    number("beta2", 0.0, 0.999999)
    number("collapse_threshold", 0.0, 1.0)
    for name in ("lr_d", "label_smoothing", "instance_noise", "dequantize"):  # types here, ranges in __post_init__
        number(name, -math.inf, math.inf, optional=name == "lr_d")
    for name in ("instance_noise_steps", "health_every", "health_warmup"):
        integer(name, -(1 << 63))
    if not isinstance(cfg.augment, str):
        raise ValueError(f"augment must be text, got {cfg.augment!r}")
    if cfg.evaluator is not None and not isinstance(cfg.evaluator, str):
        raise ValueError(f"evaluator must be a path, got {cfg.evaluator!r}")
    if not isinstance(cfg.device, str):
        raise ValueError(f"device must be text, got {cfg.device!r}")
    if not isinstance(cfg.progress, bool):
        raise ValueError(f"progress must be true or false, got {cfg.progress!r}")


RUN_FILE = "run.json"


def run_segments(info: dict[str, Any], before: int | None = None) -> list[dict[str, Any]]:
    """The parts a run trained in, [{start_step, device, threads}], from its run.json dict (files
    written before ``segments`` existed: one part from their top-level device and threads, None
    when absent); only those starting before step ``before`` when given."""
    segs = info.get("segments") or [{"start_step": 0, "device": info.get("device"), "threads": info.get("threads")}]
    return [seg for seg in segs if before is None or seg["start_step"] < before]
# Train settings a resumed run may change: where and how fast it runs, and how far it goes. The rest
# (batch size, optimiser, seed) define the run and must stay, or the resume would not be exact.
RESUMABLE_TRAIN_SETTINGS = ("epochs", "max_steps", "max_seconds", "device", "amp", "channels_last", "cuda_graph", "health_every", "health_warmup", "evaluator",
                            "checkpoint_every", "keep_checkpoints", "flush_every", "collapse_steps", "grid_every",
                            "progress")


def _resume_checkpoint(run_dir: str | Path) -> Path:
    """The newest complete checkpoint of the run, or CheckpointError: there is nothing to resume."""
    found = run_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir}: nothing to resume (no checkpoints/step-* inside)")
    return found[-1]


def resume_configs(run_dir: str | Path, model: dict[str, Any], train: dict[str, Any],
                   data: str | None) -> tuple[ModelConfig, TrainConfig, DataSpec]:
    """The configs of the run in ``run_dir`` (its run.json), for ``--resume`` without repeating options.

    ``model`` / ``train``: only the settings the user gave explicitly; ``data``: the explicit data
    spec text (parsed at the run's image size and channels) or None. Train settings in
    RESUMABLE_TRAIN_SETTINGS override the run's; any other explicit setting must equal the run's,
    else ValueError naming it (a different model cannot resume).
    """
    _resume_checkpoint(run_dir)
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: nothing to resume (no {RUN_FILE} inside)")
    try:
        saved = validate_run_info(read_json(path, RUN_FILE), path)
        run_model = ModelConfig.from_dict(saved["model"])
        run_train = TrainConfig.from_dict(saved["train"])
        run_data = DataSpec.from_dict(saved["data"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable run config ({exc})") from None
    _require_same(run_model, model, "the run was trained with", "drop the option to resume it")
    fixed = {k: v for k, v in train.items() if k not in RESUMABLE_TRAIN_SETTINGS}
    for name, value in fixed.items():
        if getattr(run_train, name) != value:
            raise ValueError(f"the run was trained with {name}={getattr(run_train, name)}, not {value}; "
                             f"a resumed run keeps it")
    if data is not None:
        spec = DataSpec.parse(data, size=run_data.size, channels=run_data.channels)
        if replace(spec, content_hash=None) != replace(run_data, content_hash=None):
            raise ValueError(f"the run was trained on data {run_data.to_dict()}, not {spec.to_dict()}")
    resumed = TrainConfig.from_dict({**run_train.to_dict(), **{k: v for k, v in train.items() if k not in fixed}})
    return run_model, resumed, run_data


def _require_same(config: Any, given: dict[str, Any], what: str, hint: str) -> None:
    """ValueError naming the first setting in ``given`` that differs from ``config``'s."""
    for name, value in given.items():
        if getattr(config, name) != value:
            raise ValueError(f"{what} {name}={getattr(config, name)}, not {value}; {hint}")


def fork_configs(source: str | Path, model: dict[str, Any], train: dict[str, Any],
                 data: str | None) -> tuple[ModelConfig, TrainConfig, DataSpec, Path]:
    """The configs of a *new* run that starts from checkpoint ``source`` (a checkpoint or run
    directory: its newest checkpoint) with changed settings, and that checkpoint's path.

    The new run inherits the source's model, data and training settings; any train setting in
    ``train`` (the options given explicitly) replaces the inherited one, and ``data`` (spec text)
    the data. Model settings cannot change (the weights fix them): a differing one is ValueError.
    """
    path = resolve_checkpoint(source)
    meta = read_meta(path)
    try:
        src_model = ModelConfig.from_dict(meta["model"])
        src_train = TrainConfig.from_dict(meta.get("train") or {})
        src_data = DataSpec.from_dict(meta.get("data") or {})
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint config ({exc})") from None
    _require_same(src_model, model, "the checkpoint to fork has", "a fork keeps the model (drop the option)")
    spec = src_data if data is None else DataSpec.parse(data, size=src_data.size, channels=src_data.channels)
    return src_model, TrainConfig.from_dict({**src_train.to_dict(), **train}), spec, path


def _seeded(device: torch.device, *parts: int) -> torch.Generator:
    """A generator on ``device`` seeded by a hash of ``parts`` (no global RNG state)."""
    seed = 0x2545F491
    for p in parts:
        seed = (seed * 0x100000001B3 ^ (int(p) + 0x9E3779B9)) % (1 << 62)
    return torch.Generator(device=device).manual_seed(seed)


class ImageBank:
    """The training images as uint8 (N, H, W, C), on the training device when they fit.

    ``batch(idx)`` gathers (B,) indices and returns float (B, C, H, W) in [-1, 1] on the device
    (channels_last strides, since NHWC permuted to NCHW is channels_last).
    """

    def __init__(self, images: Any, device: torch.device, max_device_bytes: int | None = None) -> None:
        if isinstance(images, np.ndarray):
            with warnings.catch_warnings():  # a read-only memmap is only ever read: wrap it without a copy
                warnings.simplefilter("ignore", UserWarning)
                tensor = torch.from_numpy(images)
        else:
            tensor = torch.as_tensor(images)
        if tensor.dtype != torch.uint8 or tensor.dim() != 4:
            raise ValueError(f"training images must be uint8 (N, H, W, C), got {tensor.dtype} {tuple(tensor.shape)}")
        self.n = int(tensor.shape[0])
        self.device = device
        limit = max_device_bytes
        if limit is None and device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            limit = free // 2
        if device.type == "cuda" and tensor.numel() > (limit or 0):
            # too large for the GPU: keep it in pinned host memory, copy each batch
            self.images = tensor.pin_memory()
            self.on_device = False
        else:
            self.images = tensor.to(device)
            self.on_device = True

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        if self.on_device:
            return from_uint8(self.images[idx.to(self.images.device)])
        return from_uint8(self.images[idx.cpu()].to(self.device, non_blocking=True))


class GANStep:
    """One DCGAN iteration (D-step then G-step) on static buffers, optionally as a CUDA graph.

    Inputs are written into ``self.idx`` (B,) int64 and ``self.z`` (B, nz) before ``run()``;
    outputs are ``self.metrics`` (5,) float32: loss_d, loss_g, D(x), D(G(z)) before and after
    the D update.
    """

    METRICS = ("loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2")

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, bank: ImageBank, batch_size: int, nz: int,
                 device: torch.device, amp: bool, d_inner: torch.nn.Module,
                 remedies: Remedies = Remedies(), image_shape: tuple[int, int, int] = (3, 64, 64)) -> None:
        self.G, self.D, self.opt_g, self.opt_d, self.bank = G, D, opt_g, opt_d, bank
        self.d_inner = d_inner  # D without a DDP wrapper, for the G-step (no D gradient sync needed)
        self.device, self.amp = device, amp
        self.idx = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.z = torch.zeros(batch_size, nz, device=device)
        # remedies (all off: None, and the step below is exactly the paper's)
        self.remedies = RemedyBuffers(remedies, batch_size, image_shape, device) if remedies.any else None
        self.real_target = 1.0 - remedies.label_smoothing
        self.metrics = torch.zeros(len(self.METRICS), device=device)
        self.g_params = [p for p in G.parameters()]
        self.graph: torch.cuda.CUDAGraph | None = None

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _step(self) -> None:
        real = self.bank.batch(self.idx)
        ones = torch.ones(real.shape[0], device=self.device)
        zeros = torch.zeros_like(ones)
        rem = self.remedies
        # what D sees: the images themselves, or (remedies on) dequantised / augmented / noised copies
        seen_real = rem.real if rem else _identity
        seen_fake = rem.fake if rem else _identity_call
        real_target = ones * self.real_target if rem else ones
        # (1) Update D: maximise log D(x) + log(1 - D(G(z)))
        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            fake = self.G(self.z)
            out_real = self.D(seen_real(real)).float()
            out_fake = self.D(seen_fake(fake.detach(), 1)).float()
            loss_d = F.binary_cross_entropy_with_logits(out_real, real_target) + F.binary_cross_entropy_with_logits(out_fake, zeros)
        loss_d.backward()
        self.opt_d.step()
        # (2) Update G: maximise log D(G(z)) (non-saturating); only G's weights need gradients
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            out_fake2 = self.d_inner(seen_fake(fake, 2)).float()
            loss_g = F.binary_cross_entropy_with_logits(out_fake2, ones)
        loss_g.backward(inputs=self.g_params)
        self.opt_g.step()
        with torch.no_grad():
            self.metrics.copy_(torch.stack([
                loss_d.detach(), loss_g.detach(), torch.sigmoid(out_real.detach()).mean(),
                torch.sigmoid(out_fake.detach()).mean(), torch.sigmoid(out_fake2.detach()).mean(),
            ]))

    def run(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()

    def run_and_capture(self) -> None:
        """Run this step eagerly on a side stream (it warms up cuDNN, the allocator and the
        optimizer state), then capture the step into a CUDA graph that later steps replay.
        Capturing records kernels without running them, so no step is applied twice."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            self._step()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        metrics = self.metrics.clone()
        graph = torch.cuda.CUDAGraph()
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._step()
        self.graph = graph
        self.metrics.copy_(metrics)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _identity_call(x: torch.Tensor, call: int) -> torch.Tensor:
    return x


def _resolve_device(name: str) -> torch.device:
    return resolve_device(name)


def _dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment, or (0, 1, 0)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def _init_process_group(device: torch.device) -> None:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU) unless already joined."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def fused_adam_supported(device: torch.device) -> bool:
    """Whether torch has a fused Adam kernel for ``device`` (CUDA; the CPU since torch 2.4)."""
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def build_optimizers(G: torch.nn.Module, D: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                     capturable: bool) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and D with the run's lr (D: lr_d when set) and betas; the fused kernel where
    torch has one (one pass over all parameters instead of a loop of small ops: on the CPU the
    optimiser step of the 64x64 paper model drops from about 16% of a training step to about 4%)."""
    kw: dict[str, Any] = dict(betas=(cfg.beta1, cfg.beta2))
    if device.type == "cuda":
        kw.update(fused=True, capturable=capturable)
    elif fused_adam_supported(device):
        kw.update(fused=True)
    lr_d = cfg.lr if cfg.lr_d is None else cfg.lr_d
    return torch.optim.Adam(G.parameters(), lr=cfg.lr, **kw), torch.optim.Adam(D.parameters(), lr=lr_d, **kw)


class Trainer:
    """Trains a DCGAN into ``run_dir`` (log.jsonl, samples/epoch_XXX.png, checkpoints/step-*)."""

    def __init__(self, model: ModelConfig, train: TrainConfig, data: DataSpec, images: Any,
                 run_dir: str | Path, resume: bool = False, fork_from: str | Path | None = None) -> None:
        self.model_cfg, self.cfg, self.data = model, train, data
        self.run_dir = Path(run_dir)
        self.rank, self.world, local_rank = _dist_info()
        device = _resolve_device(train.device)
        if self.world > 1:
            _init_process_group(device)
        if device.type == "cuda" and self.world > 1:
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        self.device = device
        n, h, w, c = (int(s) for s in images.shape)
        if h != model.image_size or w != model.image_size or c != model.nc:
            raise ValueError(
                f"data is {h}x{w}x{c} but the model expects {model.image_size}x{model.image_size}x{model.nc}"
            )
        if n < train.batch_size * self.world:
            raise ValueError(f"{n} training images are fewer than one batch ({train.batch_size} x {self.world} processes)")
        self.n_images = n
        self.steps_per_epoch = n // (train.batch_size * self.world)
        self.total_steps = train.max_steps or self.steps_per_epoch * train.epochs
        self.bank = ImageBank(images, device)
        on_cuda = device.type == "cuda"
        self.amp = train.amp == "bf16" or (train.amp == "auto" and on_cuda)
        self.channels_last = train.channels_last == "on" or (train.channels_last == "auto" and on_cuda)
        use_graph = train.cuda_graph == "on" or (train.cuda_graph == "auto" and on_cuda and self.world == 1)
        if use_graph and (not on_cuda or self.world > 1):
            raise ValueError("cuda_graph=on needs a single-process CUDA run")
        self.use_graph = use_graph
        if train.max_seconds and self.world > 1:
            raise ValueError("max_seconds is for single-process runs (ranks would stop at different steps)")

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train.seed)
            self.G, self.D = Generator(model), Discriminator(model)
        self.step, self.epoch = 0, 0
        self.lineage: dict[str, Any] | None = None
        if resume and fork_from is not None:
            raise ValueError("--resume continues a run, --fork-from starts a new one: give one of them")
        self._check_run_dir(resume)
        if resume:
            self._load_resume()
        elif fork_from is not None:
            self._load_fork(fork_from)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.G.to(device, memory_format=fmt).train()
        self.D.to(device, memory_format=fmt).train()
        self.opt_g, self.opt_d = build_optimizers(self.G, self.D, train, device, capturable=use_graph)
        if self._resume_state is not None:
            self.opt_g.load_state_dict(self._resume_state["opt_g"])
            self.opt_d.load_state_dict(self._resume_state["opt_d"])
            if fork_from is not None:  # a fork keeps Adam's moments but takes its own lr / betas
                for opt, lr in ((self.opt_g, train.lr), (self.opt_d, train.lr if train.lr_d is None else train.lr_d)):
                    for group in opt.param_groups:
                        group["lr"] = torch.as_tensor(lr) if torch.is_tensor(group["lr"]) else lr
                        group["betas"] = (train.beta1, train.beta2)
        g_net, d_net = self.G, self.D
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if on_cuda else None
            g_net, d_net = DDP(self.G, device_ids=ids), DDP(self.D, device_ids=ids)
        self.gan = GANStep(g_net, d_net, self.opt_g, self.opt_d, self.bank, train.batch_size, model.nz,
                           device, self.amp, d_inner=self.D, remedies=train.remedies,
                           image_shape=(model.nc, model.image_size, model.image_size))
        self.flush_every = train.flush_every or (50 if on_cuda else 1)
        self.grid_z = latents(model, GRID_SEED, train.grid_size, device=device)
        self.health = HealthProbe.for_run(self.G, images, device) if train.health_every else None
        self.frechet = (FrechetTracker.for_run(train.evaluator, self.G, images, device)
                        if train.evaluator and self.rank == 0 else None)
        self._health_at: dict[int, dict[str, float]] = {}  # step -> health measures, merged into its log row
        self._window_dgz: list[float] = []  # D(G(z)) since the last health check
        self._warned = False

    # -- run directory ------------------------------------------------------------------
    def _check_run_dir(self, resume: bool) -> None:
        """A fresh run never mixes with a run already in ``run_dir`` (it would prune that run's
        checkpoints or its own, and log the same steps twice); leftovers of interrupted saves go."""
        if not resume and run_checkpoints(self.run_dir):
            raise ValueError(f"{self.run_dir}: holds a training run; continue it with --resume, or choose a new --out")
        if self.rank == 0:
            for folder in (self.run_dir, self.run_dir / "checkpoints", self.run_dir / SAMPLES_DIR):
                clean_stale(folder)

    # -- resume -------------------------------------------------------------------------
    def _load_resume(self) -> None:
        """Load the newest intact checkpoint; a damaged newest one (bad JSON, truncated weights, sha256
        mismatch, missing or unreadable optimizer state) is skipped with one logged line, the one before it used."""
        self._resume_state = None
        found = run_checkpoints(self.run_dir)
        if not found:
            _resume_checkpoint(self.run_dir)  # raises: nothing to resume
        damaged: list[str] = []
        for path in reversed(found):
            try:
                meta = load_weights_into(path, self.G, self.D)
            except CheckpointError as exc:
                damaged.append(f"{path.name} ({exc})")
                continue
            if DataSpec.from_dict(meta.get("data") or {}) != self.data:
                raise CheckpointError(f"{path}: checkpoint was trained on different data ({meta.get('data')})")
            try:
                state = load_train_state(path)
                if state is None:
                    raise CheckpointError(f"{path}: has no optimizer state ({path.name}/train_state.pt); "
                                          "cannot resume exactly")
            except CheckpointError as exc:
                damaged.append(f"{path.name} ({exc})")
                continue
            break
        else:
            raise CheckpointError(f"{self.run_dir}: no intact checkpoint to resume from (newest: {damaged[0]})")
        if damaged and self.rank == 0:
            log.warning("resuming from %s: skipped damaged newer checkpoint(s): %s", path.name, "; ".join(damaged))
        self._resume_state = state
        self.lineage = meta.get("lineage")  # a resumed fork stays a fork
        self.step, self.epoch = int(meta["step"]), int(meta["epoch"])
        self.resumed_from = path
        self._truncate_log(self.step)

    _resume_state: dict[str, Any] | None = None
    resumed_from: Path | None = None

    def _load_fork(self, source: str | Path) -> None:
        """Start this new run from checkpoint ``source``: its weights, and its optimiser state when
        it has one (shipped checkpoints do not: Adam then starts afresh). Step 0 of this run."""
        path = resolve_checkpoint(source)
        meta = load_weights_into(path, self.G, self.D)
        state = load_train_state(path)
        self._resume_state = state
        parent_train = TrainConfig.from_dict(meta.get("train") or {}).to_dict()
        changed = {k: [parent_train[k], v] for k, v in self.cfg.to_dict().items()
                   if k in parent_train and parent_train[k] != v and k not in RESUMABLE_TRAIN_SETTINGS}
        parent_run = path.parent.parent / RUN_FILE if path.parent.name == "checkpoints" else None
        self.lineage = {
            "parent": str(path.resolve()), "parent_step": int(meta.get("step", 0)),
            "parent_epoch": int(meta.get("epoch", 0)), "parent_weights_sha256": meta.get("weights_sha256", ""),
            "parent_lineage": (json.loads(parent_run.read_text()).get("lineage")
                               if parent_run is not None and parent_run.is_file() else meta.get("lineage")),
            "optimizer_state": "kept" if state is not None else "fresh (the checkpoint has none)",
            "changed": changed,
        }

    def _truncate_log(self, step: int) -> None:
        """Drop log lines past ``step`` (a killed run may have logged steps after its last checkpoint)
        and a partial last line (a kill mid-write); a corrupt earlier line is a CheckpointError naming
        the file and line. The shortened log replaces the old one atomically."""
        log_path = self.run_dir / LOG_FILE
        if not log_path.exists() or self.rank != 0:
            return
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        keep, last, best_div = [], 0, 0.0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                rec_step = rec["step"]
                if isinstance(rec_step, bool) or not isinstance(rec_step, int):
                    raise ValueError("step is not an integer")
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                if number == len(lines):
                    break  # a partial last line: the run was killed while writing it
                raise CheckpointError(f"{log_path}: line {number} is corrupt ({str(exc)[:80]}); "
                                      "fix or remove that line to resume") from None
            if rec_step <= step:
                keep.append(line)
                last = rec_step
                if isinstance(rec.get("div_d"), (int, float)):
                    best_div = max(best_div, float(rec["div_d"]))
        if last < step:
            log.warning("%s: the log ends at step %d but the checkpoint is at step %d; those steps stay missing "
                        "from the log", log_path, last, step)
        atomic_write(log_path, lambda p: p.write_text("".join(ln + "\n" for ln in keep)))
        self._best_div = best_div

    # -- randomness ---------------------------------------------------------------------
    def _epoch_perm(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.n_images, generator=_seeded(self.device, self.cfg.seed, 1, epoch), device=self.device)

    def _fill_inputs(self, perm: torch.Tensor, step: int) -> None:
        b = self.cfg.batch_size
        i = step % self.steps_per_epoch
        start = (i * self.world + self.rank) * b
        self.gan.idx.copy_(perm[start : start + b])
        gen = _seeded(self.device, self.cfg.seed, 2, step, self.rank)
        if self.model_cfg.z_dist == "uniform":
            torch.rand(self.gan.z.shape, generator=gen, device=self.device, out=self.gan.z)
            self.gan.z.mul_(2).sub_(1)
        else:
            torch.randn(self.gan.z.shape, generator=gen, device=self.device, out=self.gan.z)
        if self.gan.remedies is not None:  # their own stream, so z and the batches stay the paper run's
            self.gan.remedies.fill(_seeded(self.device, self.cfg.seed, 3, step, self.rank), step)

    # -- outputs ------------------------------------------------------------------------
    def _best_frechet(self) -> float:
        """The Fréchet distance of the run's best checkpoint so far (inf when there is none)."""
        best = self.run_dir / RUN_CHECKPOINTS / BEST_CHECKPOINT / "checkpoint.json"
        if not best.is_file():
            return math.inf
        return float(json.loads(best.read_text()).get("metrics", {}).get("frechet", math.inf))

    def _save(self, metrics: dict[str, float], path: Path | None = None) -> Path:
        """A checkpoint of this step in checkpoints/step-* (older ones pruned), or at ``path``
        (never pruned: checkpoints/best)."""
        state = {"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}
        target = path or self.run_dir / RUN_CHECKPOINTS / f"step-{self.step:08d}"
        if target.is_dir() and not (target / "checkpoint.json").is_file():  # this run's own damaged leftover
            doomed = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        saved = save_checkpoint(
            target, self.G, self.D, data=self.data,
            train=self.cfg.to_dict() | {"world_size": self.world}, step=self.step, epoch=self.epoch,
            metrics=metrics, train_state=state, extra={"lineage": self.lineage} if self.lineage else None,
        )
        if path is None:
            older = [p for p in run_checkpoints(self.run_dir) if p.name < saved.name]  # never this one or newer
            for old in older[: max(0, len(older) - (self.cfg.keep_checkpoints - 1))]:
                doomed = old.parent / f".{old.name}.old-{os.getpid()}"  # out of the listing at once; a kill
                os.replace(old, doomed)  # mid-delete leaves a temp name clean_stale removes, not half a checkpoint
                shutil.rmtree(doomed, ignore_errors=True)
        return saved

    def _write_grid(self, epoch: int) -> None:
        was_training = self.G.training
        self.G.eval()
        with torch.no_grad():
            fake = self.G(self.grid_z)
        self.G.train(was_training)
        save_png(self.run_dir / SAMPLES_DIR / f"epoch_{epoch:03d}.png", grid(fake), scale=2)

    def _flush(self, buf: torch.Tensor, steps: list[int], t_last: float, log_fh) -> tuple[dict[str, float], float]:
        rows = buf[: len(steps)].cpu().tolist()
        now = time.perf_counter()
        ips = len(steps) * self.cfg.batch_size * self.world / max(now - t_last, 1e-9)
        last: dict[str, float] = {}
        for step, row in zip(steps, rows):
            rec = {"step": step, "epoch": (step - 1) // self.steps_per_epoch + 1}
            rec.update({k: float(v) for k, v in zip(GANStep.METRICS, row)})
            rec["img_per_s"] = round(ips, 1)
            if not all(math.isfinite(v) for v in row):
                raise TrainingStopped(
                    f"non-finite loss at step {step} ({rec}); stopped, last good checkpoint kept in {self.run_dir / 'checkpoints'}"
                )
            self._collapse_run = self._collapse_run + 1 if rec["d_g_z1"] < self.cfg.collapse_threshold else 0
            self._window_dgz.append(rec["d_g_z1"])
            if step in self._health_at:
                rec.update(self._health_at.pop(step))
                if "div_d" in rec:
                    self._check_health(rec)
            if self.cfg.collapse_steps and self._collapse_run >= self.cfg.collapse_steps:
                raise TrainingStopped(
                    f"collapse at step {step}: D(G(z)) < {self.cfg.collapse_threshold} for {self._collapse_run} steps; "
                    f"stopped, last good checkpoint kept in {self.run_dir / 'checkpoints'}"
                )
            if log_fh is not None:
                log_fh.write(json.dumps(rec) + "\n")
            last = rec
        if log_fh is not None:
            log_fh.flush()
        return last, now

    _collapse_run = 0
    _best_div = 0.0  # the run's highest health diversity so far (restored from the log on resume)

    def _check_health(self, rec: dict[str, float]) -> None:
        """Warn once per episode when the health row ``rec`` shows signs of collapse."""
        window, self._window_dgz = self._window_dgz, []
        signs = collapse_signs(rec, sum(window) / max(len(window), 1), int(rec["step"]), self._best_div,
                               warmup=self.cfg.health_warmup)
        self._best_div = max(self._best_div, rec["div_d"])
        if signs and not self._warned:
            from tqdm.auto import tqdm

            ckpts = run_checkpoints(self.run_dir)
            tqdm.write(f"warning: step {rec['step']}: signs of collapse: {signs}; "
                       f"{collapse_advice(str(self.run_dir), str(ckpts[0]) if ckpts else None)}", file=sys.stderr)
        self._warned = bool(signs)

    def _earlier_segments(self) -> list[dict]:
        """Where and on how many threads the run trained before this (resumed) start: the
        ``segments`` of the run's previous run.json, cut at this start step (steps past the last
        checkpoint are retrained now). A fresh run has none."""
        path = self.run_dir / RUN_FILE
        if self.step == 0 or not path.is_file():
            return []
        return run_segments(validate_run_info(read_json(path, RUN_FILE), path), before=self.step)

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> Path | None:
        """Train to ``total_steps``; returns the final checkpoint path (rank 0) or None."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        main = self.rank == 0
        if main:
            here = {"start_step": self.step, "device": str(self.device), "threads": torch.get_num_threads()}
            atomic_write_json(self.run_dir / RUN_FILE, {
                "model": self.model_cfg.to_dict(), "train": self.cfg.to_dict(), "data": self.data.to_dict(),
                "world_size": self.world, "device": str(self.device), "amp": self.amp,
                "channels_last": self.channels_last, "cuda_graph": self.use_graph,
                "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                "segments": self._earlier_segments() + [here],
            } | ({"lineage": self.lineage} if self.lineage else {}))
        # a fresh run starts a new log (a run killed before its first checkpoint left nothing to keep);
        # a resumed one appends after the lines _truncate_log kept
        log_fh = open(self.run_dir / LOG_FILE, "a" if self.step else "w") if main else None
        bar = None
        if main and self.cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True)
        buf = torch.zeros(self.flush_every, len(GANStep.METRICS), device=self.device)
        pending: list[int] = []
        last: dict[str, float] = {}
        perm_epoch, perm = -1, None
        t_last = t_start = time.perf_counter()
        final: Path | None = None
        try:
            while self.step < self.total_steps:
                epoch = self.step // self.steps_per_epoch
                if epoch != perm_epoch:
                    perm, perm_epoch = self._epoch_perm(epoch), epoch
                self._fill_inputs(perm, self.step)
                if self.use_graph and self.gan.graph is None:
                    self.gan.run_and_capture()
                else:
                    self.gan.run()
                buf[len(pending)].copy_(self.gan.metrics)
                self.step += 1
                if self.health is not None and main and self.step % self.cfg.health_every == 0:
                    self._health_at[self.step] = self.health.measure(self.G, self.D)
                self.epoch = (self.step - 1) // self.steps_per_epoch + 1
                pending.append(self.step)
                epoch_done = self.step % self.steps_per_epoch == 0
                frechet = self.frechet.measure(self.G) if self.frechet is not None and epoch_done else None
                if frechet is not None:
                    self._health_at.setdefault(self.step, {})["frechet"] = frechet
                ckpt_due = self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0
                if self.cfg.max_seconds and len(pending) == self.flush_every and time.perf_counter() - t_start > self.cfg.max_seconds:
                    self.total_steps = self.step  # out of time: finish here with a final checkpoint
                grid_due = main and epoch_done and (self.epoch in (1, 5) or self.epoch % max(1, self.cfg.grid_every) == 0)
                if len(pending) == self.flush_every or ckpt_due or self.step == self.total_steps:
                    last, t_last = self._flush(buf, pending, t_last, log_fh)
                    pending = []
                    if bar is not None:
                        bar.update(last["step"] - bar.n)
                        bar.set_postfix_str(
                            f"ep {last['epoch']} loss_d {last['loss_d']:.3f} loss_g {last['loss_g']:.3f} "
                            f"D(x) {last['d_x']:.2f} D(G(z)) {last['d_g_z1']:.2f} {last['img_per_s']:.0f} img/s"
                        )
                if grid_due:
                    self._write_grid(self.epoch)
                if main and (ckpt_due or self.step == self.total_steps):
                    final = self._save(last)
                    t_last = time.perf_counter()
                if frechet is not None and frechet < self._best_frechet():
                    self._save(last | {"frechet": frechet}, self.run_dir / RUN_CHECKPOINTS / BEST_CHECKPOINT)
                    t_last = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
            if log_fh is not None:
                log_fh.close()
        return final
