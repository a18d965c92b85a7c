"""Shared set-up of the dashboard tests: a tiny rooms checkpoint the app can list."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import torch

from dcgan_viz.checkpoint import save_checkpoint
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import Discriminator, Generator, ModelConfig


def tiny_checkpoint(root: Path, name: str = "tiny", step: int = 7) -> tuple[Path, Discriminator]:
    """A 32x32 rooms checkpoint (ngf = ndf = 8) written under ``root``; returns (path, D)."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)
    D = Discriminator(cfg)
    path = save_checkpoint(root / name, Generator(cfg), D,
                           data=DataSpec(source="rooms", size=32, count=64, test_count=16), step=step)
    return path, D


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float = 90) -> None:
    """Wait until ``url`` answers (a served dashboard has started); TimeoutError otherwise."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer in {seconds:.0f} s")
