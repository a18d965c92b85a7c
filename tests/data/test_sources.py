"""Readers of real sources and preprocessing, on tiny fixtures written to tmp_path."""

from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan_viz.data.loading import load_imageset
from dcgan_viz.data.preprocess import center_crop_resize, convert_channels, preprocess_image, to_model_range
from dcgan_viz.data.sources import (
    FASHION_MNIST_DIR,
    DataError,
    is_test_key,
    load_restricted_pickle,
    open_folder,
    read_idx,
)
from dcgan_viz.data.spec import DataSpec


def _names(prefix: str, ext: str, train: int, test: int) -> tuple[list[str], list[str]]:
    """Deterministic file names: ``train`` that hash to the train split, ``test`` to the test split."""
    want_train, want_test = [], []
    i = 0
    while len(want_train) < train or len(want_test) < test:
        name = f"{prefix}{i:03d}{ext}"
        (want_test if is_test_key(name) else want_train).append(name)
        i += 1
    return want_train[:train], want_test[:test]


def _pick(template: str, test: bool) -> str:
    """The first ``template.format(i)`` whose hash puts it in the test (or train) split."""
    return next(name for i in range(1000) if is_test_key(name := template.format(i)) == test)


def _solid(color, size=(12, 10), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# --- preprocessing -----------------------------------------------------------------------


def test_center_crop_keeps_the_centre():
    image = np.zeros((10, 30, 3), np.uint8)
    image[:, :10] = (0, 0, 255)
    image[:, 10:20] = (255, 0, 0)
    image[:, 20:] = (0, 255, 0)
    out = preprocess_image(Image.fromarray(image), 10)
    assert out.shape == (10, 10, 3)
    assert (out == (255, 0, 0)).all()
    tall = center_crop_resize(Image.fromarray(np.ascontiguousarray(image.transpose(1, 0, 2))), 10)
    assert (np.asarray(tall) == (255, 0, 0)).all()


def test_resize_is_antialiased_and_shapes():
    stripes = np.zeros((64, 64), np.uint8)
    stripes[:, ::2] = 255
    out = preprocess_image(Image.fromarray(stripes), 16)
    assert out.shape == (16, 16, 1) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - 128).max() < 20  # nearest-neighbour would give 0s and 255s
    assert preprocess_image(np.full((20, 30, 3), 7, np.uint8), 8).shape == (8, 8, 3)


def test_channel_handling():
    grey = _solid(90, mode="L")
    assert preprocess_image(grey, 8).shape == (8, 8, 1)
    rgb_of_grey = preprocess_image(grey, 8, channels=3)
    assert rgb_of_grey.shape == (8, 8, 3) and (rgb_of_grey == 90).all()
    colour = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    assert np.array_equal(preprocess_image(colour, 8, channels=1)[..., 0], np.asarray(colour.convert("L")))
    transparent = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert (preprocess_image(transparent, 8) == 255).all()  # composited over white
    wide = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert (preprocess_image(wide, 8) == 255).all()
    batch = np.zeros((2, 4, 4, 3), np.uint8)
    assert convert_channels(batch, 1).shape == (2, 4, 4, 1)
    assert convert_channels(batch, None) is batch


def test_to_model_range():
    images = torch.tensor([0, 255, 128], dtype=torch.uint8).reshape(1, 1, 3, 1).expand(2, 1, 3, 3).contiguous()
    out = to_model_range(images)
    assert out.shape == (2, 3, 1, 3) and out.dtype == torch.float32 and out.is_contiguous()
    assert out.min() == -1.0 and out.max() == 1.0
    assert torch.allclose(out[0, :, 0, 2], torch.full((3,), 128 / 127.5 - 1), atol=1e-6)
    with pytest.raises(ValueError):
        to_model_range(images.float())
    if torch.cuda.is_available():
        assert to_model_range(images.cuda()).device.type == "cuda"


# --- IDX ---------------------------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(root: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        data = _idx(array)
        name = f"{prefix}-{kind}-ubyte"
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    root = tmp_path / "mnist"
    _write_idx(root, "train", rng.integers(0, 256, (6, 28, 28)), np.arange(6) % 10, gz=True)
    _write_idx(root, "t10k", rng.integers(0, 256, (3, 28, 28)), np.array([7, 8, 9]), gz=False)
    return root


def test_idx_gz_and_raw(mnist_dir: Path):
    train = load_imageset(DataSpec.parse(f"mnist:{mnist_dir},size=28"))
    assert train.images.shape == (6, 28, 28, 1)
    assert train.labels.tolist() == [0, 1, 2, 3, 4, 5] and train.label_names[3] == "3"
    raw = read_idx(mnist_dir / "train-images-idx3-ubyte.gz", 3)
    assert np.array_equal(train.images[..., 0], raw)
    test = load_imageset(DataSpec.parse(f"mnist:{mnist_dir},split=test,size=32,channels=3,count=2"))
    assert test.images.shape == (2, 32, 32, 3) and test.labels.tolist() == [7, 8]


def test_idx_malformed(tmp_path: Path, mnist_dir: Path):
    bad = tmp_path / "bad"
    _write_idx(bad, "train", np.zeros((2, 4, 4)), np.zeros(2), gz=False)
    path = bad / "train-images-idx3-ubyte"
    path.write_bytes(b"\0\0\x09\x03" + path.read_bytes()[4:])
    with pytest.raises(DataError, match="malformed IDX.*magic") as info:
        load_imageset(DataSpec.parse(f"mnist:{bad}"))
    assert str(path) in str(info.value) and "\n" not in str(info.value)

    truncated = mnist_dir / "train-images-idx3-ubyte.gz"
    truncated.write_bytes(gzip.compress(gzip.decompress(truncated.read_bytes())[:-5]))
    with pytest.raises(DataError, match="needs"):
        load_imageset(DataSpec.parse(f"mnist:{mnist_dir}"))

    _write_idx(bad, "t10k", np.zeros((2, 4, 4)), np.zeros(3), gz=True)
    with pytest.raises(DataError, match="3 labels for 2 images"):
        load_imageset(DataSpec.parse(f"mnist:{bad},split=test"))
    with pytest.raises(DataError, match="needs a path"):
        load_imageset(DataSpec.parse("mnist"))
    with pytest.raises(DataError, match="not a directory"):
        load_imageset(DataSpec.parse(f"mnist:{tmp_path / 'nowhere'}"))


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    train = load_imageset(DataSpec.parse("fashion-mnist:count=100,size=32"))
    assert train.images.shape == (100, 32, 32, 1) and train.images.dtype == np.uint8
    assert len(train.labels) == 100 and set(train.labels.tolist()) <= set(range(10))
    assert train.label_names[9] == "Ankle boot" and train.images.max() > 200
    test = load_imageset(DataSpec.parse("fashion-mnist:split=test,count=100,size=28"))
    assert test.images.shape == (100, 28, 28, 1)
    assert not np.array_equal(test.images, train.images[:, :28, :28])


# --- folders -----------------------------------------------------------------------------


@pytest.fixture
def image_folder(tmp_path: Path) -> tuple[Path, dict[str, tuple[int, int, int]]]:
    """A nested folder of png/jpg/webp/bmp (one grey) + a corrupt png; returns it and each train
    image's expected RGB colour."""
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    files = [
        (_pick("red{}.png", False), "PNG", _solid((255, 0, 0))),
        (_pick("sub/green{}.jpg", False), "JPEG", _solid((0, 255, 0))),
        (_pick("sub/deeper/blue{}.webp", False), "WEBP", _solid((0, 0, 255))),
        (_pick("yellow{}.BMP", False), "BMP", _solid((200, 200, 0))),
        (_pick("grey{}.png", False), "PNG", _solid(90, mode="L")),
        (_pick("test{}.png", True), "PNG", _solid((1, 2, 3))),
    ]
    for name, fmt, image in files:
        image.save(root / name, format=fmt)
    (root / _pick("broken{}.png", True)).write_bytes(b"not an image at all")
    (root / "notes.txt").write_text("ignored")
    colours = {name: image.convert("RGB").getpixel((0, 0)) for name, _, image in files[:5]}
    return root, colours


def test_folder_reads_recursively_skips_corrupt(image_folder):
    root, colours = image_folder
    imageset = load_imageset(DataSpec.parse(f"folder:{root},size=8"))
    assert imageset.images.shape == (5, 8, 8, 3) and imageset.skipped == 0
    for row, name in enumerate(sorted(colours)):  # sorted by relative path
        assert np.abs(imageset.images[row].astype(int) - colours[name]).max() <= 4, name
    assert imageset.labels is None

    test = load_imageset(DataSpec.parse(f"folder:{root},size=8,split=test"))
    assert len(test) == 1 and test.skipped == 1  # the corrupt file hashes to the test split
    source = open_folder(root, "test")
    list(source.records)
    assert len(source.skipped) == 1 and source.skipped[0]["path"].startswith("broken")


def test_folder_count_and_channels(image_folder):
    root, colours = image_folder
    grey = load_imageset(DataSpec.parse(f"folder:{root},size=8,channels=1,count=2"))
    assert grey.images.shape == (2, 8, 8, 1)


def test_folder_train_test_subfolders_and_errors(tmp_path: Path):
    root = tmp_path / "split"
    for split, n in (("train", 3), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            _solid((i, i, i)).save(root / split / f"{i}.png")
    assert len(load_imageset(DataSpec.parse(f"folder:{root},size=8"))) == 3
    assert len(load_imageset(DataSpec.parse(f"folder:{root},size=8,split=test"))) == 2

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no train images"):
        load_imageset(DataSpec.parse(f"folder:{empty}"))
    only_broken = tmp_path / "broken"
    only_broken.mkdir()
    (only_broken / _pick("x{}.png", False)).write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="no readable images"):
        load_imageset(DataSpec.parse(f"folder:{only_broken}"))


# --- LSUN --------------------------------------------------------------------------------


def test_lsun_lmdb(tmp_path: Path):
    lmdb = pytest.importorskip("lmdb")
    root = tmp_path / "bedroom_train_lmdb"
    train, test = _names("k", "", 3, 1)
    env = lmdb.open(str(root), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(train[0].encode(), _encode(_solid((255, 0, 0), (20, 16)), "WEBP"))
        txn.put(train[1].encode(), _encode(_solid((0, 255, 0), (16, 20)), "JPEG"))
        txn.put(train[2].encode(), b"corrupt")
        txn.put(test[0].encode(), _encode(_solid((0, 0, 255)), "WEBP"))
    env.close()
    imageset = load_imageset(DataSpec.parse(f"lsun:{root},size=8"))
    assert imageset.images.shape == (2, 8, 8, 3) and imageset.skipped == 1
    order = sorted(train[:2])
    first = (255, 0, 0) if order[0] == train[0] else (0, 255, 0)
    assert np.abs(imageset.images[0, 4, 4].astype(int) - first).max() < 8
    assert len(load_imageset(DataSpec.parse(f"lsun:{root},size=8,split=test"))) == 1
    with pytest.raises(DataError, match="no data.mdb"):
        load_imageset(DataSpec.parse(f"lsun:{tmp_path}"))


# --- CelebA ------------------------------------------------------------------------------


def _celeba(root: Path, partition: bool) -> list[str]:
    (root / "img_align_celeba").mkdir(parents=True)
    files, _ = _names("", ".jpg", 4, 0)
    rows = [f"{len(files)}", "Smiling Male"]
    for i, name in enumerate(files):
        _solid((i * 60, 0, 0), (18, 22)).save(root / "img_align_celeba" / name)
        rows.append(f"{name}  {'1' if i % 2 else '-1'} {'-1' if i < 2 else ' 1'}")
    (root / "list_attr_celeba.txt").write_text("\n".join(rows) + "\n")
    if partition:
        (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(files, (0, 1, 2, 2))))
    return files


def test_celeba(tmp_path: Path):
    root = tmp_path / "celeba"
    _celeba(root, partition=True)
    train = load_imageset(DataSpec.parse(f"celeba:{root},size=8"))
    assert train.images.shape == (2, 8, 8, 3)
    assert train.attribute_names == ("Smiling", "Male")
    assert train.attributes.dtype == np.float32
    assert train.attributes.tolist() == [[0.0, 0.0], [1.0, 0.0]]
    test = load_imageset(DataSpec.parse(f"celeba:{root},size=8,split=test"))
    assert test.attributes.tolist() == [[0.0, 1.0], [1.0, 1.0]]


def test_celeba_hashed_split_and_errors(tmp_path: Path):
    root = tmp_path / "celeba"
    files = _celeba(root, partition=False)
    (root / "img_align_celeba" / files[1]).unlink()
    imageset = load_imageset(DataSpec.parse(f"celeba:{root},size=8"))
    assert len(imageset) == 3 and imageset.skipped == 1
    (root / "list_attr_celeba.txt").write_text("1\nSmiling Male\nx.jpg 1 2\n")
    with pytest.raises(DataError, match=r"list_attr_celeba.txt:3"):
        load_imageset(DataSpec.parse(f"celeba:{root}"))


# --- CIFAR-10 ----------------------------------------------------------------------------


def _cifar(root: Path, bytes_keys: bool = False) -> None:
    root.mkdir(parents=True)
    rng = np.random.default_rng(2)

    def key(k: str):
        return k.encode() if bytes_keys else k

    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        batch = {key("data"): rng.integers(0, 256, (2, 3072), dtype=np.uint8), key("labels"): [i % 10, 9]}
        (root / name).write_bytes(pickle.dumps(batch, protocol=4))
    names = [b"airplane", b"automobile"] + [f"c{i}".encode() for i in range(2, 10)]
    (root / "batches.meta").write_bytes(pickle.dumps({key("label_names"): names}, protocol=4))


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10(tmp_path: Path, bytes_keys: bool):
    root = tmp_path / "cifar-10-batches-py"
    _cifar(root, bytes_keys)
    train = load_imageset(DataSpec.parse(f"cifar10:{tmp_path},size=32"))  # parent folder works too
    assert train.images.shape == (10, 32, 32, 3)
    assert train.labels.tolist() == [0, 9, 1, 9, 2, 9, 3, 9, 4, 9]
    assert train.label_names[:2] == ("airplane", "automobile")
    batch = pickle.loads((root / "data_batch_1").read_bytes())
    first = batch[b"data" if bytes_keys else "data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(train.images[0], first)
    test = load_imageset(DataSpec.parse(f"cifar10:{root},split=test,size=16"))
    assert test.images.shape == (2, 16, 16, 3) and test.labels.tolist() == [5, 9]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar_malicious_pickle_is_refused(tmp_path: Path):
    root = tmp_path / "cifar-10-batches-py"
    _cifar(root)
    marker = tmp_path / "pwned"
    (root / "data_batch_3").write_bytes(pickle.dumps({"data": _Exploit(marker)}, protocol=2))
    with pytest.raises(DataError, match="refusing to unpickle .*system") as info:
        load_imageset(DataSpec.parse(f"cifar10:{root}"))
    assert "data_batch_3" in str(info.value)
    assert not marker.exists()
    for module, name in (("builtins", "eval"), ("numpy", "load"), ("numpy.core.multiarray", "scalar")):
        evil = tmp_path / f"{name}.pkl"
        evil.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00.")
        with pytest.raises(DataError, match=f"refusing to unpickle {module}.{name}"):
            load_restricted_pickle(evil)
    (root / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="unreadable pickle"):
        load_imageset(DataSpec.parse(f"cifar10:{root},split=test"))
