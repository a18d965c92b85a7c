"""Readers for real image sources: MNIST-style IDX files, image folders, LSUN lmdb, CelebA, CIFAR-10.

Each ``open_*(path, split)`` checks the source cheaply and returns a ``RealSource`` whose
``records`` generator decodes images lazily, in a deterministic order. Images come out as
decoded PIL images or uint8 arrays, untouched; ``preprocess`` shapes them. Files that cannot
be decoded are skipped and listed in ``RealSource.skipped`` as the generator runs.
Every user-facing problem raises ``DataError`` with a one-line message naming the path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from dcgan_viz.data.preprocess import to_base_mode

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))
TEST_FRACTION_BUCKETS = 10  # hashed splits put 1 key in 10 in the test split
CIFAR_DIR_NAME = "cifar-10-batches-py"

_IDX_UBYTE = 0x08


class DataError(ValueError):
    """A data source is missing, malformed or unusable (message: one line naming the path)."""


@dataclass
class Record:
    """One image of a source: a decoded PIL image or uint8 array (H, W) / (H, W, 3)."""

    image: Image.Image | np.ndarray
    label: int | None = None
    attributes: np.ndarray | None = None  # float32 (A,) in {0, 1}


@dataclass
class RealSource:
    """An opened split of a real source.

    records: lazy generator of ``Record`` in deterministic order. total: an upper bound on how
    many it yields (exact unless files are skipped). fingerprint: changes whenever the files read
    change (names, sizes, mtimes). skipped: ``{"path", "error"}`` dicts, appended while
    ``records`` runs.
    """

    records: Iterator[Record]
    total: int
    fingerprint: str
    label_names: tuple[str, ...] | None = None
    attribute_names: tuple[str, ...] | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)


def is_test_key(key: str) -> bool:
    """Deterministic hashed split: about 1 key in ``TEST_FRACTION_BUCKETS`` is in the test split."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % TEST_FRACTION_BUCKETS == 0


def fingerprint_files(paths: Iterable[Path], root: Path) -> str:
    """blake2b over (relative path, size, mtime) of ``paths``; missing files count as size -1."""
    hasher = hashlib.blake2b(digest_size=16)
    for path in paths:
        try:
            stat = path.stat()
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            size, mtime = -1, 0
        rel = path.relative_to(root).as_posix()
        hasher.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()


def _require_dir(path: str | Path | None, source: str, example: str) -> Path:
    if path is None:
        raise DataError(f"{source} needs a path, e.g. {example}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{source}: {root} is not a directory")
    return root


def decode_image(data: bytes | Path) -> Image.Image:
    """Fully decode an encoded image (bytes or a file) to mode "L" or "RGB"."""
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        image.load()
        return to_base_mode(image)


def _decoded_records(
    items: Iterable[tuple[str, bytes | Path, dict[str, Any]]], skipped: list[dict[str, str]]
) -> Iterator[Record]:
    """Decode ``(name, encoded bytes or file, record fields)`` items; undecodable ones are listed
    in ``skipped`` instead. Any exception counts: decoders fail in many ways on hostile files."""
    for name, data, fields in items:
        try:
            image = decode_image(data)
        except Exception as exc:  # noqa: BLE001 - a bad file must never stop a run
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            skipped.append({"path": name, "error": message})
            continue
        yield Record(image=image, **fields)


# --- MNIST / Fashion-MNIST IDX files -------------------------------------------------------


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _parse_idx_header(header: bytes, path: Path, ndim: int) -> tuple[int, ...]:
    """Dims from an IDX header ``00 00 08 ndim`` + ndim big-endian uint32; DataError if malformed."""
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{path}: malformed IDX file (only {len(header)} bytes)")
    if header[:2] != b"\0\0" or header[2] != _IDX_UBYTE or header[3] != ndim:
        raise DataError(
            f"{path}: malformed IDX file (magic {header[:4].hex()}, expected 000008{ndim:02x}: ubyte, {ndim} dims)"
        )
    return tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))


def _read_idx_bytes(path: Path, limit: int = -1) -> bytes:
    try:
        with _open_maybe_gzip(path) as fh:
            return fh.read(limit)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: unreadable IDX file ({exc})") from None


def read_idx_shape(path: Path, ndim: int) -> tuple[int, ...]:
    """Shape of an IDX uint8 file from its header only (gzipped or not)."""
    return _parse_idx_header(_read_idx_bytes(path, 4 + 4 * ndim), path, ndim)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A whole IDX uint8 file (gzipped or not) -> uint8 array of its ``ndim``-dim shape."""
    data = _read_idx_bytes(path)
    shape = _parse_idx_header(data, path, ndim)
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) + offset
    if len(data) != expected:
        raise DataError(f"{path}: malformed IDX file ({len(data)} bytes, header {shape} needs {expected})")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root}: missing {stem}[.gz]")


def open_mnist(path: str | Path | None, split: str, fashion: bool = False) -> RealSource:
    """MNIST / Fashion-MNIST IDX files: ``train-*`` (train) or ``t10k-*`` (test); records are
    uint8 (28, 28) arrays with int labels. Fashion-MNIST defaults to ``FASHION_MNIST_DIR``."""
    source = "fashion-mnist" if fashion else "mnist"
    if path is None and fashion:
        path = FASHION_MNIST_DIR
    root = _require_dir(path, source, f"{source}:/data/{source}")
    prefix = "train" if split == "train" else "t10k"
    images_path = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    count = read_idx_shape(images_path, 3)[0]
    label_count = read_idx_shape(labels_path, 1)[0]
    if label_count != count:
        raise DataError(f"{labels_path}: {label_count} labels for {count} images in {images_path.name}")

    def records() -> Iterator[Record]:
        images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
        for image, label in zip(images, labels):
            yield Record(image=image, label=int(label))

    return RealSource(
        records=records(),
        total=count,
        fingerprint=fingerprint_files([images_path, labels_path], root),
        label_names=FASHION_MNIST_CLASSES if fashion else MNIST_CLASSES,
    )


# --- image folders -----------------------------------------------------------------------


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive), sorted by relative path."""
    found = []
    for directory, _, names in os.walk(root):
        found.extend(Path(directory, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def open_folder(path: str | Path | None, split: str) -> RealSource:
    """Every jpg/jpeg/png/webp/bmp under ``path`` (recursive, sorted). Split: the ``train/`` or
    ``test/`` subfolder if both exist, else a hashed 10% of relative paths is the test split."""
    root = _require_dir(path, "folder", "folder:/data/photos")
    if (root / "train").is_dir() and (root / "test").is_dir():
        files = list_images(root / split)
    else:
        files = [p for p in list_images(root) if is_test_key(p.relative_to(root).as_posix()) == (split == "test")]
    if not files:
        raise DataError(f"folder: no {split} images ({'/'.join(IMAGE_EXTENSIONS)}) under {root}")
    skipped: list[dict[str, str]] = []
    items = ((p.relative_to(root).as_posix(), p, {}) for p in files)
    return RealSource(
        records=_decoded_records(items, skipped),
        total=len(files),
        fingerprint=fingerprint_files(files, root),
        skipped=skipped,
    )


# --- LSUN lmdb ---------------------------------------------------------------------------


def _import_lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataError("lsun needs the optional 'lmdb' package: pip install 'dcgan-viz[lsun]'") from None
    return lmdb


def open_lsun(path: str | Path | None, split: str) -> RealSource:
    """An LSUN lmdb directory (``data.mdb``) whose values are encoded images, in key order;
    hashed 10% of keys is the test split."""
    root = _require_dir(path, "lsun", "lsun:/data/bedroom_train_lmdb")
    if not (root / "data.mdb").is_file():
        raise DataError(f"lsun: {root} has no data.mdb (expected an lmdb directory)")
    lmdb = _import_lmdb()
    try:
        env = lmdb.open(str(root), readonly=True, lock=False, readahead=False, meminit=False, max_readers=4)
    except lmdb.Error as exc:
        raise DataError(f"lsun: cannot open {root} ({exc})") from None
    want_test = split == "test"

    def in_split(key: bytes) -> bool:
        return is_test_key(key.decode("utf-8", "surrogateescape")) == want_test

    with env.begin() as txn:
        total = sum(1 for key in txn.cursor().iternext(keys=True, values=False) if in_split(key))
    if total == 0:
        raise DataError(f"lsun: no {split} entries in {root}")

    def items() -> Iterator[tuple[str, bytes, dict]]:
        with env.begin() as txn:
            for key, value in txn.cursor():
                if in_split(key):
                    yield key.decode("utf-8", "replace"), value, {}
        env.close()

    skipped: list[dict[str, str]] = []
    return RealSource(
        records=_decoded_records(items(), skipped),
        total=total,
        fingerprint=fingerprint_files([root / "data.mdb"], root),
        skipped=skipped,
    )


# --- CelebA ------------------------------------------------------------------------------


def read_celeba_attributes(path: Path) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    """``list_attr_celeba.txt`` -> (attribute names, file names, float32 (N, A) with -1/1 -> 0/1)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"celeba: cannot read {path} ({exc})") from None
    if len(lines) < 2:
        raise DataError(f"{path}: malformed CelebA attribute file (needs a count line and a names line)")
    names = tuple(lines[1].split())
    files, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("-1", "1") for v in parts[1:]):
            raise DataError(f"{path}:{number}: expected a file name and {len(names)} values of -1/1")
        files.append(parts[0])
        rows.append([v == "1" for v in parts[1:]])
    return names, files, np.asarray(rows, dtype=np.float32).reshape(len(files), len(names))


def read_celeba_partition(path: Path) -> dict[str, int]:
    """``list_eval_partition.txt`` -> {file name: 0 train / 1 val / 2 test}."""
    partition = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataError(f"{path}:{number}: expected '<file> <0|1|2>'")
        partition[parts[0]] = int(parts[1])
    return partition


def open_celeba(path: str | Path | None, split: str) -> RealSource:
    """CelebA: ``img_align_celeba/`` images with ``list_attr_celeba.txt`` attributes (0/1) in file
    order. Split: ``list_eval_partition.txt`` (0 and 1 train, 2 test) if present, else hashed."""
    root = _require_dir(path, "celeba", "celeba:/data/celeba")
    image_dir, attr_path = root / "img_align_celeba", root / "list_attr_celeba.txt"
    for needed in (image_dir, attr_path):
        if not needed.exists():
            raise DataError(f"celeba: {root} has no {needed.name}")
    names, files, attributes = read_celeba_attributes(attr_path)
    partition_path = root / "list_eval_partition.txt"
    if partition_path.is_file():
        partition = read_celeba_partition(partition_path)
        keep = [(partition.get(f, 0) == 2) == (split == "test") for f in files]
    else:
        keep = [is_test_key(f) == (split == "test") for f in files]
    chosen = [(f, a) for f, a, k in zip(files, attributes, keep) if k]
    if not chosen:
        raise DataError(f"celeba: no {split} images listed in {attr_path}")
    skipped: list[dict[str, str]] = []
    items = ((f, image_dir / f, {"attributes": a}) for f, a in chosen)
    meta = [attr_path] + ([partition_path] if partition_path.is_file() else [])
    return RealSource(
        records=_decoded_records(items, skipped),
        total=len(chosen),
        fingerprint=fingerprint_files(meta + [image_dir / f for f, _ in chosen], root),
        attribute_names=names,
        skipped=skipped,
    )


# --- CIFAR-10 ----------------------------------------------------------------------------


def _numpy_reconstruct() -> Callable:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: every global except numpy's array
    reconstruction (``_reconstruct`` under its numpy 1 and numpy 2 module names, ``ndarray``,
    ``dtype``) is refused, so a crafted file cannot run code."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise DataError(f"{self.path}: refusing to unpickle {module}.{name} (only numpy arrays and plain data)")


def load_restricted_pickle(path: Path) -> Any:
    """Unpickle ``path`` with ``RestrictedUnpickler``; DataError if it is malformed or refused."""
    try:
        with open(path, "rb") as fh:
            return RestrictedUnpickler(fh, path).load()
    except DataError:
        raise
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: unreadable pickle ({type(exc).__name__}: {exc})") from None


def _str_keys(obj: Any, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 python batch -> (uint8 (N, 32, 32, 3), int64 labels (N,))."""
    batch = _str_keys(load_restricted_pickle(path), path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be a uint8 (N, 3072) array")
    if labels is None or len(labels) != len(data):
        raise DataError(f"{path}: 'labels' must list one label per image ({len(data)})")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int64)


def read_cifar_label_names(path: Path) -> tuple[str, ...]:
    """``batches.meta`` -> the 10 class names."""
    names = _str_keys(load_restricted_pickle(path), path).get("label_names")
    if not isinstance(names, list):
        raise DataError(f"{path}: no 'label_names' list")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def open_cifar10(path: str | Path | None, split: str) -> RealSource:
    """CIFAR-10 python batches (``data_batch_1..5`` train, ``test_batch`` test, ``batches.meta``);
    ``path`` may be the batches folder or its parent. Records: uint8 (32, 32, 3) with labels."""
    root = _require_dir(path, "cifar10", f"cifar10:/data/{CIFAR_DIR_NAME}")
    if (root / CIFAR_DIR_NAME).is_dir():
        root = root / CIFAR_DIR_NAME
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    batch_paths = [root / n for n in names]
    for needed in batch_paths + [root / "batches.meta"]:
        if not needed.is_file():
            raise DataError(f"cifar10: {root} has no {needed.name}")
    batches = [read_cifar_batch(p) for p in batch_paths]

    def records() -> Iterator[Record]:
        for images, labels in batches:
            for image, label in zip(images, labels):
                yield Record(image=image, label=int(label))

    return RealSource(
        records=records(),
        total=sum(len(labels) for _, labels in batches),
        fingerprint=fingerprint_files(batch_paths + [root / "batches.meta"], root),
        label_names=read_cifar_label_names(root / "batches.meta"),
    )
