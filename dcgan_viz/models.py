"""DCGAN generator and discriminator (Radford, Metz & Chintala, 2015), built from a ModelConfig.

Layers have stable names that every analysis, cache key, dashboard dropdown and figure label
uses: each net is a sequence of blocks ``conv1`` .. ``convN``. A block is an ``nn.Sequential``
with children ``conv`` (+ ``bn``) + ``act``, so a block's output is the post-activation feature
map (what the analyses read and what ablation drops).

For a 64x64 RGB model with ngf = ndf = 64 (N = 5 blocks in each net)::

    G: z (B, 100)  -> conv1 (B, 512, 4, 4)  -> conv2 (B, 256, 8, 8) -> conv3 (B, 128, 16, 16)
                   -> conv4 (B, 64, 32, 32) -> conv5 (B, 3, 64, 64), tanh
    D: x (B, 3, 64, 64) -> conv1 (B, 64, 32, 32) -> conv2 (B, 128, 16, 16) -> conv3 (B, 256, 8, 8)
                   -> conv4 (B, 512, 4, 4) -> conv5 (B, 1, 1, 1) -> logits (B,)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Iterable

import torch
from torch import nn

IMAGE_SIZES = (32, 64, 128)
Z_DISTRIBUTIONS = ("uniform", "normal")
MAX_NZ = 4096  # bounds that keep a config (or a tampered checkpoint.json) from asking for terabytes
MAX_WIDTH = 2048
MAX_PARAMETERS = 1 << 29  # G + D: 2 GiB of fp32 weights


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a DCGAN pair. Defaults are the paper's 64x64 LSUN model."""

    image_size: int = 64
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    nc: int = 3
    z_dist: str = "uniform"

    def __post_init__(self) -> None:
        for name in ("image_size", "nz", "ngf", "ndf", "nc"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy ints -> int (JSON, equality)
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        if self.nc not in (1, 3):
            raise ValueError(f"nc (image channels) must be 1 or 3, got {self.nc}")
        if not isinstance(self.z_dist, str) or self.z_dist not in Z_DISTRIBUTIONS:
            raise ValueError(f"z_dist must be one of {Z_DISTRIBUTIONS}, got {self.z_dist!r}")
        for name, top in (("nz", MAX_NZ), ("ngf", MAX_WIDTH), ("ndf", MAX_WIDTH)):
            if not 1 <= getattr(self, name) <= top:
                raise ValueError(f"{name} must be between 1 and {top}, got {getattr(self, name)}")
        if self.parameter_count() > MAX_PARAMETERS:
            raise ValueError(f"model too large: {self.parameter_count():,} parameters "
                             f"(the limit is {MAX_PARAMETERS:,}); use a smaller ngf/ndf/nz")

    def layer_widths(self) -> tuple[list[int], list[int]]:
        """Output channels of G's and D's blocks conv1 .. convN."""
        n = self.n_blocks
        return ([self.ngf * 2 ** (n - 2 - i) for i in range(n - 1)] + [self.nc],
                [self.ndf * 2**i for i in range(n - 1)] + [1])

    def parameter_count(self) -> int:
        """Number of parameters of G and D together (convolution weights and batchnorm), without building them."""
        g, d = self.layer_widths()
        total = 0
        for widths, first in ((g, self.nz), (d, self.nc)):
            ins = [first] + widths[:-1]
            total += sum(i * o * 16 + 2 * o for i, o in zip(ins, widths))
        return total

    @property
    def n_blocks(self) -> int:
        """Blocks per net: 4x4 -> image_size doubles (log2(size) - 2) times, plus the 4x4 block."""
        return int(math.log2(self.image_size)) - 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        if not isinstance(data, dict):
            raise ValueError(f"model config must be an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv weights N(0, 0.02); batchnorm scale N(1, 0.02), shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class _BlockNet(nn.Module):
    """A stack of named blocks ``conv1`` .. ``convN`` with a feature-reading forward."""

    layer_names: tuple[str, ...]

    def _blocks(self) -> Iterable[tuple[str, nn.Module]]:
        return ((name, getattr(self, name)) for name in self.layer_names)

    def _run(self, x: torch.Tensor, keep: set[str] | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats: dict[str, torch.Tensor] = {}
        for name, block in self._blocks():
            x = block(x)
            if keep is None or name in keep:
                feats[name] = x
        return x, feats

    def features(self, x: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Every block's output (or only ``layers``), keyed by layer name, in forward order."""
        keep = None if layers is None else set(layers)
        if keep is not None:
            bad = keep - set(self.layer_names)
            if bad:
                raise KeyError(f"unknown layer(s) {sorted(bad)}; layers are {list(self.layer_names)}")
        return self._run(self._prepare(x), keep)[1]

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_from(self, layer: str, h: torch.Tensor) -> torch.Tensor:
        """The network's output given ``layer``'s output h (B, C_layer, s, s): only the blocks after it run."""
        if layer not in self.layer_names:
            raise KeyError(f"unknown layer {layer!r}; layers are {list(self.layer_names)}")
        for name in self.layer_names[self.layer_names.index(layer) + 1 :]:
            h = getattr(self, name)(h)
        return h

    def layer_channels(self) -> dict[str, int]:
        """Number of feature maps (units) of each layer."""
        return {name: block.conv.out_channels for name, block in self._blocks()}


class Generator(_BlockNet):
    """z (B, nz) or (B, nz, 1, 1) in the prior's range -> image (B, nc, S, S) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_size = cfg.nz
        n = cfg.n_blocks
        widths = [cfg.ngf * 2 ** (n - 2 - i) for i in range(n - 1)] + [cfg.nc]
        names = []
        in_ch = cfg.nz
        for i, out_ch in enumerate(widths, start=1):
            name = f"conv{i}"
            last = i == n
            if i == 1:
                # "project and reshape": a 4x4 fractionally-strided conv from 1x1 (no hidden FC layer)
                conv = nn.ConvTranspose2d(in_ch, out_ch, 4, 1, 0, bias=False)
            else:
                conv = nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=last)
            parts: list[tuple[str, nn.Module]] = [("conv", conv)]
            if not last:
                parts.append(("bn", nn.BatchNorm2d(out_ch)))
                parts.append(("act", nn.ReLU(inplace=False)))
            else:
                parts.append(("act", nn.Tanh()))
            setattr(self, name, _named_seq(parts))
            names.append(name)
            in_ch = out_ch
        self.layer_names = tuple(names)
        self.apply(init_weights)

    def _prepare(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        if z.dim() != 4 or z.shape[1] != self.cfg.nz or z.shape[2:] != (1, 1):
            raise ValueError(f"z must have shape (B, {self.cfg.nz}) or (B, {self.cfg.nz}, 1, 1), got {tuple(z.shape)}")
        return z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._run(self._prepare(z), set())[0]


class Discriminator(_BlockNet):
    """image (B, nc, S, S) in [-1, 1] -> logits (B,). Real = 1."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.n_blocks
        widths = [cfg.ndf * 2**i for i in range(n - 1)] + [1]
        names = []
        in_ch = cfg.nc
        for i, out_ch in enumerate(widths, start=1):
            name = f"conv{i}"
            last = i == n
            if last:
                parts = [("conv", nn.Conv2d(in_ch, out_ch, 4, 1, 0, bias=True))]
            else:
                parts = [("conv", nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False))]
                if i > 1:  # no batchnorm on D's input layer
                    parts.append(("bn", nn.BatchNorm2d(out_ch)))
                parts.append(("act", nn.LeakyReLU(0.2, inplace=False)))
            setattr(self, name, _named_seq(parts))
            names.append(name)
            in_ch = out_ch
        self.layer_names = tuple(names)
        self.apply(init_weights)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.cfg.nc, self.cfg.image_size
        if x.dim() != 4 or x.shape[1:] != (c, s, s):
            raise ValueError(f"images must have shape (B, {c}, {s}, {s}), got {tuple(x.shape)}")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self._prepare(x), set())[0].flatten()

    @property
    def feature_layers(self) -> tuple[str, ...]:
        """Hidden layers whose features analyses use (all but the logit layer)."""
        return self.layer_names[:-1]


def _named_seq(parts: list[tuple[str, nn.Module]]) -> nn.Sequential:
    seq = nn.Sequential()
    for name, mod in parts:
        seq.add_module(name, mod)
    return seq


def build_models(cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    """A freshly initialised (G, D) pair."""
    return Generator(cfg), Discriminator(cfg)
