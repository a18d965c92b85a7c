"""Guided backpropagation (Springenberg et al. 2014) for any unit of a named conv layer, via Captum.

Captum's guided rule only overrides ``nn.ReLU``; DCGAN's discriminator uses ``LeakyReLU(0.2)``.
``guided_leaky_relu(model)`` applies the guided rule to every LeakyReLU for the duration of a
``with`` block: the gradient passed back through the activation is ``relu(grad_out) * (x > 0)``
(only positive gradients, only where the forward input was positive). The hooks are removed in
``finally``, so the model is untouched afterwards, whether the block succeeds or raises.

A "layer" is a named child block of the net (``conv1`` .. ``convN``) with a ``conv`` child; a
"unit" is one output channel of that block (its post-activation feature map).

``guided_backprop_at`` computes many maps in one forward and one backward pass (each image its own
unit and location), which is what Fig. 5 needs; hooks on a shared net are held under a per-net
lock, so two threads (dashboard requests) never see each other's hooks.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, Union

import torch
from torch import nn

Objective = Union[str, tuple[int, int]]
OBJECTIVES = ("max", "mean")


def layer_channels(net: nn.Module) -> dict[str, int]:
    """Units per named block of ``net`` (children that have a ``conv``), in forward order; a net
    with the instrumentation interface (``dcgan_viz.instrument``) reports its own layers."""
    if callable(getattr(net, "layer_channels", None)):
        return net.layer_channels()
    return {name: block.conv.out_channels for name, block in net.named_children() if hasattr(block, "conv")}


def check_units(net: nn.Module, layer: str, units: list[int] | range) -> None:
    """ValueError (one line, naming the valid choices) for an unknown layer or unit index."""
    channels = layer_channels(net)
    if layer not in channels:
        raise ValueError(f"unknown layer {layer!r}; layers are {', '.join(channels)}")
    bad = [u for u in units if not 0 <= u < channels[layer]]
    if bad:
        raise ValueError(f"filter index {bad[0]} out of range for {layer}: valid filters are 0..{channels[layer] - 1}")


@contextmanager
def guided_leaky_relu(model: nn.Module) -> Iterator[None]:
    """Within the block, every ``nn.LeakyReLU`` in ``model`` back-propagates with the guided rule.

    A forward hook records where each activation's input was positive; a full backward hook
    replaces the input gradient with ``relu(grad_out) * (x > 0)``. All hooks are removed on exit.
    Each LeakyReLU module must run once per forward (true of DCGAN's blocks).
    """
    positive: dict[int, torch.Tensor] = {}
    handles = []

    def remember(module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        positive[id(module)] = inputs[0].detach() > 0

    def guide(module: nn.Module, _grad_in: tuple, grad_out: tuple) -> tuple[torch.Tensor]:
        return (grad_out[0].clamp(min=0) * positive[id(module)],)

    try:
        for module in model.modules():
            if isinstance(module, nn.LeakyReLU):
                handles.append(module.register_forward_hook(remember))
                handles.append(module.register_full_backward_hook(guide))
        yield
    finally:
        for handle in handles:
            handle.remove()
        positive.clear()


_NET_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.Lock]" = weakref.WeakKeyDictionary()
_NET_LOCKS_GUARD = threading.Lock()


def net_lock(net: nn.Module) -> threading.Lock:
    """The lock that serialises hooked passes (guided backprop) through ``net``."""
    with _NET_LOCKS_GUARD:
        lock = _NET_LOCKS.get(net)
        if lock is None:
            lock = _NET_LOCKS[net] = threading.Lock()
        return lock


def _selector(unit: int, objective: Objective) -> Callable[[torch.Tensor], torch.Tensor] | tuple[int, int, int]:
    """Captum neuron selector: layer output (B, C, H, W) -> (B,) objective of channel ``unit``."""
    if isinstance(objective, tuple):
        y, x = objective
        return (unit, int(y), int(x))
    if objective == "max":
        return lambda out: out[:, unit].amax(dim=(1, 2))
    if objective == "mean":
        return lambda out: out[:, unit].mean(dim=(1, 2))
    raise ValueError(f"objective must be one of {OBJECTIVES} or a (y, x) location, got {objective!r}")


def _check_location(net: nn.Module, layer: str, images: torch.Tensor, objective: Objective) -> None:
    if not isinstance(objective, tuple):
        return
    with torch.no_grad():
        h, w = _layer_output(net, layer, images[:1]).shape[2:]
    y, x = objective
    if not (0 <= y < h and 0 <= x < w):
        raise ValueError(f"location {objective} is outside {layer}'s {h}x{w} feature map")


def _layer_output(net: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """Run the blocks of ``net`` up to and including ``layer``: (B, C, H, W)."""
    if callable(getattr(net, "features", None)):
        if layer not in net.layer_names:
            raise ValueError(f"unknown layer {layer!r}")
        return net.features(x, [layer])[layer]
    for name, block in net.named_children():
        x = block(x)
        if name == layer:
            return x
    raise ValueError(f"unknown layer {layer!r}")


def guided_backprop(net: nn.Module, layer: str, unit: int, images: torch.Tensor,
                    objective: Objective = "max", guided: bool = True) -> torch.Tensor:
    """Input attribution (B, C, H, W) of unit ``unit`` of block ``layer`` for images (B, C, H, W).

    ``objective``: "max" or "mean" of the unit's map over positions, or a (y, x) location.
    ``guided`` False gives the plain gradient (the control). ``net`` should be in eval mode
    (batchnorm running statistics) so each image's map is independent of its batch.
    """
    check_units(net, layer, [unit])
    _check_location(net, layer, images, objective)
    block = getattr(net, layer)
    inputs = images.detach().clone().requires_grad_(True)
    selector = _selector(unit, objective)
    return _attribute(net, block, inputs, selector, guided)


def _attribute(net: nn.Module, block: nn.Module, inputs: torch.Tensor, selector, guided: bool) -> torch.Tensor:
    """Captum's neuron guided backprop (LeakyReLUs guided too) or plain gradient, under the net's lock."""
    from captum.attr import NeuronGradient, NeuronGuidedBackprop

    with net_lock(net):
        if not guided:
            return NeuronGradient(net, block).attribute(inputs, selector).detach()
        with warnings.catch_warnings(), guided_leaky_relu(net):
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            return NeuronGuidedBackprop(net, block).attribute(inputs, selector).detach()


def guided_backprop_at(net: nn.Module, layer: str, units: Sequence[int], locations: Sequence[tuple[int, int]],
                       images: torch.Tensor, guided: bool = True) -> torch.Tensor:
    """Input attributions (B, C, H, W) for B images at once: image ``b``'s map is that of unit
    ``units[b]`` of ``layer`` at location ``locations[b]`` = (y, x) on the layer's map.

    Equal to ``guided_backprop(net, layer, units[b], images[b:b+1], locations[b])`` per image (an
    eval-mode net treats the images of a batch independently), in one forward and one backward pass.
    """
    check_units(net, layer, list(units))
    if not (len(units) == len(locations) == len(images)):
        raise ValueError(f"need one unit and one location per image, got {len(units)} units, "
                         f"{len(locations)} locations, {len(images)} images")
    if len(images) == 0:
        return torch.zeros_like(images)
    device = images.device
    index = torch.arange(len(images), device=device)
    unit_t = torch.as_tensor(list(units), dtype=torch.long, device=device)
    ys = torch.as_tensor([int(y) for y, _ in locations], dtype=torch.long, device=device)
    xs = torch.as_tensor([int(x) for _, x in locations], dtype=torch.long, device=device)

    def selector(out: torch.Tensor) -> torch.Tensor:
        h, w = out.shape[2:]
        if bool(((ys < 0) | (ys >= h) | (xs < 0) | (xs >= w)).any()):
            bad = next((int(y), int(x)) for y, x in zip(ys, xs) if not (0 <= y < h and 0 <= x < w))
            raise ValueError(f"location {bad} is outside {layer}'s {h}x{w} feature map")
        return out[index, unit_t, ys, xs]

    block = getattr(net, layer)
    inputs = images.detach().clone().requires_grad_(True)
    return _attribute(net, block, inputs, selector, guided)
