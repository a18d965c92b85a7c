"""A tiny model trains from every data source through the CLI (fixtures made here, nothing downloaded)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dcgan_viz.cli import app
from test_sources import _celeba, _cifar, _write_idx  # noqa: I001 - fixture writers shared with the reader tests


def _png(seed: int, size=(20, 16)) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _mnist(tmp: Path) -> str:
    rng = np.random.default_rng(0)
    _write_idx(tmp / "mnist", "train", rng.integers(0, 256, (8, 28, 28)), np.arange(8) % 10, gz=True)
    _write_idx(tmp / "mnist", "t10k", rng.integers(0, 256, (4, 28, 28)), np.arange(4), gz=False)
    return f"mnist:{tmp / 'mnist'}"


def _folder(tmp: Path) -> str:
    root = tmp / "photos" / "train"
    root.mkdir(parents=True)
    for i in range(8):
        (root / f"{i}.png").write_bytes(_png(i))
    (root / "broken.jpg").write_bytes(b"not an image")
    (tmp / "photos" / "test").mkdir()
    (tmp / "photos" / "test" / "t.png").write_bytes(_png(99))
    return f"folder:{tmp / 'photos'}"


def _lsun(tmp: Path) -> str:
    lmdb = pytest.importorskip("lmdb")
    env = lmdb.open(str(tmp / "lsun"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(12):
            txn.put(f"key{i:03d}".encode(), _png(i))
    env.close()
    return f"lsun:{tmp / 'lsun'}"


def _celeba_dir(tmp: Path) -> str:
    _celeba(tmp / "celeba", partition=True)
    return f"celeba:{tmp / 'celeba'}"


def _cifar_dir(tmp: Path) -> str:
    _cifar(tmp / "cifar-10-batches-py")
    return f"cifar10:{tmp / 'cifar-10-batches-py'}"


SOURCES = {
    "rooms": lambda tmp: "rooms:count=16,test_count=4",
    "faces": lambda tmp: "faces:count=16,test_count=4",
    "fashion-mnist": lambda tmp: "fashion-mnist:count=16",
    "mnist": _mnist,
    "folder": _folder,
    "lsun": _lsun,
    "celeba": _celeba_dir,
    "cifar10": _cifar_dir,
    "random": lambda tmp: "random:count=16",
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_tiny_model_trains_from_source(source: str, tmp_path: Path) -> None:
    if source == "fashion-mnist" and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("dataset-fashion-mnist is not installed")
    spec = SOURCES[source](tmp_path)
    res = CliRunner().invoke(app, ["train", "--data", spec, "--image-size", "32", "--ngf", "8", "--ndf", "8",
                                   "--nz", "8", "--max-steps", "2", "--batch-size", "2", "--device", "cpu",
                                   "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "checkpoints" / "step-00000002" / "checkpoint.json").is_file()
