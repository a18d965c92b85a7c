"""Image conversions and sample grids (no analysis here).

Model space: float (B, C, H, W) in [-1, 1]. Storage space: uint8 (B, H, W, C).
"""

from __future__ import annotations

import io
import math
import numbers
from pathlib import Path

import numpy as np
import torch

from .fsutil import atomic_write
from .outputs import PNG_SOFTWARE
from .plots.style import BACKGROUND


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float (B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C) on the CPU."""
    x = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu()


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W) in [-1, 1], same device, channels_last strides."""
    return images.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def grid(images: torch.Tensor | np.ndarray, nrow: int | None = None, pad: int = 2,
         pad_value: int = BACKGROUND) -> np.ndarray:
    """uint8 (B, H, W, C) (or float (B, C, H, W) in [-1, 1]) -> one uint8 (H', W', C) grid image
    (padding in the shared style's background, white)."""
    if isinstance(images, torch.Tensor):
        images = to_uint8(images).numpy() if images.dtype != torch.uint8 else images.cpu().numpy()
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected a batch (B, H, W, C), got shape {images.shape}")
    b, h, w, c = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(b))))
    ncol = int(math.ceil(b / nrow))
    out = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i in range(b):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y : y + h, x : x + w] = images[i]
    return out


MAX_PNG_BYTES = 1 << 30  # uncompressed pixels of one written PNG


def check_png_size(height: int, width: int, channels: int, scale: int) -> None:
    """ValueError (one line) unless ``scale`` is a positive integer and the upscaled image stays
    under MAX_PNG_BYTES: checked before anything is allocated."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    size = height * scale * width * scale * channels
    if size > MAX_PNG_BYTES:
        raise ValueError(f"the PNG would be {width * scale}x{height * scale} px ({size / 2**30:.1f} GiB); "
                         f"use a smaller scale (at most {max(1, int((MAX_PNG_BYTES / (height * width * channels)) ** 0.5))})")


def png_bytes(image: np.ndarray, scale: int = 1, compress_level: int = 6) -> bytes:
    """uint8 (H, W, C) with C in {1, 3} -> PNG bytes (nearest-neighbour upscaled by ``scale``),
    tagged ``Software: dcgan-viz`` so the output-path policy knows the toolkit wrote it.

    ``compress_level``: zlib level 0..9 (6, PIL's default, for files; 1 is several times faster
    and a little larger, for images sent to a browser on every request)."""
    from PIL import Image, PngImagePlugin

    check_png_size(image.shape[0], image.shape[1], image.shape[-1], scale)
    arr = image[..., 0] if image.shape[-1] == 1 else image
    pil = Image.fromarray(arr)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", PNG_SOFTWARE)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", pnginfo=info, compress_level=compress_level)
    return buf.getvalue()


def save_png(path: str | Path, image: np.ndarray, scale: int = 1) -> Path:
    """Write a uint8 (H, W, C) image as PNG atomically."""
    data = png_bytes(image, scale)
    return atomic_write(path, lambda p: p.write_bytes(data))
