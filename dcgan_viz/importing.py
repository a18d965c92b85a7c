"""Import DCGAN weights trained elsewhere (pytorch/examples ``dcgan/main.py``) as a toolkit checkpoint.

That script saves ``torch.save(netG.state_dict(), "netG_epoch_N.pth")`` (and ``netD_...``): bare
state dicts of two ``nn.Sequential`` nets called ``main``::

    netG.main: 0 ConvT(nz, ngf*8, 4, 1, 0)  1 BN  2 ReLU   3 ConvT(ngf*8, ngf*4, 4, 2, 1)  4 BN  5 ReLU
               ...  3k ConvT(ngf, nc, 4, 2, 1)  3k+1 Tanh                (all convolutions bias-free)
    netD.main: 0 Conv(nc, ndf, 4, 2, 1)  1 LeakyReLU   2 Conv(ndf, ndf*2)  3 BN  4 LeakyReLU  ...
               2+3(k-1) Conv(ndf*2^(k-1), 1, 4, 1, 0)  Sigmoid           (all convolutions bias-free)

Block ``conv{i}`` of the toolkit's nets is the i-th convolution with its batchnorm; the toolkit's
last convolutions carry a bias, which is set to zero. The script's D ends in a Sigmoid; the
toolkit's D returns the logit, so ``sigmoid(D_toolkit(x)) == netD(x)`` and every feature map is
equal. The script draws z from a standard normal, so the imported config has ``z_dist="normal"``.

Files are read only with ``torch.load(weights_only=True)`` (torch's restricted unpickler: plain
tensors and containers, nothing else is constructed or run). Anything else is refused with a
one-line ``ImportError_`` (a CheckpointError) that says how to re-save the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, save_checkpoint, sha256_file
from .data.spec import NO_DATA, DataSpec
from .models import IMAGE_SIZES, Discriminator, Generator, ModelConfig

SOURCE_FORMAT = "pytorch-examples-dcgan"
RESAVE = "re-save it as a state dict: torch.save(net.state_dict(), PATH)"
BN_PARAMS = ("weight", "bias", "running_mean", "running_var")
BN_OPTIONAL = ("num_batches_tracked",)  # written by torch >= 0.4.1 only


class ImportError_(CheckpointError):
    """A file cannot be imported; the message is one line naming the file and what to do."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``{name: tensor}`` state dict from a ``torch.save`` file, read with the restricted loader.

    A leading ``module.`` (nn.DataParallel) is stripped. A pickled module object, a dict holding
    anything but tensors, or a file the restricted loader refuses raise ImportError_ (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise ImportError_(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any refusal or corruption is the file's problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"it pickles {found.group(1)}" if found else first[:160]
        raise ImportError_(f"{path}: not a plain state dict, refused by torch's restricted loader ({what}); "
                           f"{RESAVE}") from None
    if not isinstance(obj, dict):
        raise ImportError_(f"{path}: holds a {type(obj).__name__}, not a state dict; {RESAVE}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        nested = [k for k in bad if isinstance(obj.get(k), dict)]
        hint = f" (a dict of dicts: pass the one under {nested[0]!r} as its own file)" if nested else ""
        raise ImportError_(f"{path}: not a state dict of tensors, entry {str(bad[0])[:40]!r} is "
                           f"{type(obj[bad[0]]).__name__}{hint}; {RESAVE}")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    if not obj:
        raise ImportError_(f"{path}: empty state dict")
    return dict(obj)


@dataclass(frozen=True)
class _Layout:
    """Where each toolkit block's tensors sit in the source state dict."""

    conv: dict[int, int]  # toolkit block i (1-based) -> index in ``main``
    bn: dict[int, int]    # toolkit block i -> index of its batchnorm in ``main``


def _g_layout(n: int) -> _Layout:
    return _Layout({i: 3 * (i - 1) for i in range(1, n + 1)}, {i: 3 * (i - 1) + 1 for i in range(1, n)})


def _d_layout(n: int) -> _Layout:
    conv = {1: 0} | {i: 2 + 3 * (i - 2) for i in range(2, n + 1)}
    return _Layout(conv, {i: conv[i] + 1 for i in range(2, n)})


def _conv_indices(sd: dict[str, torch.Tensor], path: Path) -> list[int]:
    indices = []
    for key, value in sd.items():
        m = re.fullmatch(r"main\.(\d+)\.weight", key)
        if m and value.dim() == 4:
            indices.append(int(m.group(1)))
    if not indices:
        first = next(iter(sd))
        raise ImportError_(f"{path}: not a pytorch/examples DCGAN state dict (no main.<i>.weight convolutions; "
                           f"first key {first!r})")
    return sorted(indices)


def _check_keys(sd: dict[str, torch.Tensor], layout: _Layout, bias_ok: set[int], path: Path, net: str) -> None:
    expected = {f"main.{j}.weight" for j in layout.conv.values()}
    expected |= {f"main.{j}.{p}" for j in layout.bn.values() for p in BN_PARAMS}
    optional = {f"main.{j}.{p}" for j in layout.bn.values() for p in BN_OPTIONAL}
    optional |= {f"main.{layout.conv[i]}.bias" for i in bias_ok}
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected - optional)
    if missing:
        raise ImportError_(f"{path}: {net} state dict is missing {missing[:3]} for the pytorch/examples DCGAN layout "
                           f"with {len(layout.conv)} convolutions")
    if unexpected:
        biased = [k for k in unexpected if k.endswith(".bias") and sd[k].dim() == 1]
        why = (" (a bias on a hidden convolution: the toolkit's DCGAN has none there, so this model cannot be "
               "represented exactly)") if biased else ""
        raise ImportError_(f"{path}: {net} state dict has unexpected keys {unexpected[:3]}{why}")


def _shape_error(path: Path, net: str, key: str, got: tuple, want: tuple, what: str) -> ImportError_:
    return ImportError_(f"{path}: {net} {key} has shape {got}, a DCGAN of {what} needs {want}; "
                        "no toolkit DCGAN has this layout")


def infer_generator(sd: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, int], _Layout]:
    """(nz, ngf, nc, image_size) from netG's weight shapes, and its layout; ImportError_ if it is not one."""
    n = len(_conv_indices(sd, path))
    size = 4 * 2 ** (n - 1)
    if size not in IMAGE_SIZES:
        raise ImportError_(f"{path}: netG has {n} convolutions = {size}x{size} images; the toolkit's DCGANs are "
                           f"{'/'.join(map(str, IMAGE_SIZES))} px ({', '.join(str(int.bit_length(s) - 2) for s in IMAGE_SIZES)} "
                           "convolutions)")
    layout = _g_layout(n)
    _check_keys(sd, layout, {n}, path, "netG")
    first = sd[f"main.{layout.conv[1]}.weight"]
    last = sd[f"main.{layout.conv[n]}.weight"]
    nz, nc, ngf = int(first.shape[0]), int(last.shape[1]), int(last.shape[0])
    if nc not in (1, 3):
        raise ImportError_(f"{path}: netG outputs {nc} channels; the toolkit supports 1 or 3")
    what = f"nz={nz}, ngf={ngf}, nc={nc}"
    widths = [ngf * 2 ** (n - 2 - i) for i in range(n - 1)] + [nc]
    _check_stack(sd, layout, nz, widths, path, "netG", what)
    return {"nz": nz, "ngf": ngf, "nc": nc, "image_size": size}, layout


def _check_stack(sd: dict[str, torch.Tensor], layout: _Layout, in_ch: int, widths: list[int], path: Path,
                 net: str, what: str) -> None:
    """Every conv weight and batchnorm shape of a DCGAN stack with these output ``widths`` (input
    ``in_ch``), and the last conv's optional bias; ImportError_ naming the first that differs.
    netG's ConvTranspose2d weights are (in, out, 4, 4), netD's Conv2d weights (out, in, 4, 4)."""
    n = len(widths)
    for i in range(1, n + 1):
        key = f"main.{layout.conv[i]}.weight"
        want = (in_ch, widths[i - 1], 4, 4) if net == "netG" else (widths[i - 1], in_ch, 4, 4)
        if tuple(sd[key].shape) != want:
            raise _shape_error(path, net, key, tuple(sd[key].shape), want, what)
        if i in layout.bn:
            for p in BN_PARAMS:
                bkey = f"main.{layout.bn[i]}.{p}"
                if tuple(sd[bkey].shape) != (widths[i - 1],):
                    raise _shape_error(path, net, bkey, tuple(sd[bkey].shape), (widths[i - 1],), what)
        in_ch = widths[i - 1]
    bias = sd.get(f"main.{layout.conv[n]}.bias")
    if bias is not None and tuple(bias.shape) != (widths[-1],):
        raise _shape_error(path, net, f"main.{layout.conv[n]}.bias", tuple(bias.shape), (widths[-1],), what)


def infer_discriminator(sd: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, int], _Layout]:
    """(ndf, nc, image_size) from netD's weight shapes, and its layout; ImportError_ if it is not one."""
    n = len(_conv_indices(sd, path))
    size = 4 * 2 ** (n - 1)
    if size not in IMAGE_SIZES:
        raise ImportError_(f"{path}: netD has {n} convolutions = {size}x{size} images; the toolkit's DCGANs are "
                           f"{'/'.join(map(str, IMAGE_SIZES))} px")
    layout = _d_layout(n)
    _check_keys(sd, layout, {n}, path, "netD")
    first = sd[f"main.{layout.conv[1]}.weight"]
    ndf, nc = int(first.shape[0]), int(first.shape[1])
    if nc not in (1, 3):
        raise ImportError_(f"{path}: netD reads {nc} channels; the toolkit supports 1 or 3")
    what = f"ndf={ndf}, nc={nc}"
    widths = [ndf * 2**i for i in range(n - 1)] + [1]
    _check_stack(sd, layout, nc, widths, path, "netD", what)
    return {"ndf": ndf, "nc": nc, "image_size": size}, layout


def _fill(net: torch.nn.Module, sd: dict[str, torch.Tensor], layout: _Layout) -> None:
    """Copy the source tensors into the toolkit net's blocks (missing biases / counters stay zero)."""
    own = net.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for i, j in layout.conv.items():
        mapped[f"conv{i}.conv.weight"] = sd[f"main.{j}.weight"]
        if f"conv{i}.conv.bias" in own:
            mapped[f"conv{i}.conv.bias"] = sd.get(f"main.{j}.bias", torch.zeros_like(own[f"conv{i}.conv.bias"]))
    for i, j in layout.bn.items():
        for p in BN_PARAMS + BN_OPTIONAL:
            mapped[f"conv{i}.bn.{p}"] = sd.get(f"main.{j}.{p}", own[f"conv{i}.bn.{p}"])
    if set(mapped) != set(own):  # pragma: no cover - the layouts mirror models.py
        raise ImportError_(f"internal: mapped keys differ from the toolkit net ({sorted(set(own) ^ set(mapped))[:3]})")
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in mapped.items()})


@dataclass
class Imported:
    """Toolkit nets built from a source's state dicts, with what was inferred and where it came from."""

    G: Generator
    D: Discriminator | None
    config: ModelConfig
    provenance: dict[str, Any]


def import_pytorch_examples(netG: str | Path, netD: str | Path | None = None) -> Imported:
    """Build toolkit nets (eval mode) from pytorch/examples ``netG`` (and optional ``netD``) state dicts."""
    g_path = Path(netG)
    g_sd = read_state_dict(g_path)
    g_dims, g_layout = infer_generator(g_sd, g_path)
    ndf = g_dims["ngf"]
    d_sd = d_layout = None
    if netD is not None:
        d_path = Path(netD)
        d_sd = read_state_dict(d_path)
        d_dims, d_layout = infer_discriminator(d_sd, d_path)
        for k in ("nc", "image_size"):
            if d_dims[k] != g_dims[k]:
                raise ImportError_(f"{d_path}: netD is for {k}={d_dims[k]}, netG ({g_path.name}) for {k}={g_dims[k]}")
        ndf = d_dims["ndf"]
    cfg = ModelConfig(image_size=g_dims["image_size"], nz=g_dims["nz"], ngf=g_dims["ngf"], ndf=ndf,
                      nc=g_dims["nc"], z_dist="normal")
    G = Generator(cfg)
    _fill(G, g_sd, g_layout)
    D = None
    if d_sd is not None:
        D = Discriminator(cfg)
        _fill(D, d_sd, d_layout)
    files = [{"role": "netG", "file": str(g_path.resolve()), "sha256": sha256_file(g_path)}]
    if netD is not None:
        files.append({"role": "netD", "file": str(Path(netD).resolve()), "sha256": sha256_file(Path(netD))})
    provenance = {
        "format": SOURCE_FORMAT,
        "files": files,
        "prior": "z ~ N(0, 1), shape (nz, 1, 1) in the source; (nz,) here",
        "mapping": {f"conv{i}": {"conv": f"main.{g_layout.conv[i]}",
                                 **({"bn": f"main.{g_layout.bn[i]}"} if i in g_layout.bn else {})}
                    for i in g_layout.conv},
        "discriminator_mapping": None if d_layout is None else {
            f"conv{i}": {"conv": f"main.{d_layout.conv[i]}", **({"bn": f"main.{d_layout.bn[i]}"} if i in d_layout.bn else {})}
            for i in d_layout.conv},
        "discriminator_output": "logit; the source's netD(x) = sigmoid(logit)" if D is not None else None,
        "zero_biases": "the toolkit's last convolutions have a bias; the source's have none, so they are 0",
    }
    for net in (G, D):
        if net is not None:
            net.eval()
    imported = Imported(G, D, cfg, provenance)
    provenance["check"] = check_against_source(imported, g_sd, d_sd)
    return imported


def reference_nets(g_sd: dict[str, torch.Tensor], d_sd: dict[str, torch.Tensor] | None
                   ) -> tuple[torch.nn.Sequential, torch.nn.Sequential | None]:
    """The source's own ``main`` Sequentials (the pytorch/examples layout, rebuilt from the state dicts'
    shapes, loaded strictly, eval mode): the reference the imported nets are checked against."""
    from torch import nn

    def build(sd: dict[str, torch.Tensor], layout: _Layout, transposed: bool) -> nn.Sequential:
        n = len(layout.conv)
        mods: dict[int, nn.Module] = {}
        for i, j in layout.conv.items():
            w = sd[f"main.{j}.weight"]
            first, last = i == 1, i == n
            stride, pad = (1, 0) if (first if transposed else last) else (2, 1)
            bias = f"main.{j}.bias" in sd
            if transposed:
                mods[j] = nn.ConvTranspose2d(w.shape[0], w.shape[1], 4, stride, pad, bias=bias)
                mods[j + (1 if last else 2)] = nn.Tanh() if last else nn.ReLU(True)
            else:
                mods[j] = nn.Conv2d(w.shape[1], w.shape[0], 4, stride, pad, bias=bias)
                mods[j + (1 if last or first else 2)] = nn.Sigmoid() if last else nn.LeakyReLU(0.2, True)
        for i, j in layout.bn.items():
            mods[j] = nn.BatchNorm2d(sd[f"main.{j}.weight"].shape[0])
        seq = nn.Sequential(*(mods[k] for k in sorted(mods)))
        seq.load_state_dict({k[len("main."):]: v for k, v in sd.items()}, strict=False)
        missing = {f"main.{k}" for k in seq.state_dict() if not k.endswith("num_batches_tracked")} - set(sd)
        if missing:  # pragma: no cover - the keys were checked before
            raise ImportError_(f"internal: reference net misses {sorted(missing)[:3]}")
        return seq.eval()

    n_g = len(_conv_indices(g_sd, Path("netG")))
    g = build(g_sd, _g_layout(n_g), True)
    d = None
    if d_sd is not None:
        n_d = len(_conv_indices(d_sd, Path("netD")))
        d = build(d_sd, _d_layout(n_d), False)
    return g, d


@torch.no_grad()
def check_against_source(imp: "Imported", g_sd: dict[str, torch.Tensor], d_sd: dict[str, torch.Tensor] | None,
                         n: int = 16, seed: int = 0) -> dict[str, float]:
    """Max |difference| of images (G) and of D's probability between the imported nets and the
    source's layout rebuilt from the same state dicts, for ``n`` seeded N(0, 1) latents."""
    g_ref, d_ref = reference_nets(g_sd, d_sd)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, imp.config.nz, 1, 1, generator=gen)
    ref_images = g_ref(z)
    out = {"n": n, "generator_max_abs_diff": float((imp.G(z) - ref_images).abs().max())}
    if d_ref is not None and imp.D is not None:
        out["discriminator_max_abs_diff"] = float((torch.sigmoid(imp.D(ref_images)) - d_ref(ref_images).flatten()).abs().max())
    return out


def _card(name: str, imp: Imported, meta_data: DataSpec) -> str:
    cfg = imp.config
    files = "\n".join(f"| {f['role']} | `{f['file']}` | `{f['sha256']}` |" for f in imp.provenance["files"])
    d_line = ("the source's netD; `D(x)` returns the logit (the source returned `sigmoid` of it)" if imp.D is not None
              else "none imported: analyses that need D (filters, dissection, the D feature space) say so")
    data_line = ("none recorded: pass `--data SPEC` to analyses that need real images" if meta_data.source == NO_DATA
                 else f"`{json.dumps(meta_data.to_dict(), sort_keys=True)}` (given at import, not verified)")
    return "\n".join([
        f"# {name}", "",
        "Imported with `dcgan-viz import` from pytorch/examples `dcgan/main.py` state dicts "
        "(read with `torch.load(weights_only=True)`; nothing was unpickled).", "",
        "| | |", "|---|---|",
        f"| model | `{json.dumps(cfg.to_dict(), sort_keys=True)}` ({cfg.image_size}x{cfg.image_size}, inferred from the weight shapes) |",
        f"| prior | z ~ N(0, 1), {cfg.nz}-d (the script's `torch.randn(B, nz, 1, 1)`) |",
        f"| discriminator | {d_line} |",
        f"| training data | {data_line} |",
        "| layers | G `main.0, 3, 6, ...` -> `conv1 .. conv{n}`; biases of the last convolutions are 0 |".replace(
            "{n}", str(cfg.n_blocks)),
        "", "## Source files", "", "| role | file | sha256 |", "|---|---|---|", files, "",
        "Check at import: for 16 N(0, 1) latents the imported generator's images differ from the source "
        f"layout's by at most {imp.provenance['check']['generator_max_abs_diff']:.3g} (eval mode)"
        + (f"; `sigmoid(D(x))` from the source discriminator's output by at most "
           f"{imp.provenance['check']['discriminator_max_abs_diff']:.3g}." if "discriminator_max_abs_diff" in imp.provenance["check"] else "."),
        "",
    ])


def import_checkpoint(netG: str | Path, out: str | Path, netD: str | Path | None = None,
                      data: DataSpec | str | None = None, epoch: int | None = None) -> Path:
    """Import pytorch/examples state dicts into a new checkpoint directory ``out`` (never overwritten).

    ``data``: the training set if known (recorded as given); None records "no training data", so
    analyses that need real images ask for ``--data``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImportError_(f"{out}: already exists; choose a new --out (import never overwrites)")
    imp = import_pytorch_examples(netG, netD)
    if isinstance(data, str):
        data = DataSpec.parse(data, size=imp.config.image_size, channels=imp.config.nc)
    spec = data if data is not None else DataSpec(source=NO_DATA, size=imp.config.image_size, channels=imp.config.nc)
    if epoch is None:
        m = re.search(r"epoch_(\d+)", Path(netG).name)
        epoch = int(m.group(1)) if m else 0
    save_checkpoint(out, imp.G, imp.D, data=spec, train={"source": SOURCE_FORMAT}, epoch=epoch,
                    extra={"imported_from": imp.provenance})
    (out / "README.md").write_text(_card(out.name, imp, spec))
    return out
