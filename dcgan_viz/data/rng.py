"""Counter-based random numbers addressed by (seed, index, stream).

Synthetic images must be regenerable one at a time *and* rendered in vectorised batches.
A stateful generator cannot give both (the draws of image 17 would depend on which images
were rendered with it), so every random number here is a pure hash of
``(seed, index, stream, slot)``: image ``index`` of ``seed`` gets the same parameters whatever
batch it is rendered in, on any device.

The hash is Chris Wellons' ``lowbias32`` integer mixer applied in int64 arithmetic and masked
to 32 bits (the low 32 bits of a wrapped 64-bit product are exact).
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int64 tensors holding values in [0, 2**32)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    x = x ^ (x >> 16)
    return x


def hash_u32(seed: int, index: torch.Tensor, stream: int, slots: int) -> torch.Tensor:
    """Hash values in [0, 2**32) of shape (N, slots) as int64.

    ``index``: int64 tensor (N,) of image indices; ``stream`` names the quantity being drawn
    (a small int constant per parameter family) so that adding a parameter never shifts others.
    """
    index = index.to(torch.int64).reshape(-1, 1)
    slot = torch.arange(slots, device=index.device, dtype=torch.int64).reshape(1, -1)
    h = _mix32(torch.full_like(index, (seed * 0x9E3779B1 + 0x632BE5AB) & _MASK32))
    h = _mix32(h ^ (index & _MASK32))
    h = _mix32(h ^ ((index >> 32) & _MASK32) ^ ((stream * 0x85EBCA77) & _MASK32))
    return _mix32(_mix32(h ^ ((slot * 0xC2B2AE3D + 0x27D4EB2F) & _MASK32)) + 0x165667B1)


def uniform(seed: int, index: torch.Tensor, stream: int, slots: int = 1) -> torch.Tensor:
    """Uniform floats in [0, 1), shape (N, slots), float32 on ``index.device``."""
    return (hash_u32(seed, index, stream, slots) >> 8).to(torch.float32) * (1.0 / (1 << 24))


def randint(seed: int, index: torch.Tensor, stream: int, low: int, high: int, slots: int = 1) -> torch.Tensor:
    """Integers in [low, high), shape (N, slots), int64."""
    return low + (uniform(seed, index, stream, slots) * (high - low)).floor().to(torch.int64).clamp_(max=high - low - 1)


def normal(seed: int, index: torch.Tensor, stream: int, slots: int = 1) -> torch.Tensor:
    """Standard normal floats, shape (N, slots) (Box-Muller on two hashed uniforms)."""
    u = uniform(seed, index, stream, 2 * slots)
    u1 = u[:, :slots].clamp_min(1e-7)
    u2 = u[:, slots:]
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
