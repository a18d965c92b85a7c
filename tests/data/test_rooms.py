"""Rooms dataset: determinism, masks/boxes that agree with the pixels, variety, any size."""

from __future__ import annotations

import pytest
import torch

from dcgan_viz.data.rooms import MAX_OBJECTS, ROOM_CLASSES, RoomsBatch, render_rooms

WALL, FLOOR, CEILING, WINDOW, BED, DOOR, LAMP, PICTURE, RUG = range(len(ROOM_CLASSES))
OBJECTS = (WINDOW, BED, DOOR, LAMP, PICTURE, RUG)


@pytest.fixture(scope="module")
def many() -> RoomsBatch:
    return render_rooms(0, 256, size=32)


@pytest.fixture(scope="module")
def batch64() -> RoomsBatch:
    return render_rooms(5, 48)


def _same(a: RoomsBatch, b: RoomsBatch) -> bool:
    return all(torch.equal(x, y) for x, y in ((a.images, b.images), (a.masks, b.masks), (a.boxes, b.boxes)))


def _rows(batch: RoomsBatch):
    """(image, class, x0, y0, x1, y1) for every non-padding box row."""
    for i, boxes in enumerate(batch.boxes):
        for c, x0, y0, x1, y1 in boxes.long().tolist():
            if c >= 0:
                yield i, c, x0, y0, x1, y1


def test_class_names():
    assert ROOM_CLASSES == ("wall", "floor", "ceiling", "window", "bed", "door", "lamp", "picture", "rug")


def test_determinism_and_batch_independence():
    batch = render_rooms(3, 16)
    assert _same(batch, render_rooms(3, 16))
    alone = render_rooms(3, [7])
    assert torch.equal(alone.images[0], batch.images[7])
    assert torch.equal(alone.masks[0], batch.masks[7])
    assert torch.equal(alone.boxes[0], batch.boxes[7])
    shifted = render_rooms(3, torch.arange(5, 12))  # a different batch size and offset
    assert _same(RoomsBatch(shifted.images, shifted.masks, shifted.boxes, shifted.indices), _slice(batch, 5, 12))
    assert torch.equal(batch.indices, torch.arange(16))
    assert not torch.equal(render_rooms(4, 16).images, batch.images)


def _slice(b: RoomsBatch, lo: int, hi: int) -> RoomsBatch:
    return RoomsBatch(b.images[lo:hi], b.masks[lo:hi], b.boxes[lo:hi], b.indices[lo:hi])


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_and_dtypes(size: int):
    b = render_rooms(1, [0, 9, 2], size=size)
    assert b.images.shape == (3, size, size, 3) and b.images.dtype == torch.uint8
    assert b.masks.shape == (3, size, size) and b.masks.dtype == torch.uint8
    assert b.boxes.shape == (3, MAX_OBJECTS, 5) and b.boxes.dtype == torch.float32
    assert b.indices.tolist() == [0, 9, 2] and b.indices.dtype == torch.int64
    assert int(b.masks.max()) < len(ROOM_CLASSES)
    _check_boxes(b)


def test_boxes_are_tight_and_cover_the_mask(batch64: RoomsBatch, many: RoomsBatch):
    _check_boxes(batch64)
    _check_boxes(many)


def _check_boxes(b: RoomsBatch) -> None:
    size = b.masks.shape[-1]
    cls = b.boxes[..., 0]
    # Visible instances first, then padding rows of zeros; wall/floor/ceiling never get boxes.
    assert not ((cls[:, 1:] >= 0) & (cls[:, :-1] < 0)).any()
    assert (b.boxes[cls < 0][:, 1:] == 0).all()
    assert not ((cls >= 0) & (cls < WINDOW)).any()
    covered = torch.zeros_like(b.masks, dtype=torch.bool)
    for i, c, x0, y0, x1, y1 in _rows(b):
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
        inside = b.masks[i, y0:y1, x0:x1] == c
        # Tight: every border row and column of the box holds that class.
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        covered[i, y0:y1, x0:x1] |= b.masks[i, y0:y1, x0:x1] == c
    objects = sum(b.masks == c for c in OBJECTS).bool()
    assert torch.equal(covered, objects)  # every object pixel lies in a box of its class


def test_box_contents_are_mostly_their_class(many: RoomsBatch):
    purity: dict[int, list[float]] = {}
    for i, c, x0, y0, x1, y1 in _rows(many):
        purity.setdefault(c, []).append((many.masks[i, y0:y1, x0:x1] == c).float().mean().item())
    mean = {c: sum(v) / len(v) for c, v in purity.items()}
    for c in (WINDOW, BED, DOOR, PICTURE):
        assert mean[c] > 0.7, (ROOM_CLASSES[c], mean[c])
    for c in (LAMP, RUG):  # a thin stand; a rug partly under the bed
        assert mean[c] > 0.3, (ROOM_CLASSES[c], mean[c])


def test_pixels_depict_the_mask(many: RoomsBatch):
    img = many.images.float()
    mean = {c: img[many.masks == c].mean(0) for c in range(len(ROOM_CLASSES))}
    blueness = {c: m[2] - m[0] for c, m in mean.items()}
    assert blueness[WINDOW] > blueness[WALL] + 10  # sky through the glass
    assert mean[WINDOW].mean() > mean[WALL].mean()
    assert mean[CEILING].mean() > mean[WALL].mean() > mean[FLOOR].mean()
    for a in range(len(ROOM_CLASSES)):
        for b in range(a):
            assert (mean[a] - mean[b]).abs().sum() > 10, (ROOM_CLASSES[a], ROOM_CLASSES[b])


def test_variety(many: RoomsBatch):
    cls = many.boxes[..., 0]
    windows = (cls == WINDOW).sum(1)
    assert (windows >= 1).float().mean() > 0.6
    assert set(windows.tolist()) == {0, 1, 2, 3}
    assert (cls == BED).any(1).float().mean() > 0.8
    for c in (DOOR, LAMP, PICTURE, RUG):
        assert 0.1 < (cls == c).any(1).float().mean() < 0.9, ROOM_CLASSES[c]
    rows = many.boxes[cls == WINDOW]
    areas = (rows[:, 3] - rows[:, 1]) * (rows[:, 4] - rows[:, 2])
    assert areas.std() / areas.mean() > 0.3
    assert len({bytes(im.numpy()) for im in many.images}) == len(many.images)


def test_sizes_sample_the_same_scene():
    small, large = render_rooms(2, 8, size=64), render_rooms(2, 8, size=128)
    # Pixel (i, j) at 64 px and pixel (2i, 2j) at 128 px lie a quarter pixel apart.
    agree = (small.masks == large.masks[:, ::2, ::2]).float().mean()
    assert agree > 0.9
    assert (small.boxes[..., 0] >= 0).sum() >= (large.boxes[..., 0] >= 0).sum() - 2
