"""Synthetic faces: determinism, attribute statistics, masks consistent with pixels and attributes."""

from __future__ import annotations

import pytest
import torch

from dcgan_viz.data.faces import (
    FACE_ATTRIBUTE_KINDS,
    FACE_ATTRIBUTES,
    FACE_PARTS,
    HAIR_COLORS,
    FacesBatch,
    _draw_attributes,
    render_faces,
)

ATTR = {name: i for i, name in enumerate(FACE_ATTRIBUTES)}
PART = {name: i for i, name in enumerate(FACE_PARTS)}


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.float(), b.float()]))[0, 1].item()


def _area(batch: FacesBatch, part: str) -> torch.Tensor:
    """Fraction of each image labelled ``part``, (N,)."""
    return (batch.masks == PART[part]).float().mean((1, 2))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Rendering is many small ops: on shared cores extra OpenMP threads only stall at barriers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def faces() -> FacesBatch:
    return render_faces(0, 64, size=64)


def test_exports_are_consistent():
    assert FACE_ATTRIBUTES == ("smile", "glasses", "beard", "hair_length", "hair_color", "skin_tone", "yaw", "gaze")
    assert tuple(FACE_ATTRIBUTE_KINDS) == FACE_ATTRIBUTES
    assert FACE_ATTRIBUTE_KINDS["glasses"] == "categorical:3"
    assert FACE_ATTRIBUTE_KINDS["hair_color"] == f"categorical:{len(HAIR_COLORS)}"
    assert FACE_PARTS == ("background", "skin", "hair", "eyes", "mouth", "glasses", "beard", "clothes")


@pytest.mark.parametrize("size,n", [(32, 8), (64, 4), (128, 2), (47, 2)])
def test_shapes_and_dtypes(size, n):
    b = render_faces(1, n, size=size)
    assert b.images.shape == (n, size, size, 3) and b.images.dtype == torch.uint8
    assert b.attributes.shape == (n, len(FACE_ATTRIBUTES)) and b.attributes.dtype == torch.float32
    assert b.masks.shape == (n, size, size) and b.masks.dtype == torch.uint8
    assert b.indices.dtype == torch.int64 and b.indices.tolist() == list(range(n))
    assert int(b.masks.max()) < len(FACE_PARTS)
    assert b.images.float().std() > 10  # not blank


def test_index_forms_agree():
    a = render_faces(2, 3, size=32)
    b = render_faces(2, [0, 1, 2], size=32)
    c = render_faces(2, torch.arange(3), size=32)
    for x, y in ((a, b), (a, c)):
        assert torch.equal(x.images, y.images) and torch.equal(x.masks, y.masks)
    assert render_faces(2, [], size=32).images.shape == (0, 32, 32, 3)
    with pytest.raises(ValueError):
        render_faces(2, [-1], size=32)


def test_deterministic_and_batch_independent():
    batch = render_faces(7, 40, size=32)
    again = render_faces(7, 40, size=32)
    assert torch.equal(batch.images, again.images) and torch.equal(batch.masks, again.masks)
    for alone in (render_faces(7, [5], size=32), render_faces(7, torch.tensor([31, 5]), size=32)):
        i = alone.indices.tolist().index(5)
        assert torch.equal(alone.images[i], batch.images[5])
        assert torch.equal(alone.masks[i], batch.masks[5])
        assert torch.equal(alone.attributes[i], batch.attributes[5])
    other = render_faces(8, 40, size=32)
    assert not torch.equal(other.images, batch.images)
    assert not torch.equal(other.attributes, batch.attributes)


def test_attribute_ranges_and_independence():
    a = _draw_attributes(0, torch.arange(2000))
    assert a.shape == (2000, len(FACE_ATTRIBUTES)) and a.dtype == torch.float32
    for name in ("smile", "hair_length", "skin_tone"):
        assert a[:, ATTR[name]].min() >= 0 and a[:, ATTR[name]].max() <= 1
    for name in ("yaw", "gaze"):
        assert a[:, ATTR[name]].min() >= -1 and a[:, ATTR[name]].max() <= 1
    for name, k in (("glasses", 3), ("beard", 2), ("hair_color", len(HAIR_COLORS))):
        assert set(a[:, ATTR[name]].tolist()) == set(float(v) for v in range(k))
    assert 0.3 < a[:, ATTR["beard"]].mean() < 0.4
    smile = a[:, ATTR["smile"]]
    assert (smile < 0.15).float().mean() > 0.25 and (smile > 0.8).float().mean() > 0.25
    corr = torch.corrcoef(a.T)
    corr.fill_diagonal_(0)
    assert corr.abs().max() < 0.1


def test_rendered_attributes_are_the_drawn_ones(faces):
    assert torch.equal(faces.attributes, _draw_attributes(0, torch.arange(64)))


def test_glasses_masks_follow_attribute_and_sunglasses_are_dark(faces):
    glasses = faces.attributes[:, ATTR["glasses"]]
    present = _area(faces, "glasses") > 0
    assert set(glasses.tolist()) == {0.0, 1.0, 2.0}
    assert present[glasses > 0].all() and not present[glasses == 0].any()
    luminance = faces.images.float().mean(-1)
    for i in torch.nonzero(glasses == 2).flatten().tolist():
        assert luminance[i][faces.masks[i] == PART["glasses"]].median() < 80


def test_beard_masks_follow_attribute(faces):
    beard = faces.attributes[:, ATTR["beard"]]
    area = _area(faces, "beard")
    assert set(beard.tolist()) == {0.0, 1.0}
    assert (area[beard == 1] > 0.01).all() and (area[beard == 0] == 0).all()


def test_mouth_grows_with_smile_and_hair_with_length(faces):
    assert _corr(_area(faces, "mouth"), faces.attributes[:, ATTR["smile"]]) > 0.5
    assert _corr(_area(faces, "hair"), faces.attributes[:, ATTR["hair_length"]]) > 0.5


def test_skin_darkens_with_skin_tone(faces):
    skin = (faces.masks == PART["skin"]).float()
    brightness = (faces.images.float().mean(-1) * skin).sum((1, 2)) / skin.sum((1, 2))
    assert _corr(brightness, faces.attributes[:, ATTR["skin_tone"]]) < -0.8


def test_yaw_shifts_eyes_right_of_skin(faces):
    """yaw = +1 turns the face to the image's right: the eyes sit right of the skin's centroid."""
    x = torch.arange(64, dtype=torch.float32).reshape(1, 1, -1)
    eyes, skin = ((faces.masks == PART[p]).float() for p in ("eyes", "skin"))
    visible = eyes.sum((1, 2)) > 0
    assert visible[faces.attributes[:, ATTR["glasses"]] != 2].all()  # only sunglasses hide the eyes
    offset = (eyes * x).sum((1, 2)) / eyes.sum((1, 2)).clamp_min(1) - (skin * x).sum((1, 2)) / skin.sum((1, 2))
    assert _corr(offset[visible], faces.attributes[visible, ATTR["yaw"]]) > 0.7
