"""``load_imageset``: the one way trainers and analyses get images from a ``DataSpec``.

Synthetic sources (rooms, faces) are rendered in chunks from ``(seed, index)``: the train split
is indices ``[0, count)`` and the test split ``[count, count + test_count)``. Real sources are
read by ``sources`` and shaped by ``preprocess``; ``count`` keeps the first ``count`` readable
images in the source's deterministic order. With a ``cache_dir`` every source goes through
``prepare`` once and is memmapped afterwards.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import fields, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from dcgan_viz.data.prepare import Chunk, Stream, open_prepared, prepare, spec_identity, warn_skipped
from dcgan_viz.data.preprocess import convert_channels, preprocess_image
from dcgan_viz.data.sources import (
    FASHION_MNIST_DIR,
    TEST_FRACTION_BUCKETS,
    DataError,
    Record,
    RealSource,
    open_celeba,
    open_cifar10,
    open_folder,
    open_lsun,
    open_mnist,
)
from dcgan_viz.data.spec import NO_DATA, DataSpec, ImageSet

CHUNK_SIZE = 2048
DEFAULT_COUNTS: dict[str, dict[str, int]] = {
    "rooms": {"count": 100_000, "test_count": 10_000},
    "faces": {"count": 100_000, "test_count": 10_000},
    "random": {"count": 1_000, "test_count": 100},
}
NO_DATA_MESSAGE = ("this checkpoint has no training data (an imported model); pass --data SPEC, "
                   "e.g. --data fashion-mnist")
NATIVE_CHANNELS = {
    "rooms": 3, "faces": 3, "random": 3,
    "fashion-mnist": 1, "mnist": 1, "folder": 3, "lsun": 3, "celeba": 3, "cifar10": 3,
}
_READERS: dict[str, Callable[[str | None, str], RealSource]] = {
    "fashion-mnist": partial(open_mnist, fashion=True),
    "mnist": open_mnist,
    "folder": open_folder,
    "lsun": open_lsun,
    "celeba": open_celeba,
    "cifar10": open_cifar10,
}
_HELP = {
    "rooms": "synthetic rooms with object masks and boxes, regenerated from (seed, index); "
    "count/test_count default 100000/10000. e.g. rooms:seed=3,count=5000",
    "faces": "synthetic faces with attributes (smile, glasses, beard, hair, skin tone, yaw, gaze) and part masks, regenerated from (seed, index); "
    "count/test_count default 100000/10000. e.g. faces:seed=1,size=32",
    "fashion-mnist": f"Fashion-MNIST IDX files (gz or raw), 10 labelled classes, 1 channel; path defaults to "
    f"{FASHION_MNIST_DIR}. e.g. fashion-mnist:count=10000",
    "mnist": "MNIST IDX files (train-*, t10k-*; gz or raw) in a folder, digit labels, 1 channel. "
    "e.g. mnist:/data/mnist",
    "folder": "every jpg/jpeg/png/webp/bmp under a folder (recursive), centre-cropped, 3 channels unless channels=1; "
    "test split = its train/ and test/ subfolders or a hashed 10%. e.g. folder:/data/photos,size=64",
    "lsun": "an LSUN lmdb directory of encoded images (needs the lsun extra); test split = a hashed 10%. "
    "e.g. lsun:/data/bedroom_train_lmdb,count=100000",
    "celeba": "CelebA: img_align_celeba/ and list_attr_celeba.txt (0/1 attributes); split from "
    "list_eval_partition.txt, else a hashed 10%. e.g. celeba:/data/celeba",
    "cifar10": "CIFAR-10 python batches (cifar-10-batches-py or its parent), 10 labelled classes. "
    "e.g. cifar10:/data/cifar-10-batches-py",
    "prepared": "a directory written by prepare (memmapped, so it may exceed RAM; its split is the one prepared; "
    "the source's held-out split is stored in DIR/test). "
    "e.g. prepared:cache/rooms-train-64px-0123456789abcdef",
    "random": "uniform random uint8 images, for tests; count/test_count default 1000/100. e.g. random:count=16,size=32",
    NO_DATA: "no images: what an imported model records (its training data is unknown); analyses that need "
    "images then ask for --data SPEC. e.g. none",
}

def describe_sources() -> dict[str, str]:
    """One line of help per source, with an example spec string."""
    return dict(_HELP)


def cache_key(spec: DataSpec) -> str:
    """Directory name of ``spec`` in a cache: readable prefix + hash of the spec (content hash aside)."""
    digest = hashlib.blake2b(spec_identity(spec.to_dict()).encode(), digest_size=8).hexdigest()
    return f"{spec.source}-{spec.split}-{spec.size}px-{digest}"


def synthetic_range(spec: DataSpec) -> tuple[int, int]:
    """Index range ``[start, stop)`` of a rooms/faces/random spec's split."""
    defaults = DEFAULT_COUNTS[spec.source]
    count = defaults["count"] if spec.count is None else spec.count
    test_count = defaults["test_count"] if spec.test_count is None else spec.test_count
    return (0, count) if spec.split == "train" else (count, count + test_count)


def held_out_split(spec: DataSpec) -> DataSpec:
    """The held-out split a prepare of the training ``spec`` stores: the source's test split; for
    rooms/faces/random without ``test_count``, the tenth of the training count that follows it."""
    test = spec.with_split("test")
    if spec.source in DEFAULT_COUNTS and spec.test_count is None:
        start, stop = synthetic_range(spec.with_split("train"))
        test = replace(test, test_count=max(1, (stop - start) // TEST_FRACTION_BUCKETS))
    return test


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


CHUNK_BYTES = 256 << 20  # uint8 bytes of one chunk; large images come in smaller chunks


def chunk_size(size: int, channels: int) -> int:
    """Images per chunk: CHUNK_SIZE, fewer when that many ``size``-px images exceed CHUNK_BYTES."""
    return max(1, min(CHUNK_SIZE, CHUNK_BYTES // (size * size * channels)))


def _index_batches(start: int, stop: int, step: int = CHUNK_SIZE) -> Iterator[torch.Tensor]:
    for first in range(start, stop, step):
        yield torch.arange(first, min(first + step, stop), dtype=torch.int64)


def _synthetic_stream(spec: DataSpec, channels: int) -> Stream:
    start, stop = synthetic_range(spec)
    fingerprint = f"{spec.source}:seed={spec.seed}:indices={start}-{stop}:size={spec.size}:channels={channels}"
    if spec.source == "rooms":
        from dcgan_viz.data.rooms import ROOM_CLASSES, render_rooms

        def rooms() -> Iterator[Chunk]:
            for indices in _index_batches(start, stop, chunk_size(spec.size, channels)):
                batch = render_rooms(spec.seed, indices, size=spec.size)
                yield Chunk(
                    images=convert_channels(_numpy(batch.images), channels),
                    masks=_numpy(batch.masks),
                    boxes=_numpy(batch.boxes).astype(np.float32),
                )

        return Stream(rooms(), stop - start, fingerprint, mask_names=tuple(ROOM_CLASSES))
    from dcgan_viz.data.faces import FACE_ATTRIBUTES, FACE_PARTS, render_faces

    def faces() -> Iterator[Chunk]:
        for indices in _index_batches(start, stop, chunk_size(spec.size, channels)):
            batch = render_faces(spec.seed, indices, size=spec.size)
            yield Chunk(
                images=convert_channels(_numpy(batch.images), channels),
                attributes=_numpy(batch.attributes).astype(np.float32),
                masks=_numpy(batch.masks),
            )

    return Stream(
        faces(), stop - start, fingerprint, attribute_names=tuple(FACE_ATTRIBUTES), mask_names=tuple(FACE_PARTS)
    )


def _random_stream(spec: DataSpec, channels: int) -> Stream:
    start, stop = synthetic_range(spec)
    rng = np.random.default_rng([spec.seed, 0 if spec.split == "train" else 1])

    def chunks() -> Iterator[Chunk]:
        step = chunk_size(spec.size, channels)
        for first in range(start, stop, step):
            shape = (min(step, stop - first), spec.size, spec.size, channels)
            yield Chunk(images=rng.integers(0, 256, size=shape, dtype=np.uint8))

    fingerprint = f"random:seed={spec.seed}:indices={start}-{stop}:size={spec.size}:channels={channels}"
    return Stream(chunks(), stop - start, fingerprint)


def _records_chunk(records: list[Record], size: int, channels: int) -> Chunk:
    first = records[0]
    return Chunk(
        images=np.stack([preprocess_image(r.image, size, channels) for r in records]),
        labels=None if first.label is None else np.asarray([r.label for r in records], dtype=np.int64),
        attributes=None if first.attributes is None else np.stack([r.attributes for r in records]),
    )


def _real_stream(spec: DataSpec, channels: int) -> Stream:
    source = _READERS[spec.source](spec.path, spec.split)
    total = source.total if spec.count is None else min(spec.count, source.total)
    records = itertools.islice(source.records, total)

    def chunks() -> Iterator[Chunk]:
        while batch := list(itertools.islice(records, chunk_size(spec.size, channels))):
            yield _records_chunk(batch, spec.size, channels)

    return Stream(
        chunks(), total, source.fingerprint, source.label_names, source.attribute_names, skipped=source.skipped
    )


def open_stream(spec: DataSpec) -> Stream:
    """The images of ``spec`` as a lazy ``Stream`` of chunks of up to ``CHUNK_SIZE`` (not "prepared")."""
    if spec.source == "prepared":
        raise DataError(f"prepared: {spec.path} is already prepared; open it with open_prepared")
    channels = spec.channels or NATIVE_CHANNELS[spec.source]
    if spec.source in ("rooms", "faces"):
        return _synthetic_stream(spec, channels)
    if spec.source == "random":
        return _random_stream(spec, channels)
    return _real_stream(spec, channels)


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _collect(stream: Stream, spec: DataSpec, progress: bool) -> ImageSet:
    """Read a whole stream into memory; the spec gets the images' content hash."""
    channels = spec.channels or NATIVE_CHANNELS.get(spec.source, 3)
    need, free = stream.total * spec.size * spec.size * channels, _available_memory()
    if free is not None and need > free:
        raise DataError(f"{spec.source}: {stream.total:,} images of {spec.size}x{spec.size}x{channels} need "
                        f"{need / 2**30:.1f} GiB of memory, {free / 2**30:.1f} GiB are available; "
                        "prepare it on disk (dcgan-viz prepare) or use a smaller size/count")
    hasher = hashlib.blake2b(digest_size=32)
    buffers: dict[str, np.ndarray] = {}
    count = 0
    with tqdm(total=stream.total, desc=f"loading {spec.source}", unit="img", disable=not progress) as bar:
        for chunk in stream.chunks:
            n = len(chunk.images)
            for f in fields(Chunk):
                value = getattr(chunk, f.name)
                if value is not None:
                    if f.name not in buffers:
                        buffers[f.name] = np.empty((stream.total, *value.shape[1:]), dtype=value.dtype)
                    buffers[f.name][count : count + n] = value
            hasher.update(np.ascontiguousarray(chunk.images).data)
            count += n
            bar.update(n)
    if count == 0:
        raise DataError(f"{spec.source}: no readable images for {spec.path or 'the default path'}")
    arrays = {name: buffer[:count] for name, buffer in buffers.items()}
    warn_skipped(spec.path, stream.skipped)
    return ImageSet(
        spec=replace(spec, content_hash=hasher.hexdigest()),
        label_names=stream.label_names,
        attribute_names=stream.attribute_names,
        mask_names=stream.mask_names,
        skipped=len(stream.skipped),
        **arrays,
    )


def _head(imageset: ImageSet, count: int) -> ImageSet:
    """The first ``count`` images of a set (views, so memmaps stay memmaps)."""
    names = [f.name for f in fields(Chunk) if getattr(imageset, f.name) is not None]
    return replace(imageset, **{name: getattr(imageset, name)[:count] for name in names})


def _load_prepared(spec: DataSpec) -> ImageSet:
    if spec.path is None:
        raise DataError("prepared needs a path, e.g. prepared:cache/rooms-train-64px-0123456789abcdef")
    imageset = open_prepared(spec.path)
    if spec.count is not None:
        imageset = _head(imageset, spec.count)
    _, size, _, channels = imageset.images.shape
    stored = imageset.spec
    return replace(
        imageset,
        spec=replace(spec, size=size, channels=channels, split=stored.split, content_hash=stored.content_hash),
    )


def load_imageset(spec: DataSpec, cache_dir: str | Path | None = None, progress: bool = False) -> ImageSet:
    """The images of ``spec``: uint8 (N, H, W, C) plus whatever ground truth the source has.

    rooms: masks uint8 (N, H, W) with mask_names = ROOM_CLASSES, and boxes float32
    (N, MAX_OBJECTS, 5) rows (class_id, x0, y0, x1, y1) in pixels, class_id -1 = padding.
    faces: attributes float32 (N, A) with attribute_names, masks with mask_names = FACE_PARTS.
    mnist, fashion-mnist, cifar10: labels int64 (N,) with label_names. celeba: attributes in {0, 1}.

    ``cache_dir``: prepare the set into ``cache_dir/<cache_key(spec)>`` once and memmap it after.
    The returned spec carries the content hash of the images; if ``spec.content_hash`` is set and
    differs (the source changed since it was recorded) a DataError is raised.
    """
    if spec.source == NO_DATA:
        raise DataError(NO_DATA_MESSAGE)
    if spec.source == "prepared":
        imageset = _load_prepared(spec)
    elif cache_dir is not None:
        imageset = prepare(spec, Path(cache_dir) / cache_key(spec), progress)
    else:
        imageset = _collect(open_stream(spec), spec, progress)
    found = imageset.spec.content_hash
    if spec.content_hash is not None and spec.content_hash != found:
        raise DataError(
            f"{spec.source}:{spec.path or ''}: images changed since the spec was recorded "
            f"(content hash {found[:12]}..., recorded {spec.content_hash[:12]}...)"
        )
    return imageset
