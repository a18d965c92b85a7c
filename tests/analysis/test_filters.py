"""Receptive fields, top activations / crops, Fig. 5 responses and G feature maps on tiny nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcgan_viz.analysis.filters import (
    crop,
    fig5_responses,
    filter_responses,
    layer_maxima,
    generator_feature_maps,
    random_discriminator,
    receptive_fields,
    top_activations,
)
from dcgan_viz.models import Generator, ModelConfig

torch.set_num_threads(1)


def test_receptive_fields_paper_d() -> None:
    rf = receptive_fields(random_discriminator(ModelConfig(image_size=64, ndf=8)))
    assert [(f.size, f.stride) for f in rf.values()] == [(4, 2), (10, 4), (22, 8), (46, 16), (94, 16)]
    assert rf["conv1"].box(0, 0) == (-1, -1, 3, 3)  # k4 s2 p1: unit 0 sees pixels -1..2
    assert rf["conv2"].box(1, 2) == (1, 5, 11, 15)


@pytest.mark.parametrize("layer,y,x", [("conv1", 3, 5), ("conv2", 0, 3), ("conv3", 2, 1)])
def test_receptive_field_matches_gradient_support(tiny_cfg: ModelConfig, layer: str, y: int, x: int) -> None:
    D = random_discriminator(tiny_cfg, seed=1)
    img = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    D.features(img, [layer])[layer][0, 0, y, x].backward()
    support = img.grad[0].abs().sum(0) > 0
    y0, x0, y1, x1 = receptive_fields(D)[layer].box(y, x)
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[max(y0, 0) : y1, max(x0, 0) : x1] = True
    assert torch.equal(support, expected)


def test_crop_pads_outside() -> None:
    images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
    out = crop(images, np.array([[-1, -1, 2, 2], [2, 2, 5, 5]]), fill=255)
    assert out.shape == (2, 3, 3, 1)
    assert out[0, 0, 0, 0] == 255 and out[0, 1, 1, 0] == images[0, 0, 0, 0]
    assert out[1, 0, 0, 0] == images[1, 2, 2, 0] and out[1, 2, 2, 0] == 255


def test_random_discriminator_seeded_and_isolated(tiny_cfg: ModelConfig) -> None:
    state = torch.random.get_rng_state()
    a, b = random_discriminator(tiny_cfg, 3), random_discriminator(tiny_cfg, 3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(a.conv1.conv.weight, b.conv1.conv.weight)
    assert not torch.equal(a.conv1.conv.weight, random_discriminator(tiny_cfg, 4).conv1.conv.weight)


def test_top_activations_and_responses(tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    D = random_discriminator(tiny_cfg)
    images = tiny_images[:20].numpy()
    top = top_activations(D, images, "conv3", [0, 2], k=3, batch_size=8)
    maps = D.features(torch.as_tensor(images).permute(0, 3, 1, 2).float() / 127.5 - 1, ["conv3"])["conv3"]
    best = maps[:, 2].flatten(1).max(1).values.topk(3)
    assert top.image_index[1].tolist() == best.indices.tolist()
    np.testing.assert_allclose(top.value[1], best.values.numpy(), rtol=1e-5)
    i = top.image_index[1, 0]
    assert maps[i, 2, top.y[1, 0], top.x[1, 0]] == maps[i, 2].max()

    res = filter_responses(D, images, "conv3", [0, 2], k=3, label="random")
    assert res.images.shape == (2, 3, 32, 32, 3) and res.guided.shape == (2, 3, 32, 32, 3)
    assert res.crops.shape == (2, 3, 22, 22, 3) and res.field.size == 22
    assert np.array_equal(res.images[1, 0], images[i])
    with pytest.raises(ValueError, match="valid filters are 0..31"):
        top_activations(D, images, "conv3", [32])


def test_generator_feature_maps(tiny_cfg: ModelConfig) -> None:
    G = Generator(tiny_cfg).eval()
    maps = generator_feature_maps(G, torch.zeros(tiny_cfg.nz))
    assert {k: v.shape for k, v in maps.items()} == {
        "conv1": (32, 32, 32), "conv2": (16, 32, 32), "conv3": (8, 32, 32), "conv4": (3, 32, 32)}
    assert np.all(maps["conv1"][:, :8, :8] == maps["conv1"][:, :1, :1])  # nearest: 4x4 -> 32x32 blocks
    first = generator_feature_maps(G, torch.zeros(tiny_cfg.nz), channels=4)
    assert {k: v.shape[0] for k, v in first.items()} == {"conv1": 4, "conv2": 4, "conv3": 4, "conv4": 3}
    assert all(np.array_equal(first[k], maps[k][:4]) for k in maps)


def test_layer_maxima_give_the_same_top_activations(tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    """Top activations chosen from a whole layer's maxima == those of the units alone; responses built
    from given maxima == responses that compute them."""
    D = random_discriminator(tiny_cfg, 2)
    images = tiny_images[:24].numpy()
    maxima = layer_maxima(D, images, "conv2", batch_size=10)
    assert maxima.value.shape == maxima.where.shape == (16, 24) and (maxima.height, maxima.width) == (8, 8)
    for units in ([0, 5], [15, 3, 7]):
        a, b = maxima.top(units, 4), top_activations(D, images, "conv2", units, k=4)
        assert a.image_index.tolist() == b.image_index.tolist() and a.y.tolist() == b.y.tolist()
        assert a.x.tolist() == b.x.tolist()
        np.testing.assert_array_equal(a.value, b.value)
    given = filter_responses(D, images, "conv2", [5, 1], k=3, maxima=maxima)
    computed = filter_responses(D, images, "conv2", [5, 1], k=3)
    np.testing.assert_array_equal(given.images, computed.images)
    np.testing.assert_allclose(given.guided, computed.guided, rtol=1e-5, atol=1e-7)


def test_fig5_responses_cache_the_layer_once(tiny_checkpoint, tmp_path, monkeypatch) -> None:
    """fig5_responses: trained and random D; the layer maxima are computed once per checkpoint and
    layer (then memory, then the disk cache after a restart), only the requested units per call; the
    result equals filter_responses on the same probe images."""
    import dcgan_viz.analysis.filters as filters
    from dcgan_viz.analysis.filters import clear_memory_caches, probe_set
    from dcgan_viz.checkpoint import load_checkpoint

    bundle = load_checkpoint(tiny_checkpoint, device="cpu")
    calls = []
    real = filters.layer_maxima
    monkeypatch.setattr(filters, "layer_maxima", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    cache = tmp_path / "cache"
    clear_memory_caches()
    (trained, random), n = fig5_responses(bundle, "conv2", [0, 3], 40, 4, 0, cache)
    assert n == 40 and (trained.label, random.label) == ("trained", "random") and len(calls) == 2
    fig5_responses(bundle, "conv2", [5], 40, 4, 0, cache)
    assert len(calls) == 2  # other units of the same layer: nothing recomputed
    clear_memory_caches()  # a restarted server: from the disk cache
    again, _ = fig5_responses(bundle, "conv2", [0, 3], 40, 4, 0, cache)
    assert len(calls) == 2 and len(list(cache.glob("filter-maxima-*.npz"))) == 2
    np.testing.assert_array_equal(again[0].guided, trained.guided)
    images = probe_set(bundle.data, 40).images
    expect = filter_responses(random_discriminator(bundle.config, 0), images, "conv2", [0, 3], 4, "random")
    np.testing.assert_array_equal(random.top.image_index, expect.top.image_index)
    np.testing.assert_allclose(random.guided, expect.guided, rtol=1e-5, atol=1e-7)
    before = len(calls)  # (filter_responses without maxima computed them once more)
    fig5_responses(bundle, "conv3", [0], 40, 4, 0, cache)
    assert len(calls) == before + 2  # another layer: computed once more per net
    clear_memory_caches()


def test_fig5_and_patch_grids(tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    from dcgan_viz.plots.filters import feature_map_grid, fig5_grid, guided_to_uint8, patch_grid

    images = tiny_images[:12].numpy()
    res = [filter_responses(random_discriminator(tiny_cfg, s), images, "conv2", [0, 1], k=3, label=str(s)) for s in (0, 1)]
    fig = fig5_grid(res)
    assert fig.dtype == np.uint8 and fig.shape == (4 * 34 + 2, 2 * (3 * 34 + 2) + 8, 3)
    assert patch_grid(res).shape == (2 * 12 + 2, 2 * (3 * 12 + 2) + 8, 3)
    g = guided_to_uint8(np.array([[[[-2.0], [1.0]]]]))
    assert g.ravel().tolist() == [0, 191]
    maps = generator_feature_maps(Generator(tiny_cfg).eval(), torch.zeros(tiny_cfg.nz))
    assert feature_map_grid(maps, n=4).shape == (4 * 34 + 2, 4 * 34 + 2, 1)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    from dcgan_viz.checkpoint import save_checkpoint
    from dcgan_viz.data.spec import DataSpec
    from dcgan_viz.models import build_models

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        G, D = build_models(ModelConfig(image_size=32, nz=16, ngf=8, ndf=8))
    return save_checkpoint(tmp_path / "tiny", G, D, data=DataSpec(source="rooms", size=32, count=64, test_count=16))


def test_filters_cli(tiny_checkpoint, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from dcgan_viz.cli import app

    out, cache = tmp_path / "out", tmp_path / "cache"
    base = ["filters", str(tiny_checkpoint), "--out", str(out), "--images", "64", "--top", "3", "--device", "cpu",
            "--cache-dir", str(cache)]
    result = CliRunner().invoke(app, [*base, "--layer", "conv3", "--filters", "0:4"])
    assert result.exit_code == 0, result.output
    for name in ("fig5_conv3.png", "patches_conv3.png", "generator_features.png", "detectors.md", "detectors.html"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "detectors.json").read_text())["rows"]
    assert [(r["net"], r["layer"]) for r in rows] == [(n, f"conv{i}") for n in ("trained", "random") for i in (1, 2, 3)]
    assert len(list(cache.glob("dissection-*.json"))) == 2
    assert json.loads((out / "detectors.json").read_text())["quantile"] == 0.01
    strict = CliRunner().invoke(app, [*base, "--quantile", "0.005", "--layer", "conv3"])
    assert strict.exit_code == 0 and json.loads((out / "detectors.json").read_text())["quantile"] == 0.005
    assert len(list(cache.glob("dissection-*.json"))) == 4  # the quantile is part of the cache key
    bad_quantile = CliRunner().invoke(app, [*base, "--quantile", "1.5"])
    assert bad_quantile.exit_code == 2 and "quantile must be in (0, 1)" in bad_quantile.output
    bad_layer = CliRunner().invoke(app, [*base, "--layer", "conv9"])
    assert bad_layer.exit_code == 2 and "layers are conv1, conv2, conv3, conv4" in bad_layer.output
    bad_unit = CliRunner().invoke(app, [*base, "--filters", "30:34"])
    assert bad_unit.exit_code == 2 and "valid filters are 0..31" in bad_unit.output
    bad_syntax = CliRunner().invoke(app, [*base, "--filters", "a-b"])
    assert bad_syntax.exit_code == 2 and "--filters must look like" in bad_syntax.output
