"""What a discriminator filter responds to (the paper's Fig. 5) and what G's layers draw.

- ``receptive_fields``: each block's receptive field (size, stride, centre of unit 0) from the
  conv kernels/strides/paddings, so a unit at (y, x) maps to an input box (Zeiler & Fergus crops).
- ``top_activations``: per unit, the images with the largest maximal response and where it is.
- ``filter_responses``: those images, their receptive-field crops and guided-backprop maps at the
  maximal location, for a trained D or ``random_discriminator`` (same architecture at init, the
  paper's control).
- ``generator_feature_maps``: each G layer's feature maps for one latent, upsampled to image size.

Images are uint8 (N, H, W, C) as stored; nets get float (B, C, H, W) in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from math import floor
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.spec import DataSpec, ImageSet
from ..images import from_uint8
from ..models import Discriminator, ModelConfig
from .guided import check_units, guided_backprop


@dataclass(frozen=True)
class ReceptiveField:
    """Input region of a layer's units: ``size`` pixels square, ``stride`` pixels between units,
    unit (0, 0) centred at input coordinate ``offset`` (pixel i spans [i, i + 1))."""

    size: int
    stride: int
    offset: float

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), end-exclusive and possibly outside the image, of unit (y, x)."""
        half = self.size / 2
        y0 = floor(self.offset + y * self.stride - half + 0.5)
        x0 = floor(self.offset + x * self.stride - half + 0.5)
        return y0, x0, y0 + self.size, x0 + self.size


def receptive_fields(net: nn.Module) -> dict[str, ReceptiveField]:
    """Receptive field of every named conv block of ``net`` (Conv2d layers), in forward order.
    A net with its own ``receptive_fields`` (a wrapped user net measures them) answers itself."""
    if callable(getattr(net, "receptive_fields", None)):
        return net.receptive_fields()
    size, jump, offset = 1, 1, 0.5
    out: dict[str, ReceptiveField] = {}
    for name, block in net.named_children():
        conv = getattr(block, "conv", None)
        if not isinstance(conv, nn.Conv2d):
            continue
        k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        size += (k - 1) * jump
        offset += ((k - 1) / 2 - p) * jump
        jump *= s
        out[name] = ReceptiveField(size=size, stride=jump, offset=offset)
    return out


def crop(images: np.ndarray, boxes: np.ndarray, fill: int = 0) -> np.ndarray:
    """uint8 (N, H, W, C) + boxes (N, 4) of equal size -> crops (N, h, w, C), ``fill`` outside the image."""
    n, height, width, c = images.shape
    h, w = int(boxes[0, 2] - boxes[0, 0]), int(boxes[0, 3] - boxes[0, 1])
    out = np.full((n, h, w, c), fill, dtype=images.dtype)
    for i, (y0, x0, y1, x1) in enumerate(boxes.astype(int)):
        sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y1, height), min(x1, width)
        if sy1 > sy0 and sx1 > sx0:
            out[i, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = images[i, sy0:sy1, sx0:sx1]
    return out


def random_discriminator(cfg: ModelConfig, seed: int = 0) -> Discriminator:
    """The same architecture at the paper's initialisation (eval mode, frozen): Fig. 5's control.
    A wrapped model's config supplies its own (the user's D with every layer reset)."""
    if getattr(cfg, "random_discriminator", None) is not None:
        return cfg.random_discriminator(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Discriminator(cfg)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def probe_set(spec: DataSpec, count: int) -> ImageSet:
    """The first ``count`` images of a checkpoint's data (training split), with its ground truth."""
    from ..data.loading import load_imageset

    return load_imageset(DataSpec.from_dict(spec.to_dict() | {"count": count, "content_hash": None}))


def _batches(images: np.ndarray, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    for i in range(0, len(images), batch_size):
        yield from_uint8(torch.as_tensor(np.ascontiguousarray(images[i : i + batch_size]), device=device))


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


@dataclass
class TopActivations:
    """Per unit (U) its top K images by maximal response: image index, location (y, x) on the
    layer's map, and the value. Arrays are (U, K)."""

    layer: str
    units: list[int]
    image_index: np.ndarray
    y: np.ndarray
    x: np.ndarray
    value: np.ndarray


@torch.no_grad()
def top_activations(net: nn.Module, images: np.ndarray, layer: str, units: list[int], k: int = 9,
                    batch_size: int = 256) -> TopActivations:
    """Images uint8 (N, H, W, C) -> the ``k`` images where each unit's maximum over positions is largest."""
    check_units(net, layer, units)
    maxima, argmax = [], []
    for x in _batches(images, batch_size, _device(net)):
        fmap = net.features(x, [layer])[layer][:, units]  # (B, U, h, w)
        flat = fmap.flatten(2)
        value, where = flat.max(dim=2)
        maxima.append(value.cpu())
        argmax.append(where.cpu())
    width = fmap.shape[-1]
    maxima_t, argmax_t = torch.cat(maxima).T, torch.cat(argmax).T  # (U, N)
    k = min(k, maxima_t.shape[1])
    value, index = maxima_t.topk(k, dim=1)
    where = argmax_t.gather(1, index)
    return TopActivations(layer=layer, units=list(units), image_index=index.numpy(), y=(where // width).numpy(),
                          x=(where % width).numpy(), value=value.numpy())


@dataclass
class FilterResponses:
    """Fig. 5 for one net: per unit (U) and top image (K) the image uint8 (U, K, H, W, C), its
    receptive-field crop uint8 (U, K, r, r, C), and the guided-backprop map float32 (U, K, H, W, C)
    of the unit's activation at its maximal location. ``top`` says which images and where."""

    label: str
    top: TopActivations
    images: np.ndarray
    crops: np.ndarray
    guided: np.ndarray
    field: ReceptiveField


def filter_responses(net: nn.Module, images: np.ndarray, layer: str, units: list[int], k: int = 6,
                     label: str = "trained", batch_size: int = 256) -> FilterResponses:
    """Top-``k`` images of each unit with their crops and guided-backprop maps (see FilterResponses)."""
    top = top_activations(net, images, layer, units, k, batch_size)
    field = receptive_fields(net)[layer]
    shape = top.value.shape  # (U, K)
    picked = images[top.image_index.reshape(-1)]  # (U*K, H, W, C)
    boxes = np.array([field.box(y, x) for y, x in zip(top.y.reshape(-1), top.x.reshape(-1))])
    guided = []
    for j, unit in enumerate(units):
        x = from_uint8(torch.as_tensor(picked[j * shape[1] : (j + 1) * shape[1]], device=_device(net)))
        maps = [guided_backprop(net, layer, unit, x[i : i + 1], (int(top.y[j, i]), int(top.x[j, i])))
                for i in range(len(x))]
        guided.append(torch.cat(maps).permute(0, 2, 3, 1).cpu().numpy())
    return FilterResponses(label=label, top=top, images=picked.reshape(*shape, *picked.shape[1:]),
                           crops=crop(picked, boxes).reshape(*shape, field.size, field.size, picked.shape[-1]),
                           guided=np.stack(guided).astype(np.float32), field=field)


@torch.no_grad()
def generator_feature_maps(G: nn.Module, z: torch.Tensor, size: int | None = None) -> dict[str, np.ndarray]:
    """One latent z (nz,) or (1, nz) -> {layer: float32 (C, size, size)} of every G layer's output,
    nearest-upsampled to ``size`` (default: the image size)."""
    feats = G.features(z.reshape(1, -1))
    size = size or feats[G.layer_names[-1]].shape[-1]
    return {name: F.interpolate(f, size=(size, size), mode="nearest")[0].cpu().numpy() for name, f in feats.items()}
