"""The prepared cache, load_imageset dispatch and caching, synthetic sources through stubs."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan_viz.data import loading
from dcgan_viz.data.loading import cache_key, describe_sources, load_imageset, open_stream
from dcgan_viz.data.prepare import filter_prepared, held_out_dir, open_prepared, prepare
from dcgan_viz.data.sources import DataError, is_test_key
from dcgan_viz.data.spec import SOURCES, DataSpec

MAX_OBJECTS = 4


def _batch_images(indices: torch.Tensor, size: int) -> torch.Tensor:
    """Image i is filled with i % 256, so tests can see which indices were rendered."""
    return (indices % 256).to(torch.uint8).reshape(-1, 1, 1, 1).expand(-1, size, size, 3).contiguous()


def _render_rooms(seed, indices, size=64, device=None):
    boxes = torch.full((len(indices), MAX_OBJECTS, 5), -1.0)
    boxes[:, 0] = torch.tensor([1.0, 0.0, 0.0, size / 2, size / 2])
    masks = torch.ones((len(indices), size, size), dtype=torch.uint8)
    return types.SimpleNamespace(images=_batch_images(indices, size), masks=masks, boxes=boxes, indices=indices)


def _render_faces(seed, indices, size=64, device=None):
    attributes = (indices % 2).to(torch.float32).reshape(-1, 1).repeat(1, 3)
    masks = torch.zeros((len(indices), size, size), dtype=torch.uint8)
    images = _batch_images(indices, size)
    return types.SimpleNamespace(images=images, attributes=attributes, masks=masks, indices=indices)


@pytest.fixture
def renderers(monkeypatch):
    """Stub synthetic renderers with the agreed API; counts render calls."""
    calls = []
    rooms = types.SimpleNamespace(ROOM_CLASSES=("floor", "bed"),
                                  render_rooms=lambda *a, **k: calls.append("rooms") or _render_rooms(*a, **k))
    faces = types.SimpleNamespace(FACE_ATTRIBUTES=("smiling", "glasses", "beard"), FACE_PARTS=("skin", "eyes"),
                                  render_faces=lambda *a, **k: calls.append("faces") or _render_faces(*a, **k))
    monkeypatch.setitem(sys.modules, "dcgan_viz.data.rooms", rooms)
    monkeypatch.setitem(sys.modules, "dcgan_viz.data.faces", faces)
    monkeypatch.setattr(loading, "CHUNK_SIZE", 4)
    return calls


def _random(count: int = 10, **kw) -> DataSpec:
    return DataSpec(source="random", count=count, size=kw.pop("size", 8), **kw)


def test_prepare_writes_memmap_and_manifest(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(loading, "CHUNK_SIZE", 3)  # several chunks
    spec = _random(10, channels=1)
    prepared = prepare(spec, tmp_path / "set", progress=False)
    assert isinstance(prepared.images, np.memmap) and prepared.images.shape == (10, 8, 8, 1)
    in_memory = load_imageset(spec)
    assert np.array_equal(prepared.images, in_memory.images)
    assert prepared.spec.content_hash == in_memory.spec.content_hash
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["shape"] == [10, 8, 8, 1] and manifest["count"] == 10 and manifest["channels"] == 1
    assert manifest["source"] == "random" and manifest["spec"]["count"] == 10 and manifest["format_version"] == 1
    assert manifest["skipped_count"] == 0 and manifest["content_hash"] == prepared.spec.content_hash
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temp directories left


def test_prepare_reuses_unchanged(tmp_path: Path):
    spec = _random(6)
    prepare(spec, tmp_path / "set", progress=False)
    images = tmp_path / "set" / "images.u8"
    before = images.stat()
    again = prepare(spec, tmp_path / "set", progress=False)
    after = images.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert len(again) == 6
    rebuilt = prepare(_random(7), tmp_path / "set", progress=False)  # another spec: rewritten
    assert len(rebuilt) == 7 and images.stat().st_ino != before.st_ino


def test_prepare_notices_changed_folder(tmp_path: Path):
    root = tmp_path / "photos"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    for i in range(3):
        Image.new("RGB", (10, 10), (i * 50, 0, 0)).save(root / "train" / f"{i}.png")
    spec = DataSpec.parse(f"folder:{root},size=8")
    first = prepare(spec, tmp_path / "cache", progress=False)
    Image.new("RGB", (10, 10), (0, 0, 255)).save(root / "train" / "3.png")
    second = prepare(spec, tmp_path / "cache", progress=False)
    assert len(first) == 3 and len(second) == 4
    assert first.spec.content_hash != second.spec.content_hash


def test_open_prepared_errors(tmp_path: Path):
    with pytest.raises(DataError, match="no manifest.json"):
        open_prepared(tmp_path / "missing")
    prepare(_random(5), tmp_path / "set", progress=False)
    images = tmp_path / "set" / "images.u8"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated") as info:
        open_prepared(tmp_path / "set")
    assert "images.u8" in str(info.value)
    assert len(prepare(_random(5), tmp_path / "set", progress=False)) == 5  # a broken cache is rebuilt


def test_failed_prepare_leaves_nothing(tmp_path: Path):
    root = tmp_path / "photos" / "train"
    root.mkdir(parents=True)
    (tmp_path / "photos" / "test").mkdir()
    (root / "bad.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="no readable images"):
        prepare(DataSpec.parse(f"folder:{root.parent}"), tmp_path / "cache" / "set", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_filter_prepared(tmp_path: Path, renderers):
    source = prepare(DataSpec(source="rooms", count=6, size=8), tmp_path / "rooms", progress=False)
    kept = filter_prepared(tmp_path / "rooms", [4, 1, 2], tmp_path / "dedup")
    assert np.array_equal(kept.images, source.images[[4, 1, 2]])
    assert np.array_equal(kept.masks, source.masks[[4, 1, 2]]) and np.array_equal(kept.boxes, source.boxes[[4, 1, 2]])
    assert kept.mask_names == ("floor", "bed")
    assert np.load(tmp_path / "dedup" / "source_indices.npy").tolist() == [4, 1, 2]
    manifest = json.loads((tmp_path / "dedup" / "manifest.json").read_text())
    assert manifest["filtered_from"]["content_hash"] == source.spec.content_hash
    reloaded = load_imageset(DataSpec.parse(f"prepared:{tmp_path / 'dedup'}"))
    assert reloaded.spec.size == 8 and reloaded.spec.content_hash == kept.spec.content_hash
    with pytest.raises(DataError, match="indices must be in"):
        filter_prepared(tmp_path / "rooms", [6], tmp_path / "bad")


def test_rooms_and_faces_splits(renderers):
    rooms = load_imageset(DataSpec(source="rooms", count=6, test_count=3, size=8))
    assert rooms.images[:, 0, 0, 0].tolist() == list(range(6))
    assert rooms.boxes.shape == (6, MAX_OBJECTS, 5) and rooms.boxes.dtype == np.float32
    assert rooms.masks.shape == (6, 8, 8) and rooms.mask_names == ("floor", "bed")
    test = load_imageset(DataSpec(source="rooms", count=6, test_count=3, size=8, split="test"))
    assert test.images[:, 0, 0, 0].tolist() == [6, 7, 8]
    faces = load_imageset(DataSpec(source="faces", count=5, size=8, channels=1))
    assert faces.images.shape == (5, 8, 8, 1)
    assert faces.attributes.shape == (5, 3) and faces.attribute_names == ("smiling", "glasses", "beard")
    assert faces.mask_names == ("skin", "eyes")
    assert loading.synthetic_range(DataSpec(source="faces", split="test")) == (100_000, 110_000)


def test_load_imageset_cache(tmp_path: Path, renderers):
    spec = DataSpec(source="faces", count=5, size=8)
    first = load_imageset(spec, cache_dir=tmp_path)
    calls = len(renderers)
    second = load_imageset(spec, cache_dir=tmp_path)
    assert len(renderers) == calls  # reused, not re-rendered
    assert isinstance(second.masks, np.memmap) and np.array_equal(second.attributes, first.attributes)
    assert (tmp_path / cache_key(spec) / "manifest.json").is_file()
    assert cache_key(spec) == cache_key(DataSpec(source="faces", count=5, size=8, content_hash="x" * 64))
    assert cache_key(spec) != cache_key(DataSpec(source="faces", count=5, size=8, seed=1))


def test_prepared_source_count_and_hash_check(tmp_path: Path):
    prepare(_random(9), tmp_path / "set", progress=False)
    head = load_imageset(DataSpec.parse(f"prepared:{tmp_path / 'set'},count=4"))
    assert head.images.shape == (4, 8, 8, 3) and isinstance(head.images, np.memmap)
    with pytest.raises(DataError, match="needs a path"):
        load_imageset(DataSpec.parse("prepared"))
    with pytest.raises(DataError, match="changed since the spec was recorded"):
        load_imageset(DataSpec(source="random", count=9, size=8, content_hash="0" * 64))
    recorded = load_imageset(_random(9))
    assert load_imageset(recorded.spec).spec.content_hash == recorded.spec.content_hash


def test_random_source_is_deterministic():
    a, b = load_imageset(_random(4, seed=3)), load_imageset(_random(4, seed=3))
    assert np.array_equal(a.images, b.images) and a.images.dtype == np.uint8
    test = load_imageset(_random(4, seed=3, split="test", test_count=2))
    assert len(test) == 2 and not np.array_equal(test.images, a.images[:2])


def test_describe_sources_covers_every_source():
    help_lines = describe_sources()
    assert set(help_lines) == set(SOURCES)
    for source, line in help_lines.items():
        assert "\n" not in line and "e.g. " in line
        DataSpec.parse(line.split("e.g. ")[1])  # every example parses
    with pytest.raises(DataError, match="already prepared"):
        open_stream(DataSpec(source="prepared", path="x"))


@pytest.mark.parametrize("source", ["rooms", "faces"])
def test_real_renderers_if_present(source):
    module = pytest.importorskip(f"dcgan_viz.data.{source}")
    if not hasattr(module, f"render_{source}"):
        pytest.skip(f"{source} renderer not written yet")
    imageset = load_imageset(DataSpec(source=source, count=2, size=64))
    assert imageset.images.shape == (2, 64, 64, 3) and imageset.images.dtype == np.uint8
    assert imageset.masks.shape == (2, 64, 64)


def test_prepare_stores_the_held_out_split(tmp_path: Path):
    """A training prepare also stores the source's held-out split in test/ (synthetic sources without
    test_count: the tenth of the count that follows the training images); a test-split prepare does not."""
    train = prepare(_random(30), tmp_path / "set", progress=False)
    test_dir = held_out_dir(tmp_path / "set")
    assert test_dir == tmp_path / "set" / "test"
    held = open_prepared(test_dir)
    expected = load_imageset(_random(30, test_count=3, split="test"))
    assert held.spec.split == "test" and np.array_equal(held.images, expected.images)
    assert not np.array_equal(held.images, train.images[:3])
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["held_out"] == {"dir": "test", "count": 3, "content_hash": held.spec.content_hash}
    prepare(_random(30, test_count=5, split="test"), tmp_path / "only-test", progress=False)  # control: no held-out
    with pytest.raises(DataError, match="itself a held-out split"):
        held_out_dir(tmp_path / "only-test")
    assert not (tmp_path / "only-test" / "test").exists()


def test_older_cache_without_held_out_is_named_and_prepared_again(tmp_path: Path):
    spec = _random(20)
    prepare(spec, tmp_path / "set", progress=False)
    manifest_path = tmp_path / "set" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["held_out"]  # what a prepare before held-out splits wrote
    manifest_path.write_text(json.dumps(manifest))
    shutil.rmtree(tmp_path / "set" / "test")
    with pytest.raises(DataError) as info:
        held_out_dir(tmp_path / "set")
    message = str(info.value)
    assert "\n" not in message and "without its held-out split" in message
    assert f"dcgan-viz prepare random --out {tmp_path / 'set'}" in message
    prepare(spec, tmp_path / "set", progress=False)  # not reused as is: rebuilt with its held-out split
    assert len(open_prepared(held_out_dir(tmp_path / "set"))) == 2


def test_held_out_of_a_folder_is_its_hashed_tenth_and_changes_are_noticed(tmp_path: Path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(40):
        Image.new("RGB", (10, 10), (i * 6, 0, 0)).save(root / f"{i:02d}.png")
    spec = DataSpec.parse(f"folder:{root},size=8")
    train = prepare(spec, tmp_path / "cache", progress=False)
    held = open_prepared(held_out_dir(tmp_path / "cache"))
    assert len(train) + len(held) == 40 and len(held) >= 1
    assert np.array_equal(held.images, load_imageset(spec.with_split("test")).images)
    # a new held-out image changes only the held-out split: the cache is prepared again
    names = [f"new{i}.png" for i in range(200) if is_test_key(f"new{i}.png")][:1]
    Image.new("RGB", (10, 10), (0, 0, 255)).save(root / names[0])
    again = prepare(spec, tmp_path / "cache", progress=False)
    assert len(again) == len(train) and len(open_prepared(held_out_dir(tmp_path / "cache"))) == len(held) + 1


def test_filter_prepared_keeps_the_held_out_split(tmp_path: Path):
    prepare(_random(20), tmp_path / "set", progress=False)
    filter_prepared(tmp_path / "set", [3, 1], tmp_path / "dedup")
    copied = open_prepared(held_out_dir(tmp_path / "dedup"))
    assert np.array_equal(copied.images, open_prepared(held_out_dir(tmp_path / "set")).images)
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())  # control: a source without one
    manifest["held_out"] = {"count": 0, "why": "not prepared"}
    (tmp_path / "set" / "manifest.json").write_text(json.dumps(manifest))
    filter_prepared(tmp_path / "set", [3, 1], tmp_path / "dedup2")
    with pytest.raises(DataError, match="has no held-out split"):
        held_out_dir(tmp_path / "dedup2")
