"""Shared set-up of the dashboard tests: a tiny rooms checkpoint the app can list (the Dash client
helpers — free_port, wait_http, request bodies — are in apps/wire_client.py)."""

from __future__ import annotations

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


def components_by_id(component, found: dict | None = None) -> dict:
    """Every component of a Dash layout tree that has an id, by id (non-string ids as their str)."""
    found = {} if found is None else found
    if getattr(component, "id", None) is not None:
        found[component.id if isinstance(component.id, str) else str(component.id)] = component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and hasattr(child, "to_plotly_json"):
            components_by_id(child, found)
    return found
