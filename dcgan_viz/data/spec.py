"""DataSpec: enough to get a training (or held-out) set back, stored in every checkpoint.

A spec is written as a short string on the command line (``rooms``, ``faces:seed=3,count=5000``,
``fashion-mnist``, ``folder:/photos``, ``prepared:cache/rooms64``) and stored as JSON in the
checkpoint. Synthetic sources are regenerated exactly from (seed, index); real sources are
re-read from their path and checked against the stored content hash.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

SYNTHETIC_SOURCES = ("rooms", "faces")
REAL_SOURCES = ("fashion-mnist", "mnist", "folder", "lsun", "celeba", "cifar10", "prepared")
NO_DATA = "none"  # an imported model: its training data is unknown; analyses that need images ask for --data
SOURCES = SYNTHETIC_SOURCES + REAL_SOURCES + ("random", NO_DATA)
SPLITS = ("train", "test")
MAX_SIZE = 4096  # image side; a bigger one is a typo that would ask for gigabytes per image


@dataclass(frozen=True)
class DataSpec:
    """Where images come from and how they are shaped.

    source: one of SOURCES. path: file/folder for real sources (None = the source's default).
    size: square side the images are resized to. channels: 1 or 3 (None = the source's own).
    split: "train" or the held-out "test". seed/count: synthetic sets are images
    ``[0, count)`` (train) or ``[count, count + test_count)`` (test) of ``seed``; for real sources
    ``count`` caps the number of images (None = all). content_hash: of the prepared array, so a
    changed source is noticed.
    """

    source: str = "rooms"
    path: str | None = None
    size: int = 64
    channels: int | None = None
    split: str = "train"
    seed: int = 0
    count: int | None = None
    test_count: int | None = None
    content_hash: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, kinds in (("source", (str,)), ("path", (str, type(None))), ("split", (str,)),
                            ("content_hash", (str, type(None))), ("options", (dict,))):
            if not isinstance(getattr(self, name), kinds):
                raise ValueError(f"data spec {name} has the wrong type ({type(getattr(self, name)).__name__})")
        for name, optional in (("size", False), ("seed", False), ("channels", True), ("count", True),
                               ("test_count", True)):
            value = getattr(self, name)
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"data spec {name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.source not in SOURCES:
            raise ValueError(f"unknown data source {self.source!r}; choose one of {', '.join(SOURCES)}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        if not 4 <= self.size <= MAX_SIZE:
            raise ValueError(f"image size must be between 4 and {MAX_SIZE}, got {self.size}")
        for name in ("count", "test_count"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"data spec {name} must be >= 0, got {getattr(self, name)}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DataSpec":
        if not isinstance(data, dict):
            raise ValueError(f"data spec must be an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_split(self, split: str) -> "DataSpec":
        """The same source's other split (its content hash is the recorded split's, so it is dropped)."""
        return replace(self, split=split, content_hash=None if split != self.split else self.content_hash)

    @classmethod
    def parse(cls, text: str, **defaults: Any) -> "DataSpec":
        """Parse ``source[:path][,key=value...]`` e.g. ``folder:/data/x``, ``rooms:seed=3,count=5000``.

        Keys: seed, count, test_count, channels, size, split; anything else goes to ``options``.
        """
        text = text.strip()
        if not text:
            raise ValueError("empty data spec")
        cut = min((i for i in (text.find(":"), text.find(",")) if i >= 0), default=len(text))
        source, rest = text[:cut].strip().lower(), text[cut + 1 :]
        if cut < len(text) and text[cut] == ",":
            rest = "," + rest  # no path: only options follow
        kwargs: dict[str, Any] = dict(defaults)
        options: dict[str, Any] = dict(kwargs.pop("options", {}) or {})
        path = None
        if rest:
            items = rest.split(",")
            if "=" not in items[0]:
                path = items[0] or None
                items = items[1:]
            for item in items:
                if not item:
                    continue
                if "=" not in item:
                    raise ValueError(f"bad data spec option {item!r} (expected key=value)")
                key, value = (s.strip() for s in item.split("=", 1))
                if key in ("seed", "count", "test_count", "channels", "size"):
                    try:
                        kwargs[key] = int(value)
                    except ValueError:
                        raise ValueError(f"data spec option {key} must be an integer, got {value!r}") from None
                elif key == "split":
                    kwargs[key] = value
                else:
                    options[key] = value
        return cls(source=source, path=path, options=options, **kwargs)


@dataclass
class ImageSet:
    """A set of images with whatever ground truth the source has.

    images: uint8 array (N, H, W, C) (may be a np.memmap). labels: int64 (N,) class labels or
    None. attributes: float32 (N, A) (faces, CelebA) with ``attribute_names``. masks: uint8
    (N, H, W) per-pixel class ids with ``mask_names`` (rooms classes, face parts).
    boxes: float32 (N, MAX_OBJECTS, 5) rows (class_id, x0, y0, x1, y1) in pixels, class_id -1 =
    padding (rooms), or None.
    """

    images: np.ndarray
    spec: DataSpec
    labels: np.ndarray | None = None
    label_names: tuple[str, ...] | None = None
    attributes: np.ndarray | None = None
    attribute_names: tuple[str, ...] | None = None
    masks: np.ndarray | None = None
    mask_names: tuple[str, ...] | None = None
    boxes: np.ndarray | None = None
    skipped: int = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])
