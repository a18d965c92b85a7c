"""A compact U-Net that labels every pixel of a room image (wall, floor, window, ...).

For the default config (width 16, depth 3, ~480K parameters) and a 64x64 RGB input::

    x (B, 3, 64, 64) -> enc0 (B, 16, 64, 64) -> enc1 (B, 32, 32, 32) -> enc2 (B, 64, 16, 16)
      -> mid (B, 128, 8, 8) -> dec2 (B, 64, 16, 16) -> dec1 (B, 32, 32, 32) -> dec0 (B, 16, 64, 64)
      -> head: logits (B, n_classes, 64, 64)

Each ``dec`` level upsamples, concatenates the matching ``enc`` map (skip connection) and
applies two 3x3 conv-BN-ReLU layers. Works for any square or rectangular input whose sides
are divisible by ``2 ** depth`` (32, 64 and 128 with the default depth).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from dcgan_viz.evaluation._inputs import batched_apply


@dataclass(frozen=True)
class SegmenterConfig:
    """in_channels: 1 or 3. n_classes: output classes. width: channels of the first level
    (doubling per level). depth: number of 2x downsamplings."""

    in_channels: int = 3
    n_classes: int = 9
    width: int = 16
    depth: int = 3

    def __post_init__(self) -> None:
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if not 2 <= self.n_classes <= 256:
            raise ValueError(f"n_classes must be in [2, 256] (masks are uint8), got {self.n_classes}")
        if self.width < 1 or self.depth < 1:
            raise ValueError(f"width and depth must be positive, got width={self.width} depth={self.depth}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SegmenterConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown segmenter config keys: {sorted(unknown)}")
        return cls(**data)


def conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers (size preserving)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class Segmenter(nn.Module):
    """(B, in_channels, H, W) in [-1, 1] -> per-pixel class logits (B, n_classes, H, W)."""

    kind = "segmenter"

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        super().__init__()
        self.config = config or SegmenterConfig()
        c = self.config
        widths = [c.width * 2**i for i in range(c.depth + 1)]
        self.enc = nn.ModuleList([conv_block(c.in_channels, widths[0])])
        self.enc.extend(conv_block(widths[i], widths[i + 1]) for i in range(c.depth - 1))
        self.mid = conv_block(widths[c.depth - 1], widths[c.depth])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(c.depth))
        self.dec = nn.ModuleList(conv_block(2 * widths[i], widths[i]) for i in range(c.depth))
        self.head = nn.Conv2d(widths[0], c.n_classes, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Image-level features (B, 2 * width * 2**depth): the bottleneck, mean- and max-pooled.

        Used for a Fréchet distance on rooms (generated vs held-out)."""
        self._check(x)
        for block in self.enc:
            x = F.max_pool2d(block(x), 2)
        x = self.mid(x)
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)

    def _check(self, x: torch.Tensor) -> None:
        step = 2**self.config.depth
        if x.dim() != 4 or x.shape[1] != self.config.in_channels or x.shape[2] % step or x.shape[3] % step:
            raise ValueError(
                f"expected (B, {self.config.in_channels}, H, W) with H, W divisible by {step}, got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.mid(x)
        for i in reversed(range(self.config.depth)):
            x = self.dec[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        return self.head(x)


def predict_masks(model: Segmenter, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Class id of every pixel: uint8 (B, H, W) on the model's device.

    ``images``: float (B, C, H, W) in [-1, 1] (generator output) or uint8 (B, H, W, C).
    """
    return batched_apply(model, images, lambda x: model(x).argmax(dim=1).to(torch.uint8), batch_size)
