"""Image preprocessing: centre crop, antialiased resize, channel conversion, model range.

Everything before the model works on uint8 HWC arrays; ``to_model_range`` makes the float
NCHW tensors in [-1, 1] that the DCGAN generator (tanh output) and discriminator use.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def image_channels(image: Image.Image) -> int:
    """1 for grey PIL images, 3 for everything else (colour, palette, CMYK...)."""
    return 1 if image.mode in _GREY_MODES else 3


def to_base_mode(image: Image.Image) -> Image.Image:
    """Convert to "L" (grey) or "RGB": alpha is composited over white, 16-bit grey scaled to 8."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in _WIDE_GREY_MODES:
        values = np.asarray(image, dtype=np.float64)
        if values.max(initial=0) > 255:
            values = values / 257.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    grey = image_channels(image) == 1
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("L" if grey else "RGB")


def center_crop_resize(image: Image.Image, size: int) -> Image.Image:
    """The central square of ``image`` (side = shorter side), resized to ``size`` x ``size``."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    if side == size:
        return image.crop(box) if (width, height) != (size, size) else image
    return image.resize((size, size), Image.Resampling.LANCZOS, box=box)


def convert_channels(images: np.ndarray, channels: int | None) -> np.ndarray:
    """uint8 (..., H, W, C) with C in {1, 3} -> (..., H, W, channels) (None keeps C).

    Grey -> RGB repeats the channel; RGB -> grey uses PIL's ITU-R 601-2 luma, bit for bit.
    """
    have = images.shape[-1]
    if channels is None or channels == have:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=-1)
    if have == 3 and channels == 1:
        rgb = images.astype(np.uint32)
        luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
        return luma.astype(np.uint8)[..., None]
    raise ValueError(f"cannot convert {have} channels to {channels}")


def preprocess_image(image: Image.Image | np.ndarray, size: int, channels: int | None = None) -> np.ndarray:
    """One image -> uint8 (size, size, C).

    ``image``: a PIL image or a uint8 array (H, W) / (H, W, 1) / (H, W, 3). ``channels``: 1 or 3;
    None keeps the image's own (grey 1, anything else 3).
    """
    if isinstance(image, np.ndarray):
        array = image[..., None] if image.ndim == 2 else image
        if array.shape[:2] == (size, size):
            return convert_channels(np.ascontiguousarray(array, dtype=np.uint8), channels)
        image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    resized = center_crop_resize(to_base_mode(image), size)
    array = np.asarray(resized, dtype=np.uint8)
    return convert_channels(array[..., None] if array.ndim == 2 else array, channels)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) tensor on any device -> float32 (N, C, H, W) in [-1, 1], same device."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected a uint8 (N, H, W, C) tensor, got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).to(torch.float32).div_(127.5).sub_(1.0).contiguous()
