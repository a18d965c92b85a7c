"""What a discriminator filter responds to (the paper's Fig. 5) and what G's layers draw.

- ``receptive_fields``: each block's receptive field (size, stride, centre of unit 0) from the
  conv kernels/strides/paddings, so a unit at (y, x) maps to an input box (Zeiler & Fergus crops).
- ``layer_maxima``: every unit's maximal response (and where) on each probe image, one pass over
  the images for a whole layer; ``top_activations``: per unit, the images with the largest one.
- ``filter_responses``: those images, their receptive-field crops and guided-backprop maps at the
  maximal location, for a trained D or ``random_discriminator`` (same architecture at init, the
  paper's control); the guided maps of all requested units come from one batched pass.
- ``fig5_responses``: Fig. 5 for a checkpoint (trained and random D) as the dashboard asks for it:
  what does not depend on the requested filters (probe images, the random-init D, both nets' layer
  maxima) is computed once per checkpoint, layer and probe count, kept in memory and in the analysis
  cache on disk; a call computes only the requested filters' top images and guided maps.
- ``generator_feature_maps``: each G layer's feature maps for one latent, upsampled to image size.

Images are uint8 (N, H, W, C) as stored; nets get float (B, C, H, W) in [-1, 1].
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from math import floor
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..cache import cache_key, cached
from ..data.spec import DataSpec, ImageSet
from ..images import from_uint8
from ..models import Discriminator, ModelConfig
from .guided import check_units, guided_backprop_at


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
        yield _to_net(images[i : i + batch_size], device)


def _to_net(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W) in [-1, 1], channels_last in memory (the convolutions
    are faster on it, by about a third on a CPU for D; the values are the same)."""
    x = from_uint8(torch.as_tensor(np.ascontiguousarray(images), device=device))
    return x.contiguous(memory_format=torch.channels_last)


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


@dataclass
class LayerMaxima:
    """Every unit (C) of ``layer`` on every probe image (N): the maximum of its map over positions,
    ``value`` float32 (C, N), and where it is, ``where`` int64 (C, N) (flat index on the layer's
    ``height`` x ``width`` map). What top activations of any units are chosen from."""

    layer: str
    value: np.ndarray
    where: np.ndarray
    height: int
    width: int

    def top(self, units: list[int], k: int) -> TopActivations:
        """The ``k`` images where each of ``units`` responds most (ties: lower image index first
        as torch.topk orders them)."""
        value = torch.as_tensor(self.value[list(units)])
        where = torch.as_tensor(self.where[list(units)])
        k = min(k, value.shape[1])
        top_value, index = value.topk(k, dim=1)
        at = where.gather(1, index)
        return TopActivations(layer=self.layer, units=list(units), image_index=index.numpy(),
                              y=(at // self.width).numpy(), x=(at % self.width).numpy(), value=top_value.numpy())


@torch.no_grad()
def layer_maxima(net: nn.Module, images: np.ndarray, layer: str, batch_size: int = 256) -> LayerMaxima:
    """Images uint8 (N, H, W, C) -> every unit's maximal response on each image and its location."""
    check_units(net, layer, [])
    maxima, argmax = [], []
    height = width = 0
    for x in _batches(images, batch_size, _device(net)):
        fmap = net.features(x, [layer])[layer]  # (B, C, h, w)
        height, width = fmap.shape[-2:]
        value, where = fmap.flatten(2).max(dim=2)
        maxima.append(value.float().cpu())
        argmax.append(where.cpu())
    return LayerMaxima(layer=layer, value=torch.cat(maxima).T.contiguous().numpy(),
                       where=torch.cat(argmax).T.contiguous().numpy(), height=int(height), width=int(width))


def top_activations(net: nn.Module, images: np.ndarray, layer: str, units: list[int], k: int = 9,
                    batch_size: int = 256) -> TopActivations:
    """Images uint8 (N, H, W, C) -> the ``k`` images where each unit's maximum over positions is largest."""
    check_units(net, layer, units)
    return layer_maxima(net, images, layer, batch_size).top(units, k)


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
                     label: str = "trained", batch_size: int = 256, maxima: LayerMaxima | None = None) -> FilterResponses:
    """Top-``k`` images of each unit with their crops and guided-backprop maps (see FilterResponses).

    ``maxima``: the layer's maxima on ``images`` when already known (``layer_maxima``); else computed.
    """
    check_units(net, layer, units)
    top = (maxima if maxima is not None else layer_maxima(net, images, layer, batch_size)).top(units, k)
    field = receptive_fields(net)[layer]
    shape = top.value.shape  # (U, K)
    picked = images[top.image_index.reshape(-1)]  # (U*K, H, W, C)
    locations = list(zip(top.y.reshape(-1).tolist(), top.x.reshape(-1).tolist()))
    boxes = np.array([field.box(y, x) for y, x in locations]).reshape(-1, 4)
    per_image_units = np.repeat(np.asarray(units, dtype=np.int64), shape[1]).tolist()
    guided = []
    for i in range(0, len(picked), batch_size):  # one forward + backward per batch of maps
        x = _to_net(picked[i : i + batch_size], _device(net))
        maps = guided_backprop_at(net, layer, per_image_units[i : i + batch_size], locations[i : i + batch_size], x)
        guided.append(np.ascontiguousarray(maps.permute(0, 2, 3, 1).cpu().numpy()))
    guided_maps = np.concatenate(guided) if guided else np.zeros((0, *picked.shape[1:]), np.float32)
    return FilterResponses(label=label, top=top, images=picked.reshape(*shape, *picked.shape[1:]),
                           crops=crop(picked, boxes).reshape(*shape, field.size, field.size, picked.shape[-1]),
                           guided=guided_maps.reshape(*shape, *picked.shape[1:]).astype(np.float32), field=field)


# --- Fig. 5 for the dashboard: request-independent work once per checkpoint --------------------------

T = TypeVar("T")


class _Memo:
    """A small thread-safe LRU of request-independent results (probe images, random-init nets, layer
    maxima). A value is computed outside the lock; two threads asking for the same missing key may
    both compute it once, never a wrong value."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_PROBES = _Memo(4)
_RANDOM_NETS = _Memo(4)
_MAXIMA = _Memo(8)


def _config_key(cfg: ModelConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)


def cached_probe_set(spec: DataSpec, count: int) -> ImageSet:
    """``probe_set(spec, count)``, loaded once per process (the same images every call)."""
    return _PROBES.get((json.dumps(spec.to_dict(), sort_keys=True, default=str), count),
                       lambda: probe_set(spec, count))


def cached_random_discriminator(cfg: ModelConfig, seed: int, device: torch.device | str) -> Discriminator:
    """``random_discriminator(cfg, seed)`` on ``device``, built once per process (frozen, eval mode)."""
    device = torch.device(device)
    return _RANDOM_NETS.get((_config_key(cfg), seed, str(device)),
                            lambda: random_discriminator(cfg, seed).to(device))


def cached_layer_maxima(net: nn.Module, net_key: dict, images: np.ndarray, data_key: dict, layer: str,
                        cache_dir: str | Path | None = None) -> LayerMaxima:
    """``layer_maxima(net, images, layer)`` from memory, else from ``cache_dir`` (``<key>.npz``), else
    computed and stored in both. ``net_key`` names the weights (checkpoint hash, or the random init's
    config, seed and torch version), ``data_key`` the probe images (data spec and count)."""
    key = cache_key("filter-maxima", net=net_key, data=data_key, layer=layer)
    return _MAXIMA.get((key, str(cache_dir)), lambda: cached(cache_dir, key, LayerMaxima,
                                                             lambda: layer_maxima(net, images, layer)))


def clear_memory_caches() -> None:
    """Forget the in-process probe images, random-init nets and layer maxima (tests, benchmarks)."""
    for memo in (_PROBES, _RANDOM_NETS, _MAXIMA):
        memo.clear()


def fig5_responses(bundle, layer: str, units: list[int], count: int, k: int = 6, random_seed: int = 0,
                   cache_dir: str | Path | None = None) -> tuple[list[FilterResponses], int]:
    """([trained, random-init] FilterResponses of ``units`` of ``layer``, number of probe images) for a
    checkpoint ``bundle``, on the first ``count`` images of its training data: the paper's Fig. 5.

    Per call only the requested units' top images, crops and guided maps are computed; the probe
    images, the random-init D and both nets' maxima over the whole layer are computed once per
    (checkpoint, layer, count, random seed) and kept in memory and in ``cache_dir`` (None: memory only).
    """
    check_units(bundle.D, layer, units)
    probe = cached_probe_set(bundle.data, count)
    images = np.asarray(probe.images)
    data_key = {"spec": bundle.data.to_dict(), "count": count}
    random_d = cached_random_discriminator(bundle.config, random_seed, bundle.device)
    nets = [("trained", bundle.D, {"weights": bundle.key or str(bundle.path)}),
            ("random", random_d, {"random_init": _config_key(bundle.config), "seed": random_seed,
                                  "torch": torch.__version__})]
    responses = [filter_responses(net, images, layer, units, k, label,
                                  maxima=cached_layer_maxima(net, net_key, images, data_key, layer, cache_dir))
                 for label, net, net_key in nets]
    return responses, len(images)


@torch.no_grad()
def generator_feature_maps(G: nn.Module, z: torch.Tensor, size: int | None = None,
                           channels: int | None = None) -> dict[str, np.ndarray]:
    """One latent z (nz,) or (1, nz) -> {layer: float32 (C, size, size)} of every G layer's output,
    nearest-upsampled to ``size`` (default: the image size). ``channels``: only each layer's first
    that many maps (all by default; a grid that shows 8 need not upsample 512)."""
    feats = G.features(z.reshape(1, -1))
    size = size or feats[G.layer_names[-1]].shape[-1]
    return {name: F.interpolate(f[:, :channels], size=(size, size), mode="nearest")[0].cpu().numpy()
            for name, f in feats.items()}
