"""A small CNN with one output head per face attribute (smile, glasses, yaw, ...).

Attribute kinds (the ground-truth encoding, which predictions reproduce):

* ``"continuous"``: a value in [0, 1]; the head is one sigmoid unit (trained with MSE).
* ``"continuous_signed"``: a value in [-1, 1]; one tanh unit (MSE).
* ``"categorical:K"``: a class index 0..K-1 stored as a float; K logits (cross-entropy).

For the default config (width 32, feature_dim 128) and a 64x64 RGB input::

    x (B, 3, 64, 64) -> stem (B, 32, 64, 64) -> stage1 (B, 32, 32, 32) -> stage2 (B, 64, 16, 16)
      -> stage3 (B, 128, 8, 8) -> pool (B, 128, 4, 4) -> features (B, 128) -> one head each

The 4x4 adaptive pool keeps a coarse spatial layout (so left/right pose survives) and makes
the net accept 32, 64 or 128 inputs alike.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

import torch
from torch import nn

from dcgan_viz.evaluation._inputs import batched_apply

CONTINUOUS = "continuous"
CONTINUOUS_SIGNED = "continuous_signed"
CATEGORICAL = "categorical"


def parse_kind(kind: str) -> tuple[str, int]:
    """``"continuous"`` -> ("continuous", 1); ``"categorical:3"`` -> ("categorical", 3)."""
    if kind in (CONTINUOUS, CONTINUOUS_SIGNED):
        return kind, 1
    base, _, count = kind.partition(":")
    if base == CATEGORICAL and count.isdigit() and int(count) >= 2:
        return CATEGORICAL, int(count)
    raise ValueError(
        f"bad attribute kind {kind!r}; expected 'continuous', 'continuous_signed' or 'categorical:K' with K >= 2"
    )


@dataclass(frozen=True)
class AttributeConfig:
    """attributes: (name, kind) pairs in output order (a ``{name: kind}`` dict is accepted).
    in_channels: 1 or 3. width: channels of the stem (doubling per stage). feature_dim: size
    of the shared feature vector the heads read."""

    attributes: tuple[tuple[str, str], ...]
    in_channels: int = 3
    width: int = 32
    feature_dim: int = 128

    def __post_init__(self) -> None:
        pairs = self.attributes.items() if isinstance(self.attributes, Mapping) else self.attributes
        pairs = tuple((str(name), str(kind)) for name, kind in pairs)
        object.__setattr__(self, "attributes", pairs)
        if not pairs:
            raise ValueError("at least one attribute is required")
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate attribute names in {names}")
        for name, kind in pairs:
            if not name or "." in name:
                raise ValueError(f"attribute names must be non-empty and contain no '.', got {name!r}")
            parse_kind(kind)
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.width < 1 or self.feature_dim < 1:
            raise ValueError(f"width and feature_dim must be positive, got {self.width}, {self.feature_dim}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.attributes)

    @property
    def kinds(self) -> dict[str, str]:
        return dict(self.attributes)

    def to_dict(self) -> dict:
        return {
            "attributes": [list(pair) for pair in self.attributes],
            "in_channels": self.in_channels,
            "width": self.width,
            "feature_dim": self.feature_dim,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "AttributeConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown attribute-classifier config keys: {sorted(unknown)}")
        return cls(**data)


def _down(in_ch: int, out_ch: int) -> nn.Sequential:
    """Halve the resolution: strided 3x3 conv-BN-ReLU then 3x3 conv-BN-ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class AttributeClassifier(nn.Module):
    """(B, in_channels, H, W) in [-1, 1] -> {name: output}: (B,) values for continuous
    attributes (already squashed to their range), (B, K) logits for categorical ones."""

    kind = "attributes"

    def __init__(self, config: AttributeConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)
        )
        self.stages = nn.Sequential(_down(w, w), _down(w, 2 * w), _down(2 * w, 4 * w))
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, config.feature_dim), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict(
            {name: nn.Linear(config.feature_dim, parse_kind(kind)[1]) for name, kind in config.attributes}
        )

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return self.config.names

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Shared features (B, feature_dim)."""
        return self.fc(self.pool(self.stages(self.stem(x))))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        out: dict[str, torch.Tensor] = {}
        for name, kind in self.config.attributes:
            y = self.heads[name](h)
            if kind == CONTINUOUS:
                out[name] = torch.sigmoid(y[:, 0])
            elif kind == CONTINUOUS_SIGNED:
                out[name] = torch.tanh(y[:, 0])
            else:
                out[name] = y
        return out

    def decode(self, outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Head outputs -> float32 (B, A) in the ground-truth encoding (categorical: argmax index)."""
        cols = [
            outputs[name].argmax(dim=1) if kind.startswith(CATEGORICAL) else outputs[name]
            for name, kind in self.config.attributes
        ]
        return torch.stack([c.float() for c in cols], dim=1)


def predict_attributes(model: AttributeClassifier, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted attributes, float32 (B, A) on the model's device, columns in ``model.attribute_names`` order.

    ``images``: float (B, C, H, W) in [-1, 1] (generator output) or uint8 (B, H, W, C).
    """
    return batched_apply(model, images, lambda x: model.decode(model(x)), batch_size)

