"""One instrumentation seam: any PyTorch net seen through the toolkit's layer interface.

Every analysis that reads or edits layers talks to a net through this interface (DESIGN 3b,
after gandissect's ``InstrumentedModel``)::

    net.layer_names              ("conv1", ..., last = the output: G's image, D's logit)
    net.layer_channels()         {layer: units}
    net.features(x, layers)      {layer: activations (B, C, h, w)}     read a layer
    net.forward_from(layer, h)   the output given that layer's output  run from a layer
    getattr(net, layer)          the module whose forward output *is* the layer, for hooks
    edit(net, layer, ...)        zero / scale / set units (inside a region) in a ``with`` block

The toolkit's own ``Generator`` / ``Discriminator`` implement it natively (``models.py``).
``HookedNet`` gives a user's ``nn.Module`` the same interface through forward hooks that live
in context managers and are removed in ``finally``; ``wrap_generator`` turns a user generator
(+ optional discriminator) into a ``Bundle`` every analysis accepts.

``forward_from`` on a HookedNet runs the whole net with the layer's output replaced, so it
assumes the layer is the only path from the input to the output (true of a chain of layers;
not of skip connections around the layer).
"""

from __future__ import annotations

import copy
import hashlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

OUTPUT = "output"
SamplerFn = Callable[[int, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class WrappedConfig:
    """What analyses read from ``bundle.config`` for a wrapped model (a ModelConfig look-alike).

    ``z_dist``: the prior latent-space operations assume (slerp norms, rescaling, inversion starts):
    "normal" or "uniform". ``sample_z``: optional ``(seed, indices LongTensor (N,)) -> z (N, nz)``;
    None draws from ``z_dist`` with the toolkit's counter-based seeded sampler, so latent
    (seed, index) is the same vector everywhere. It must be a pure function of its arguments.
    """

    image_size: int
    nz: int
    nc: int
    z_dist: str = "normal"
    ngf: int | None = None
    ndf: int | None = None
    sample_z: SamplerFn | None = field(default=None, compare=False, repr=False)
    random_discriminator: Callable[[int], nn.Module] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("sample_z")
        d.pop("random_discriminator")
        return d | {"wrapped": True}


class HookedNet(nn.Module):
    """A user's net with named layers, exposing ``features`` / ``forward_from`` / ``layer_channels``
    through forward hooks (removed in ``finally``).

    ``layers``: ``{name: submodule or dotted path}`` in forward order; each submodule's output must
    be a (B, C, h, w) tensor. The net's own output is the last layer, named ``"output"``.
    ``example_input``: ``batch_size -> input`` used to probe shapes and by ``forward_from``.
    ``pre`` / ``post``: input / output adapters (e.g. reshaping z, mapping [0, 1] images to [-1, 1]).
    """

    def __init__(self, net: nn.Module, layers: Mapping[str, nn.Module | str],
                 example_input: Callable[[int], torch.Tensor], *, pre: Callable | None = None,
                 post: Callable | None = None) -> None:
        super().__init__()
        self.net = net
        if not layers:
            raise ValueError("layers: give at least one {name: submodule} entry")
        modules: dict[str, nn.Module] = {}
        owned = {id(m): name for name, m in net.named_modules()}
        for name, mod in layers.items():
            if not isinstance(name, str) or not name or name == OUTPUT or name in dir(nn.Module):
                raise ValueError(f"bad layer name {name!r} (reserved or empty)")
            if isinstance(mod, str):
                try:
                    mod = net.get_submodule(mod)
                except AttributeError:
                    raise ValueError(f"layer {name!r}: the net has no submodule {mod!r}") from None
            if not isinstance(mod, nn.Module) or id(mod) not in owned:
                raise ValueError(f"layer {name!r} is not a submodule of the wrapped net")
            modules[name] = mod
        object.__setattr__(self, "_layer_modules", modules)  # not registered: no duplicate parameters
        self.layer_names = tuple(modules) + (OUTPUT,)
        self._example = example_input
        self._pre = pre or (lambda x: x)
        self._post = post or (lambda y: y)
        self._channels: dict[str, int] | None = None

    # -- the net ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._post(self.net(self._pre(x)))

    def __getattr__(self, name: str) -> Any:
        layers = self.__dict__.get("_layer_modules")
        if layers is not None and name in layers:
            return layers[name]
        if name == OUTPUT:
            return _Output(self)
        return super().__getattr__(name)

    def layer_module(self, layer: str) -> nn.Module:
        self._check(layer)
        return getattr(self, layer)

    def _check(self, layer: str) -> None:
        if layer not in self.layer_names:
            raise KeyError(f"unknown layer {layer!r}; layers are {list(self.layer_names)}")

    def _device(self) -> torch.device:
        for t in (*self.net.parameters(), *self.net.buffers()):
            return t.device
        return torch.device("cpu")

    def example_input(self, batch_size: int) -> torch.Tensor:
        return self._example(batch_size).to(self._device())

    # -- read a layer -----------------------------------------------------------------------
    def features(self, x: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Every layer's output (or only ``layers``), keyed by name, in forward order."""
        keep = list(self.layer_names) if layers is None else list(layers)
        for name in keep:
            self._check(name)
        grabbed: dict[str, torch.Tensor] = {}
        with capture(self, [n for n in keep if n != OUTPUT], grabbed):
            out = self(x)
        if OUTPUT in keep:
            grabbed[OUTPUT] = out
        return {name: grabbed[name] for name in self.layer_names if name in grabbed}

    def layer_channels(self) -> dict[str, int]:
        """Units (output channels) of each layer, from one probe forward pass (cached)."""
        if self._channels is None:
            was = self.training
            self.eval()
            try:
                with torch.no_grad():
                    feats = self.features(self.example_input(1))
            finally:
                self.train(was)
            bad = [n for n, f in feats.items() if n != OUTPUT and f.dim() != 4]
            if bad:
                raise ValueError(f"layer {bad[0]!r} outputs shape {tuple(feats[bad[0]].shape)}, not (B, C, h, w); "
                                 "name a convolutional submodule")
            out = feats[OUTPUT]
            self._channels = {n: int(f.shape[1]) for n, f in feats.items() if n != OUTPUT}
            self._channels[OUTPUT] = int(out.shape[1]) if out.dim() > 1 else 1
        return dict(self._channels)

    # -- run from a layer -------------------------------------------------------------------
    def forward_from(self, layer: str, h: torch.Tensor) -> torch.Tensor:
        """The output given ``layer``'s output h: the net runs with that layer's output replaced by h."""
        self._check(layer)
        if layer == OUTPUT:
            return h
        with replace_output(self.layer_module(layer), h):
            return self(self.example_input(h.shape[0]).to(h.device))

    @property
    def feature_layers(self) -> tuple[str, ...]:
        """Hidden layers (all but the output)."""
        return self.layer_names[:-1]

    def receptive_fields(self) -> dict:
        """Each hidden layer's receptive field, measured: the input-gradient support of a central
        unit (for a discriminator-like net whose input is an image)."""
        from .analysis.filters import ReceptiveField

        x = self.example_input(2).detach()
        out: dict[str, ReceptiveField] = {}
        size_in = x.shape[-1]
        for layer in self.feature_layers:
            xr = torch.randn_like(x).requires_grad_(True)
            with torch.enable_grad():
                f = self.features(xr, [layer])[layer]
                h = f.shape[-1]
                c = h // 2
                f[:, :, c, c].abs().sum().backward()
            g = xr.grad.abs().sum(dim=(0, 1))
            rows = torch.nonzero(g.sum(1) > 0).flatten()
            cols = torch.nonzero(g.sum(0) > 0).flatten()
            stride = max(1, size_in // h)
            if len(rows) == 0:
                out[layer] = ReceptiveField(size=stride, stride=stride, offset=stride / 2)
                continue
            size = int(max(rows[-1] - rows[0], cols[-1] - cols[0])) + 1
            centre = (float(rows[0] + rows[-1]) + 1) / 2
            out[layer] = ReceptiveField(size=size, stride=stride, offset=centre - c * stride)
        return out


class _Output(nn.Module):
    """Stand-in for the "output" layer's module: hooks on it see the wrapped net's final output."""

    def __init__(self, owner: HookedNet) -> None:
        super().__init__()
        object.__setattr__(self, "_owner", owner)

    def register_forward_hook(self, hook, *args, **kwargs):  # type: ignore[override]
        return self._owner.register_forward_hook(hook, *args, **kwargs)


@contextmanager
def capture(net: HookedNet, layers: Sequence[str], into: dict[str, torch.Tensor]) -> Iterator[dict]:
    """Within the block, forward passes store each layer's output in ``into`` (hooks removed on exit)."""
    handles = []
    try:
        for name in layers:
            def hook(module, inputs, output, name=name):
                into[name] = output
            handles.append(net.layer_module(name).register_forward_hook(hook))
        yield into
    finally:
        for h in handles:
            h.remove()


@contextmanager
def replace_output(module: nn.Module, value: torch.Tensor) -> Iterator[None]:
    """Within the block, ``module`` outputs ``value`` instead of what it computes."""
    handle = module.register_forward_hook(lambda m, i, o: value)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def edit(net: nn.Module, layer: str, units: Sequence[int], *, value: float | None = 0.0, scale: float | None = None,
         mask: torch.Tensor | None = None) -> Iterator[nn.Module]:
    """Within the block, ``layer``'s ``units`` are set to ``value`` (zero by default) or multiplied by
    ``scale``, everywhere or only inside ``mask`` (bool (S, S) or (B, S, S), any resolution).

    Works on the toolkit's nets and on a HookedNet alike (a forward hook on ``getattr(net, layer)``);
    the hook is removed on exit, also after an exception.
    """
    from .analysis.ablation import downsample_mask

    idx = [int(u) for u in units]
    n_units = net.layer_channels()[layer]
    bad = [u for u in idx if not 0 <= u < n_units]
    if bad:
        raise ValueError(f"unit(s) {bad[:5]} out of range for {layer} ({n_units} units)")

    def hook(module, inputs, out):
        out = out.clone()
        sel = torch.as_tensor(idx, device=out.device, dtype=torch.long)
        new = out[:, sel] * scale if scale is not None else torch.full_like(out[:, sel], float(value))
        if mask is not None:
            m = downsample_mask(torch.as_tensor(mask).to(out.device), out.shape[-1])
            m = m[:, None] if m.dim() == 3 else m[None, None]
            new = torch.where(m, new, out[:, sel])
        out[:, sel] = new
        return out

    handle = getattr(net, layer).register_forward_hook(hook)
    try:
        yield net
    finally:
        handle.remove()


def _weights_key(*nets: nn.Module | None) -> str:
    h = hashlib.sha256()
    for net in nets:
        if net is None:
            continue
        for name, t in net.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


def _reinit_copy(net: nn.Module, seed: int) -> nn.Module:
    """A copy of ``net`` with every submodule's parameters reset (its own ``reset_parameters``), seeded."""
    clone = copy.deepcopy(net)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in clone.modules():
            if hasattr(m, "reset_parameters") and m is not clone:
                m.reset_parameters()
    return clone


def wrap_generator(G: nn.Module, *, nz: int, layers: Mapping[str, nn.Module | str],
                   sample_z: str | SamplerFn = "normal", z_shape: Sequence[int] | None = None,
                   D: nn.Module | None = None, D_layers: Mapping[str, nn.Module | str] | None = None,
                   D_output: str = "logit", image_range: tuple[float, float] = (-1.0, 1.0), data: Any = None,
                   name: str = "wrapped", device: torch.device | str | None = None):
    """Any PyTorch generator (and optional discriminator) as a ``Bundle`` every analysis accepts.

    ``G(z)`` maps z (B, nz) (or ``z_shape`` per sample, e.g. (nz, 1, 1)) to images (B, C, S, S) in
    ``image_range`` (mapped to the toolkit's [-1, 1]). ``layers``: ``{name: submodule or dotted path}``
    of G's hidden layers, in forward order, each outputting (B, C, h, w). ``sample_z``: "normal",
    "uniform" ([-1, 1]) or ``(seed, indices) -> (N, nz)``. ``D``: optional discriminator taking
    images in ``image_range`` and returning a logit per image (``D_output="probability"``: a
    sigmoid output, turned into the logit); ``D_layers`` as ``layers``. ``data``: a DataSpec or spec
    string of the training set, or None (analyses that need images then ask for one).

    Example (a non-DCGAN generator)::

        G = MyGenerator().eval()                      # Linear -> Upsample + Conv blocks
        bundle = wrap_generator(G, nz=64, layers={"block1": G.block1, "block2": "block2"})
        images = generate(bundle, seed=0, indices=range(16))
        with ablate(bundle.G, {"block2": [3]}):       # any analysis: forget, features, inversion ...
            edited = bundle.G(latents(bundle.config, 0, range(16)))
    """
    from .checkpoint import Bundle, default_device
    from .data.spec import NO_DATA, DataSpec

    lo, hi = (float(v) for v in image_range)
    if not hi > lo:
        raise ValueError(f"image_range must be (low, high) with high > low, got {image_range}")
    if D_output not in ("logit", "probability"):
        raise ValueError(f"D_output must be 'logit' or 'probability', got {D_output!r}")
    dev = torch.device(device) if device is not None else default_device()
    G = G.to(dev).eval()
    to_toolkit = (lambda x: x) if (lo, hi) == (-1.0, 1.0) else (lambda x: (x - lo) / (hi - lo) * 2 - 1)
    from_toolkit = (lambda x: x) if (lo, hi) == (-1.0, 1.0) else (lambda x: (x + 1) / 2 * (hi - lo) + lo)
    per_sample = tuple(z_shape) if z_shape is not None else (nz,)

    def pre_z(z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], *per_sample) if z.dim() == 2 else z

    if isinstance(sample_z, str):
        if sample_z not in ("normal", "uniform"):
            raise ValueError(f"sample_z must be 'normal', 'uniform' or a function, got {sample_z!r}")
        z_dist, sampler = sample_z, None
    else:
        z_dist, sampler = "normal", sample_z

    def example_z(b: int) -> torch.Tensor:
        return torch.zeros(b, nz)

    hg = HookedNet(G, layers, example_z, pre=pre_z, post=to_toolkit)
    hg.z_size = int(nz)
    with torch.no_grad():
        probe = hg(example_z(1).to(dev))
    if probe.dim() != 4 or probe.shape[-1] != probe.shape[-2]:
        raise ValueError(f"G must output square images (B, C, S, S), got {tuple(probe.shape)}")
    nc, size = int(probe.shape[1]), int(probe.shape[-1])
    hg.layer_channels()
    hd = None
    if D is not None:
        D = D.to(dev).eval()

        def post_d(y: torch.Tensor) -> torch.Tensor:
            y = y.reshape(y.shape[0])
            return torch.logit(y.clamp(1e-7, 1 - 1e-7)) if D_output == "probability" else y

        def example_x(b: int) -> torch.Tensor:
            return torch.zeros(b, nc, size, size)

        hd = HookedNet(D, D_layers or {}, example_x, pre=from_toolkit, post=post_d) if D_layers else None
        if hd is None:
            raise ValueError("D given without D_layers: name its hidden layers, e.g. D_layers={'conv1': D.conv1}")
        hd.layer_channels()
    random_d = None
    if hd is not None:
        def random_d(seed: int, _hd=hd) -> HookedNet:
            clone = _reinit_copy(_hd.net, seed)
            names = {n: path for n, path in _module_paths(_hd).items()}
            r = HookedNet(clone, {n: clone.get_submodule(p) for n, p in names.items()}, _hd._example,
                          pre=_hd._pre, post=_hd._post).eval()
            for p in r.parameters():
                p.requires_grad_(False)
            return r
    cfg = WrappedConfig(image_size=size, nz=int(nz), nc=nc, z_dist=z_dist, sample_z=sampler,
                        random_discriminator=random_d)
    hg.cfg = cfg
    if hd is not None:
        hd.cfg = cfg
    for net in (hg, hd):
        if net is not None:
            net.eval()
            for p in net.parameters():
                p.requires_grad_(False)
    if data is None:
        spec = DataSpec(source=NO_DATA, size=size, channels=nc)
    elif isinstance(data, str):
        spec = DataSpec.parse(data, size=size, channels=nc)
    else:
        spec = data
    key = _weights_key(G, D)
    meta = {"format": "dcgan-viz-wrapped", "model": cfg.to_dict(), "discriminator": hd is not None, "step": 0,
            "epoch": 0, "name": name}
    return Bundle(G=hg, D=hd, config=cfg, data=spec, train={}, meta=meta, path=Path(name), device=dev,
                  weights_sha256=key)


def _module_paths(h: HookedNet) -> dict[str, str]:
    """Layer name -> dotted path of its module inside the wrapped net."""
    where = {id(m): path for path, m in h.net.named_modules()}
    return {n: where[id(m)] for n, m in h._layer_modules.items()}
