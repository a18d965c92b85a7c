"""The prepared cache: a data set written once as raw arrays and read back with ``np.memmap``.

A prepared directory holds::

    images.u8          raw uint8 (N, H, W, C), C order (memmap, so sets larger than RAM work)
    masks.u8           raw uint8 (N, H, W) per-pixel class ids          (rooms, faces)
    labels.npy         int64 (N,)                                      (MNIST, CIFAR-10)
    attributes.npy     float32 (N, A) in {0, 1}                        (faces, CelebA)
    boxes.npy          float32 (N, MAX_OBJECTS, 5) (class_id, x0, y0, x1, y1), class -1 = padding (rooms)
    source_indices.npy int64 (N,) rows of the source set kept          (filter_prepared output only)
    manifest.json      source, spec, shape, content hash, fingerprint, skipped files, names, version
    test/              the source's held-out split, prepared the same way (a prepared directory itself)

The manifest's ``held_out`` says where the held-out split is (``{"dir": "test", "count": n}``) or
why there is none (``{"count": 0, "why": ...}``: the set is itself a held-out split, or the source
has no held-out images); a cache written before held-out splits were stored has no ``held_out``.

``content_hash`` is the hex blake2b-256 of the bytes of ``images.u8`` (``b2sum -l 256``).
The directory is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from dcgan_viz.data.sources import DataError
from dcgan_viz.data.spec import DataSpec, ImageSet
from dcgan_viz.fsutil import atomic_write_json, clean_stale

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RAW_FILES = {"images": "images.u8", "masks": "masks.u8"}
NPY_FILES = {"labels": "labels.npy", "attributes": "attributes.npy", "boxes": "boxes.npy"}
FILTER_CHUNK = 2048
HELD_OUT_DIR = "test"

log = logging.getLogger(__name__)


@dataclass
class Chunk:
    """Consecutive images of a set: images uint8 (n, H, W, C); the rest per image or None."""

    images: np.ndarray
    labels: np.ndarray | None = None  # int64 (n,)
    attributes: np.ndarray | None = None  # float32 (n, A)
    masks: np.ndarray | None = None  # uint8 (n, H, W)
    boxes: np.ndarray | None = None  # float32 (n, MAX_OBJECTS, 5)


@dataclass
class Stream:
    """A spec's images, produced lazily in chunks.

    total: upper bound on the image count. fingerprint: identifies the source state (files,
    sizes, mtimes; or the synthetic range), a cache with the same one is reused. skipped:
    ``{"path", "error"}`` dicts, filled while ``chunks`` is consumed.
    """

    chunks: Iterator[Chunk]
    total: int
    fingerprint: str
    label_names: tuple[str, ...] | None = None
    attribute_names: tuple[str, ...] | None = None
    mask_names: tuple[str, ...] | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)


def warn_skipped(location: str | None, skipped: list[dict[str, str]]) -> None:
    """Log one line about files a reader could not decode (the full list is in the manifest)."""
    if skipped:
        first = skipped[0]
        log.warning(
            "%s: skipped %d unreadable files (first: %s: %s)", location, len(skipped), first["path"], first["error"]
        )


def spec_identity(spec_dict: dict) -> str:
    """The spec without its content hash, as canonical JSON (what makes two preparations equal)."""
    return json.dumps({k: v for k, v in spec_dict.items() if k != "content_hash"}, sort_keys=True)


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(f"{directory}: not a prepared data set (no {MANIFEST}); run prepare first")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: prepared format {manifest.get('format_version')}, expected {FORMAT_VERSION}; prepare it again"
        )
    return manifest


def _open_raw(directory: Path, name: str, shape: tuple[int, ...]) -> np.memmap:
    path = directory / name
    expected = int(np.prod(shape))
    actual = path.stat().st_size if path.is_file() else -1
    if actual != expected:
        found = "missing" if actual < 0 else f"{actual} bytes"
        raise DataError(f"{path}: truncated or changed ({found}, manifest shape {shape} needs {expected} bytes)")
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)


def _load_npy(directory: Path, name: str, count: int) -> np.ndarray:
    path = directory / name
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if len(array) != count:
        raise DataError(f"{path}: {len(array)} rows, manifest says {count} images")
    return array


def _names(manifest: dict, key: str) -> tuple[str, ...] | None:
    names = manifest.get(key)
    return None if names is None else tuple(names)


def open_prepared(directory: str | Path) -> ImageSet:
    """Open a prepared directory: images (and masks) as read-only memmaps.

    The ImageSet's spec is the one that was prepared, with ``content_hash`` set. DataError if the
    directory is missing, from another format version, or a file's size does not match.
    """
    directory = Path(directory)
    manifest = _read_manifest(directory)
    shape = tuple(manifest["shape"])
    arrays = set(manifest["arrays"])
    count = shape[0]
    return ImageSet(
        images=_open_raw(directory, RAW_FILES["images"], shape),
        spec=DataSpec.from_dict(manifest["spec"]),
        labels=_load_npy(directory, NPY_FILES["labels"], count) if "labels" in arrays else None,
        label_names=_names(manifest, "label_names"),
        attributes=_load_npy(directory, NPY_FILES["attributes"], count) if "attributes" in arrays else None,
        attribute_names=_names(manifest, "attribute_names"),
        masks=_open_raw(directory, RAW_FILES["masks"], shape[:3]) if "masks" in arrays else None,
        mask_names=_names(manifest, "mask_names"),
        boxes=_load_npy(directory, NPY_FILES["boxes"], count) if "boxes" in arrays else None,
        skipped=int(manifest["skipped_count"]),
    )


def _write_arrays(stream: Stream, directory: Path, desc: str, progress: bool) -> dict:
    """Write ``stream`` into ``directory``; returns the manifest fields describing what was written."""
    hasher = hashlib.blake2b(digest_size=32)
    raw = {key: open(directory / name, "wb") for key, name in RAW_FILES.items()}
    small: dict[str, list[np.ndarray]] = {key: [] for key in NPY_FILES}
    count, image_shape = 0, None
    try:
        with tqdm(total=stream.total, desc=desc, unit="img", disable=not progress) as bar:
            for chunk in stream.chunks:
                images = np.ascontiguousarray(chunk.images, dtype=np.uint8)
                if image_shape is None:
                    image_shape = images.shape[1:]
                elif images.shape[1:] != image_shape:
                    raise DataError(f"{desc}: image shape changed from {image_shape} to {images.shape[1:]}")
                hasher.update(memoryview(images).cast("B"))
                raw["images"].write(memoryview(images).cast("B"))
                if chunk.masks is not None:
                    raw["masks"].write(memoryview(np.ascontiguousarray(chunk.masks, dtype=np.uint8)).cast("B"))
                for key in NPY_FILES:
                    if getattr(chunk, key) is not None:
                        small[key].append(np.asarray(getattr(chunk, key)))
                count += len(images)
                bar.update(len(images))
        for fh in raw.values():
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        for fh in raw.values():
            fh.close()
    if count == 0:
        raise DataError(f"{desc}: no readable images")
    arrays = ["images"]
    if (directory / RAW_FILES["masks"]).stat().st_size:
        arrays.append("masks")
    else:
        (directory / RAW_FILES["masks"]).unlink()
    for key, parts in small.items():
        if parts:
            np.save(directory / NPY_FILES[key], np.concatenate(parts))
            arrays.append(key)
    return {
        "count": count,
        "shape": [count, *image_shape],
        "size": int(image_shape[0]),
        "channels": int(image_shape[2]),
        "content_hash": hasher.hexdigest(),
        "arrays": arrays,
    }


def check_replaceable(out_dir: Path) -> None:
    """DataError unless ``out_dir`` is new, an empty directory, or a prepared cache: a prepare never
    replaces a file or a directory the toolkit did not write (the output-path policy)."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise DataError(f"{out_dir}: is an existing file, not a prepared cache; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise DataError(f"{out_dir}: exists and is not a prepared cache; prepare replaces only its own caches")


def _temp_dir(out_dir: Path, suffix: str) -> Path:
    """``.<name>.<pid>.<random><suffix>`` next to ``out_dir`` (fsutil.clean_stale knows the naming)."""
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{os.getpid()}.", suffix=suffix, dir=out_dir.parent))


_LEGACY_TEMP = "^\\.{}\\.[a-z0-9_]{{8}}\\.(tmp|old)$"
_OWN_FILES = set(RAW_FILES.values()) | set(NPY_FILES.values()) | {MANIFEST, "source_indices.npy", "data",
                                                                   HELD_OUT_DIR}


def clean_stale_temps(out_dir: Path, min_age_s: float = 3600.0) -> None:
    """Remove what interrupted prepares of ``out_dir`` left next to it: temporaries of dead processes
    (fsutil.clean_stale), and ones of the old naming without a PID when they are older than
    ``min_age_s`` and hold only the files a prepare writes."""
    import re
    import time

    clean_stale(out_dir.parent, stem=out_dir.name)
    if not out_dir.parent.is_dir():
        return
    legacy = re.compile(_LEGACY_TEMP.format(re.escape(out_dir.name)))
    for entry in out_dir.parent.iterdir():
        if not legacy.match(entry.name) or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            if time.time() - entry.stat().st_mtime < min_age_s or not {p.name for p in entry.iterdir()} <= _OWN_FILES:
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` to ``out_dir``, replacing (then deleting) any previous one."""
    old = None
    check_replaceable(out_dir)
    if out_dir.exists():
        old = _temp_dir(out_dir, ".old")
        os.replace(out_dir, old / "data")
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_set(stream: Stream, spec: DataSpec, directory: Path, progress: bool,
               extra_arrays: dict[str, np.ndarray] | None = None, **extra) -> dict:
    """Write ``stream`` (the images of ``spec``) and its manifest into ``directory``; returns the manifest."""
    desc = f"preparing {spec.source} {spec.path or ''}".rstrip() + (" (held-out)" if spec.split == "test" else "")
    written = _write_arrays(stream, directory, desc, progress)
    for name, array in (extra_arrays or {}).items():
        np.save(directory / f"{name}.npy", array)
    manifest = {
        "format_version": FORMAT_VERSION,
        "source": spec.source,
        "spec": replace(spec, content_hash=written["content_hash"]).to_dict(),
        "fingerprint": stream.fingerprint,
        "skipped": stream.skipped,
        "skipped_count": len(stream.skipped),
        "label_names": stream.label_names,
        "attribute_names": stream.attribute_names,
        "mask_names": stream.mask_names,
        **written,
        **extra,
    }
    atomic_write_json(directory / MANIFEST, manifest)
    warn_skipped(spec.path, stream.skipped)
    return manifest


@dataclass
class HeldOut:
    """What a prepare stores as the held-out split: a stream of ``spec``'s images, or why there is none."""

    stream: Stream | None
    spec: DataSpec | None
    why: str = ""


def write_prepared(
    stream: Stream,
    spec: DataSpec,
    out_dir: str | Path,
    progress: bool = True,
    extra_arrays: dict[str, np.ndarray] | None = None,
    held_out: HeldOut | None = None,
    **extra,
) -> ImageSet:
    """Write ``stream`` (the images of ``spec``) as a prepared directory, atomically.

    ``held_out``: the held-out split, written to ``test/`` and recorded in the manifest (None: the
    manifest records none, with why "not prepared"). ``extra_arrays`` are saved as ``<name>.npy``;
    ``extra`` goes into the manifest as is. Returns the set opened from ``out_dir``.
    """
    out_dir = Path(out_dir)
    check_replaceable(out_dir)  # before any image is read
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out_dir)
    check_resources(stream, spec, out_dir)
    tmp = _temp_dir(out_dir, ".tmp")
    try:
        held = held_out or HeldOut(None, None, "not prepared")
        info: dict = {"count": 0, "why": held.why}
        if held.stream is not None and held.spec is not None:
            check_resources(held.stream, held.spec, out_dir)
            (tmp / HELD_OUT_DIR).mkdir()
            written = _write_set(held.stream, held.spec, tmp / HELD_OUT_DIR, progress)
            info = {"dir": HELD_OUT_DIR, "count": written["count"], "content_hash": written["content_hash"]}
        _write_set(stream, spec, tmp, progress, extra_arrays, held_out=info, **extra)
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return open_prepared(out_dir)


def held_out_dir(directory: str | Path) -> Path:
    """The prepared held-out split (a prepared directory) of the prepared set in ``directory``.

    DataError (one line) when it has none: a cache from before held-out splits were stored (prepare
    it again), a held-out split itself, or a source without held-out images.
    """
    directory = Path(directory)
    manifest = _read_manifest(directory)
    if "held_out" not in manifest:
        spec = manifest.get("spec") or {}
        source = f"{spec.get('source', '?')}{':' + spec['path'] if spec.get('path') else ''}"
        raise DataError(f"prepared:{directory} was prepared without its held-out split (an older prepare); "
                        f"run `dcgan-viz prepare {source} --out {directory}` again, or pass --data with the "
                        "original data spec")
    info = manifest["held_out"]
    if "dir" not in info:
        raise DataError(f"prepared:{directory} has no held-out split ({info.get('why', 'none stored')}); "
                        "pass --data with the original data spec")
    return directory / info["dir"]


def _held_out_matches(out_dir: Path, manifest: dict, held_out: HeldOut | None) -> bool:
    """Whether the held-out split recorded in ``manifest`` is the one ``held_out`` asks for."""
    if held_out is None:
        return True
    info = manifest.get("held_out")
    if info is None:
        return False  # an older prepare: prepare again to store the held-out split
    if held_out.stream is None or held_out.spec is None:
        return "dir" not in info
    if "dir" not in info:
        return False
    test_dir = out_dir / info["dir"]
    test_manifest = _read_manifest(test_dir)
    open_prepared(test_dir)
    return (test_manifest["fingerprint"] == held_out.stream.fingerprint
            and spec_identity(test_manifest["spec"]) == spec_identity(json.loads(json.dumps(held_out.spec.to_dict())))
            and content_hash(test_dir / RAW_FILES["images"]) == test_manifest["content_hash"])


def _reusable(out_dir: Path, spec: DataSpec, fingerprint: str, held_out: HeldOut | None = None) -> ImageSet | None:
    """The existing prepared set in ``out_dir`` if it was made from the same spec and source state
    (and holds the same held-out split as ``held_out``, when given)."""
    if not (out_dir / MANIFEST).is_file():
        return None
    try:
        manifest = _read_manifest(out_dir)
        if manifest["fingerprint"] != fingerprint or spec_identity(manifest["spec"]) != spec_identity(
            json.loads(json.dumps(spec.to_dict()))
        ):
            return None
        imageset = open_prepared(out_dir)
        if content_hash(out_dir / RAW_FILES["images"]) != manifest["content_hash"]:
            log.warning("%s: images changed in place since they were prepared (content hash differs); preparing again",
                        out_dir)
            return None
        if not _held_out_matches(out_dir, manifest, held_out):
            return None
        return imageset
    except (DataError, KeyError, TypeError, ValueError, OSError):
        return None


def content_hash(path: Path) -> str:
    """blake2b-256 of a file's bytes (what the manifest's ``content_hash`` records for images.u8)."""
    hasher = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            hasher.update(block)
    return hasher.hexdigest()


MAX_CHUNK_BYTES = 1 << 30


def check_resources(stream: Stream, spec: DataSpec, out_dir: Path) -> None:
    """DataError (one line) before anything is written when the prepared set cannot fit: one chunk of
    images larger than MAX_CHUNK_BYTES of memory, or the whole set larger than the free disk space."""
    channels = spec.channels or 3
    per_image = spec.size * spec.size * channels
    if per_image > MAX_CHUNK_BYTES:
        raise DataError(f"--size {spec.size}: one image would take {per_image / 2**30:.1f} GiB; use a smaller size")
    need = per_image * max(0, stream.total)
    base = out_dir.parent
    try:
        free = shutil.disk_usage(base).free
    except OSError:
        return
    if need > free:
        raise DataError(f"{out_dir}: {stream.total:,} images of {spec.size}x{spec.size}x{channels} need "
                        f"{need / 2**30:.1f} GiB but {base} has {free / 2**30:.1f} GiB free")


def held_out_of(spec: DataSpec) -> HeldOut:
    """The held-out split a prepare of ``spec`` stores: the source's test split (for synthetic sources
    without ``test_count``, a tenth of the training count, as a folder puts aside), or why none."""
    from dcgan_viz.data.loading import held_out_split, open_stream  # loading imports this module

    if spec.split != "train":
        return HeldOut(None, None, "it is itself a held-out split")
    test_spec = held_out_split(spec)
    try:
        return HeldOut(open_stream(test_spec), test_spec)
    except DataError as exc:
        return HeldOut(None, None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def prepare(spec: DataSpec, out_dir: str | Path, progress: bool = True, held_out: bool = True) -> ImageSet:
    """Prepare ``spec`` into ``out_dir`` (or reuse what is there) and open it as memmaps.

    ``held_out``: also store the source's held-out split in ``out_dir/test`` (``held_out_of``).
    An existing preparation is reused without reading the source images when its spec (content
    hash aside) and source fingerprint match and its files are intact; otherwise it is rebuilt.
    """
    from dcgan_viz.data.loading import open_stream  # loading imports this module

    out_dir = Path(out_dir)
    stream = open_stream(spec)
    held = held_out_of(spec) if held_out else None
    existing = _reusable(out_dir, spec, stream.fingerprint, held)
    if existing is not None:
        return existing
    return write_prepared(stream, spec, out_dir, progress, held_out=held)


def _filtered_chunks(source: ImageSet, indices: np.ndarray) -> Iterator[Chunk]:
    for start in range(0, len(indices), FILTER_CHUNK):
        rows = indices[start : start + FILTER_CHUNK]
        yield Chunk(**{f.name: None if getattr(source, f.name) is None else getattr(source, f.name)[rows]
                       for f in fields(Chunk)})


def filter_prepared(src_dir: str | Path, keep_indices: Sequence[int] | np.ndarray, out_dir: str | Path,
                    progress: bool = False) -> ImageSet:
    """Write the rows ``keep_indices`` (in the order given) of a prepared set to ``out_dir``.

    The copy's spec is ``prepared:<out_dir>``; its manifest records ``filtered_from`` (source
    directory, spec and content hash) and ``source_indices.npy`` maps its rows to the source's.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    source = open_prepared(src_dir)
    indices = np.asarray(keep_indices, dtype=np.int64)
    if indices.ndim != 1 or len(indices) == 0:
        raise DataError(f"filter_prepared: keep_indices must be a non-empty 1-D list (got shape {indices.shape})")
    if indices.min() < 0 or indices.max() >= len(source):
        raise DataError(f"filter_prepared: indices must be in [0, {len(source)}) for {src_dir}")
    stream = Stream(
        chunks=_filtered_chunks(source, indices),
        total=len(indices),
        fingerprint=hashlib.blake2b(indices.tobytes() + source.spec.content_hash.encode(), digest_size=16).hexdigest(),
        label_names=source.label_names,
        attribute_names=source.attribute_names,
        mask_names=source.mask_names,
    )
    _, size, _, channels = source.images.shape
    spec = DataSpec(source="prepared", path=str(out_dir), size=size, channels=channels, split=source.spec.split)
    filtered_from = {"path": str(src_dir), "spec": source.spec.to_dict(), "content_hash": source.spec.content_hash}
    return write_prepared(stream, spec, out_dir, progress, extra_arrays={"source_indices": indices},
                          held_out=_copied_held_out(src_dir), filtered_from=filtered_from)


def _copied_held_out(src_dir: Path) -> HeldOut:
    """The held-out split of the prepared set in ``src_dir``, to be copied as is, or why there is none."""
    try:
        test_dir = held_out_dir(src_dir)
        test = open_prepared(test_dir)
    except DataError:
        return HeldOut(None, None, f"its source {src_dir} has none")
    manifest = _read_manifest(test_dir)
    stream = Stream(chunks=_filtered_chunks(test, np.arange(len(test))), total=len(test),
                    fingerprint=manifest["fingerprint"], label_names=test.label_names,
                    attribute_names=test.attribute_names, mask_names=test.mask_names)
    return HeldOut(stream, test.spec)
