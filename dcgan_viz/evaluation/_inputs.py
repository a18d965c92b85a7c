"""Shared input handling for the evaluation helpers: image conversion and batched inference."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """Images -> float32 (B, C, H, W) in [-1, 1].

    Accepts uint8 (B, H, W, C) or (B, H, W) (dataset layout, 0..255) or a float (B, C, H, W)
    already in [-1, 1] (what a generator outputs), which is passed through as float32.
    """
    if images.dtype == torch.uint8:
        if images.dim() == 3:
            images = images.unsqueeze(-1)
        if images.dim() != 4:
            raise ValueError(f"uint8 images must be (B, H, W, C) or (B, H, W), got {tuple(images.shape)}")
        return images.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if not images.is_floating_point() or images.dim() != 4:
        raise ValueError(
            "images must be uint8 (B, H, W, C) or float (B, C, H, W) in [-1, 1], "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    return images.float()


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def batched_apply(
    model: nn.Module,
    images: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 256,
) -> torch.Tensor:
    """``fn(x)`` over ``images`` in chunks of ``batch_size`` with ``model`` in eval mode.

    ``x`` is a (b, C, H, W) float chunk on the model's device; results are concatenated on
    that device. The model's train/eval mode is restored afterwards.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        outs = [fn(to_model_input(images[i : i + batch_size].to(device))) for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    if not outs:
        raise ValueError("no images given")
    return torch.cat(outs)
