"""One resolver for ``--device`` strings (train, sample, every analysis verb, the dashboard).

``None`` / ``"auto"`` pick CUDA when available, else the CPU. Anything else must name a device
this machine has: ``cpu``, ``cuda``, ``cuda:N`` (N < the number of GPUs), ``mps`` where built.
A bad name or an unavailable device is a one-line ValueError, never a traceback from deep
inside torch.
"""

from __future__ import annotations

import torch

KNOWN = ("auto", "cpu", "cuda", "cuda:N", "mps")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` (None, "auto", "cpu", "cuda", "cuda:1", a torch.device) -> a usable torch.device."""
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    else:
        text = str(device).strip().lower()
        try:
            dev = torch.device(text)
        except (RuntimeError, ValueError, TypeError):
            raise ValueError(f"unknown device {str(device)!r}; use one of {', '.join(KNOWN)}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {str(device)!r} requested but this machine has {count} CUDA device(s)")
        return dev
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {str(device)!r} requested but MPS is not available")
        return dev
    raise ValueError(f"unsupported device {str(device)!r}; use one of {', '.join(KNOWN)}")
