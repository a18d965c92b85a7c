"""Guided backprop through LeakyReLU: exact maps on a hand-set net, differs from the gradient,
leaves no hooks behind (after success and after an exception), model outputs unchanged."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from dcgan_viz.analysis.guided import check_units, guided_backprop, guided_leaky_relu
from dcgan_viz.models import Discriminator, ModelConfig

torch.set_num_threads(1)


def _block(conv: nn.Conv2d, act: bool) -> nn.Sequential:
    parts = [("conv", conv)] + ([("act", nn.LeakyReLU(0.2))] if act else [])
    return nn.Sequential(OrderedDict(parts))


@pytest.fixture
def hand_net() -> nn.Sequential:
    """x (B, 1, 1, W) -> conv1: channels (x, -x), LeakyReLU(0.2) -> conv2: 2 * a0 - 3 * a1 (1x1 convs)."""
    c1 = nn.Conv2d(1, 2, 1, bias=False)
    c2 = nn.Conv2d(2, 1, 1, bias=False)
    with torch.no_grad():
        c1.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        c2.weight.copy_(torch.tensor([2.0, -3.0]).view(1, 2, 1, 1))
    net = nn.Sequential(OrderedDict(conv1=_block(c1, True), conv2=_block(c2, False))).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


X = torch.tensor([1.0, -1.0, 0.5]).view(1, 1, 1, 3)


def test_exact_guided_map(hand_net: nn.Sequential) -> None:
    # guided: conv2's gradient (2, -3) -> only the positive 2 passes, and only where conv1's input x > 0
    got = guided_backprop(hand_net, "conv2", 0, X, "mean")
    torch.testing.assert_close(got, torch.tensor([2.0, 0.0, 2.0]).view(1, 1, 1, 3) / 3)
    # at one location: x = -1 there, so nothing passes
    assert guided_backprop(hand_net, "conv2", 0, X, (0, 1)).abs().sum() == 0
    torch.testing.assert_close(guided_backprop(hand_net, "conv2", 0, X, (0, 2)), torch.tensor([0.0, 0.0, 2.0]).view(1, 1, 1, 3))


def test_differs_from_plain_gradient(hand_net: nn.Sequential) -> None:
    plain = guided_backprop(hand_net, "conv2", 0, X, "mean", guided=False)
    # plain: 2 * leaky'(x) + 3 * leaky'(-x) = 2.6 (x > 0) or 3.4 (x < 0), over 3 positions
    torch.testing.assert_close(plain, torch.tensor([2.6, 3.4, 2.6]).view(1, 1, 1, 3) / 3)
    x = X.clone().requires_grad_(True)
    hand_net(x).mean().backward()
    torch.testing.assert_close(plain, x.grad)
    assert not torch.allclose(plain, guided_backprop(hand_net, "conv2", 0, X, "mean"))


def _hooks(net: nn.Module) -> int:
    names = ("_backward_hooks", "_backward_pre_hooks", "_forward_hooks", "_forward_pre_hooks")
    return sum(len(getattr(m, n)) for m in net.modules() for n in names)


def test_no_hooks_left_and_outputs_unchanged(tiny_cfg: ModelConfig) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        D = Discriminator(tiny_cfg).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    before = D(x)
    maps = guided_backprop(D, "conv2", 1, x, "max")
    assert maps.shape == x.shape and not x.requires_grad
    assert _hooks(D) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with guided_leaky_relu(D):
            assert _hooks(D) > 0
            raise RuntimeError("boom")
    assert _hooks(D) == 0
    with pytest.raises(ValueError, match="images must have shape"):
        guided_backprop(D, "conv2", 1, x[:, :2], "max")  # fails inside Captum, within the hooks
    assert _hooks(D) == 0
    torch.testing.assert_close(D(x), before)
    x2 = x.clone().requires_grad_(True)
    D(x2).sum().backward()  # plain backward works again: no stale guided rule
    assert x2.grad is not None


def test_clear_errors(hand_net: nn.Sequential) -> None:
    with pytest.raises(ValueError, match="layers are conv1, conv2"):
        check_units(hand_net, "conv9", [0])
    with pytest.raises(ValueError, match=r"valid filters are 0\.\.1"):
        check_units(hand_net, "conv1", [0, 2])
    with pytest.raises(ValueError, match="outside"):
        guided_backprop(hand_net, "conv2", 0, X, (0, 5))
    with pytest.raises(ValueError, match="objective"):
        guided_backprop(hand_net, "conv2", 0, X, "median")


def test_batched_maps_equal_one_at_a_time(tiny_cfg: ModelConfig) -> None:
    """guided_backprop_at (one pass, each image its own unit and location) == guided_backprop per image,
    guided and plain; no hooks are left behind; a location off the map is a clear error."""
    from dcgan_viz.analysis.guided import guided_backprop_at

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        D = Discriminator(tiny_cfg).eval()
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    units, locations = [0, 3, 3, 7, 1], [(0, 0), (1, 2), (3, 3), (2, 0), (1, 1)]
    for guided in (True, False):
        batched = guided_backprop_at(D, "conv2", units, locations, x, guided=guided)
        single = torch.cat([guided_backprop(D, "conv2", u, x[i : i + 1], loc, guided=guided)
                            for i, (u, loc) in enumerate(zip(units, locations))])
        torch.testing.assert_close(batched, single)
        assert batched.abs().sum() > 0
    assert _hooks(D) == 0
    with pytest.raises(ValueError, match="outside conv2's 8x8 feature map"):
        guided_backprop_at(D, "conv2", [0], [(8, 0)], x[:1])
    with pytest.raises(ValueError, match="one unit and one location per image"):
        guided_backprop_at(D, "conv2", [0, 1], [(0, 0)], x[:2])
    with pytest.raises(ValueError, match="valid filters are"):
        guided_backprop_at(D, "conv2", [99], [(0, 0)], x[:1])
    assert _hooks(D) == 0
