"""The paper's architecture guidelines, asserted on the module tree."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcgan_viz.models import Discriminator, Generator, ModelConfig, build_models

CONFIGS = [ModelConfig(image_size=s, nc=c, ngf=8, ndf=8, nz=16) for s in (32, 64, 128) for c in (1, 3)]


def _blocks(net):
    return [getattr(net, n) for n in net.layer_names]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.image_size}px-{c.nc}ch")
def test_shapes_and_named_layers(cfg: ModelConfig) -> None:
    G, D = build_models(cfg)
    n = {32: 4, 64: 5, 128: 6}[cfg.image_size]
    assert G.layer_names == D.layer_names == tuple(f"conv{i}" for i in range(1, n + 1))
    z = torch.rand(3, cfg.nz) * 2 - 1
    x = G(z)
    assert x.shape == (3, cfg.nc, cfg.image_size, cfg.image_size)
    assert D(x).shape == (3,)
    feats = G.features(z)
    assert list(feats) == list(G.layer_names)
    assert feats["conv1"].shape[-2:] == (4, 4)  # z projected and reshaped to 4x4
    assert torch.equal(feats[G.layer_names[-1]], x)
    dfeats = D.features(x, layers=["conv2"])
    assert list(dfeats) == ["conv2"] and dfeats["conv2"].shape[1] == cfg.ndf * 2
    assert G.z_size == cfg.nz
    assert G.layer_channels()["conv1"] == cfg.ngf * 2 ** (n - 2)
    G.eval()
    assert torch.equal(G.forward_from("conv2", G.features(z, ["conv2"])["conv2"]), G(z))
    assert torch.equal(G.forward_from(G.layer_names[-1], x), x)
    with pytest.raises(KeyError, match="unknown layer"):
        G.forward_from("conv9", x)


def test_strided_convs_no_pooling_no_fc() -> None:
    G, D = build_models(ModelConfig(ngf=8, ndf=8))
    for net in (G, D):
        for m in net.modules():
            assert not isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear))
    # G upsamples only with fractionally-strided convolutions, D downsamples with strided ones
    g_convs = [b.conv for b in _blocks(G)]
    assert all(isinstance(c, nn.ConvTranspose2d) for c in g_convs)
    assert all(c.stride == (2, 2) for c in g_convs[1:])
    d_convs = [b.conv for b in _blocks(D)]
    assert all(type(c) is nn.Conv2d for c in d_convs)
    assert all(c.stride == (2, 2) for c in d_convs[:-1])
    assert not any(isinstance(m, nn.Upsample) for m in G.modules())


def test_batchnorm_placement() -> None:
    G, D = build_models(ModelConfig(ngf=8, ndf=8))
    g_blocks, d_blocks = _blocks(G), _blocks(D)
    assert all(hasattr(b, "bn") for b in g_blocks[:-1]) and not hasattr(g_blocks[-1], "bn")  # not on G's output
    assert not hasattr(d_blocks[0], "bn")  # not on D's input layer
    assert all(hasattr(b, "bn") for b in d_blocks[1:-1])


def test_activations() -> None:
    G, D = build_models(ModelConfig(ngf=8, ndf=8))
    g_blocks, d_blocks = _blocks(G), _blocks(D)
    assert all(type(b.act) is nn.ReLU for b in g_blocks[:-1])
    assert type(g_blocks[-1].act) is nn.Tanh
    assert all(type(b.act) is nn.LeakyReLU and b.act.negative_slope == 0.2 for b in d_blocks[:-1])
    assert not hasattr(d_blocks[-1], "act")  # D returns logits
    for m in (*G.modules(), *D.modules()):
        assert not getattr(m, "inplace", False), f"in-place activation {m} breaks hooks"


def test_weight_init_normal_002() -> None:
    torch.manual_seed(0)
    G, D = build_models(ModelConfig())
    for net in (G, D):
        w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
        assert abs(w.mean().item()) < 1e-3
        assert w.std().item() == pytest.approx(0.02, rel=0.02)
        bn = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
        assert bn.mean().item() == pytest.approx(1.0, abs=0.01)


def test_output_range_and_logits() -> None:
    G, D = build_models(ModelConfig(image_size=32, ngf=8, ndf=8))
    x = G(torch.rand(16, 100) * 2 - 1)
    assert x.min() >= -1 and x.max() <= 1
    D.eval()
    logits = D(torch.full((2, 3, 32, 32), 5.0))  # logits are unbounded (no sigmoid inside D)
    assert logits.dtype == torch.float32 and logits.shape == (2,)


@pytest.mark.parametrize("bad", [dict(image_size=48), dict(nc=2), dict(z_dist="cauchy"), dict(ngf=0)])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        ModelConfig(**bad)


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = ModelConfig(image_size=32, nc=1)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict(cfg.to_dict() | {"depth": 3})


def test_bad_inputs_raise_clear_errors() -> None:
    G, D = build_models(ModelConfig(image_size=32, ngf=8, ndf=8))
    with pytest.raises(ValueError, match="z must have shape"):
        G(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="images must have shape"):
        D(torch.zeros(2, 3, 64, 64))
    with pytest.raises(KeyError, match="unknown layer"):
        G.features(torch.zeros(2, 100), layers=["conv9"])
