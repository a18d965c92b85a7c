"""A small CNN image classifier whose penultimate layer is the feature space of an offline
Fréchet distance (the role Inception-v3 plays in FID, for data we can train it on).

For the default config (width 32, feature_dim 128) and a 32x32 Fashion-MNIST input::

    x (B, 1, 32, 32) -> stem (B, 32, 32, 32) -> stage1 (B, 64, 16, 16) -> stage2 (B, 128, 8, 8)
      -> stage3 (B, 128, 4, 4) -> pool (B, 128, 4, 4) -> features (B, 128) -> logits (B, 10)

Features are the post-ReLU activations of the last hidden layer (what the linear classifier
reads). The 4x4 adaptive pool lets the same net take any input of at least 8x8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from dcgan_viz.evaluation._inputs import batched_apply


@dataclass(frozen=True)
class ClassifierConfig:
    """in_channels: 1 or 3. n_classes: output classes. width: stem channels (stages use
    2x and 4x). feature_dim: size of the penultimate (feature) layer."""

    in_channels: int = 1
    n_classes: int = 10
    width: int = 32
    feature_dim: int = 128

    def __post_init__(self) -> None:
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")
        if self.width < 1 or self.feature_dim < 1:
            raise ValueError(f"width and feature_dim must be positive, got {self.width}, {self.feature_dim}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ClassifierConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown classifier config keys: {sorted(unknown)}")
        return cls(**data)


def _stage(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """3x3 conv-BN-ReLU (strided by ``stride``) then 3x3 conv-BN-ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class Classifier(nn.Module):
    """(B, in_channels, H, W) in [-1, 1] -> logits (B, n_classes); ``features`` -> (B, feature_dim)."""

    kind = "classifier"

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()
        c = self.config
        w = c.width
        self.body = nn.Sequential(
            _stage(c.in_channels, w, 1), _stage(w, 2 * w, 2), _stage(2 * w, 4 * w, 2), _stage(4 * w, 4 * w, 2)
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, c.feature_dim), nn.ReLU(inplace=True))
        self.classify = nn.Linear(c.feature_dim, c.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (B, feature_dim)."""
        return self.fc(self.pool(self.body(x)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes)."""
        return self.classify(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)


def extract_features(model: Classifier, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Penultimate features, float32 (B, feature_dim) on the model's device.

    ``images``: float (B, C, H, W) in [-1, 1] (generator output) or uint8 (B, H, W[, C]).
    """
    return batched_apply(model, images, lambda x: model.features(x).float(), batch_size)


def predict_labels(model: Classifier, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted class ids, int64 (B,) on the model's device."""
    return batched_apply(model, images, lambda x: model.logits(x).argmax(dim=1), batch_size)
