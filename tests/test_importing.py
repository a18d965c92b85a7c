"""`dcgan-viz import`: pytorch/examples DCGAN state dicts become toolkit checkpoints that compute
exactly what the source nets compute; anything else is refused in one line, without running code."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from dcgan_viz.checkpoint import load_checkpoint
from dcgan_viz.cli import app
from dcgan_viz.importing import ImportError_, import_checkpoint, read_state_dict

runner = CliRunner()
FASHION = Path("/usr/share/datasets/fashion-mnist")


# The nets exactly as pytorch/examples dcgan/main.py builds them (written here from its description),
# with the number of upsampling / downsampling blocks as a parameter (4 convolutions = 32 px, 5 = 64 px).
def examples_generator(nz: int, ngf: int, nc: int, n: int = 5) -> nn.Module:
    layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ngf * 2 ** (n - 2), 4, 1, 0, bias=False),
                               nn.BatchNorm2d(ngf * 2 ** (n - 2)), nn.ReLU(True)]
    for i in range(n - 2, 0, -1):
        layers += [nn.ConvTranspose2d(ngf * 2**i, ngf * 2 ** (i - 1), 4, 2, 1, bias=False),
                   nn.BatchNorm2d(ngf * 2 ** (i - 1)), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
    net = nn.Module()
    net.main = nn.Sequential(*layers)
    return net


def examples_discriminator(ndf: int, nc: int, n: int = 5) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    for i in range(n - 2):
        layers += [nn.Conv2d(ndf * 2**i, ndf * 2 ** (i + 1), 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2 ** (i + 1)),
                   nn.LeakyReLU(0.2, inplace=True)]
    layers += [nn.Conv2d(ndf * 2 ** (n - 2), 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    net = nn.Module()
    net.main = nn.Sequential(*layers)
    return net


def _randomize(net: nn.Module, seed: int) -> nn.Module:
    """Random weights (wider than the script's N(0, 0.02), so outputs are far from constant) and
    non-trivial batchnorm statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.05 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g) * 1e-3)
                m.num_batches_tracked.fill_(7)
    return net.eval()


def _forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.main(x)


@pytest.fixture
def source64(tmp_path: Path):
    G = _randomize(examples_generator(nz=12, ngf=8, nc=3, n=5), 0)
    D = _randomize(examples_discriminator(ndf=8, nc=3, n=5), 1)
    torch.save(G.state_dict(), tmp_path / "netG_epoch_3.pth")
    torch.save(D.state_dict(), tmp_path / "netD_epoch_3.pth")
    return G, D, tmp_path / "netG_epoch_3.pth", tmp_path / "netD_epoch_3.pth"


@torch.no_grad()
def test_import_64_equals_source(source64, tmp_path: Path) -> None:
    G, D, g_file, d_file = source64
    out = import_checkpoint(g_file, tmp_path / "imported", d_file)
    b = load_checkpoint(out, device="cpu")
    assert (b.config.image_size, b.config.nz, b.config.ngf, b.config.ndf, b.config.nc, b.config.z_dist) == \
        (64, 12, 8, 8, 3, "normal")
    z = torch.randn(6, 12, generator=torch.Generator().manual_seed(5))
    ref = _forward(G, z[:, :, None, None])
    assert ref.std() > 0.01  # a real comparison, not of constants
    torch.testing.assert_close(b.G(z), ref, atol=1e-6, rtol=1e-5)
    # D: the toolkit returns the logit; the source's Sigmoid output is its sigmoid. Features equal too.
    x = ref + 0.3 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(torch.sigmoid(b.D(x)), _forward(D, x).flatten(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(b.D.features(x, ["conv2"])["conv2"], D.main[:5](x), atol=1e-6, rtol=1e-5)
    meta = json.loads((out / "checkpoint.json").read_text())
    prov = meta["imported_from"]
    assert prov["format"] == "pytorch-examples-dcgan" and meta["epoch"] == 3
    assert [f["role"] for f in prov["files"]] == ["netG", "netD"]
    import hashlib
    assert prov["files"][0]["sha256"] == hashlib.sha256(g_file.read_bytes()).hexdigest()
    assert prov["check"]["generator_max_abs_diff"] < 1e-5 and prov["check"]["discriminator_max_abs_diff"] < 1e-5
    assert prov["mapping"]["conv2"] == {"conv": "main.3", "bn": "main.4"}
    assert meta["data"]["source"] == "none"
    card = (out / "README.md").read_text()
    assert "N(0, 1)" in card and prov["files"][0]["sha256"] in card


@torch.no_grad()
def test_import_32px_dataparallel_and_generator_only(tmp_path: Path) -> None:
    G = _randomize(examples_generator(nz=10, ngf=8, nc=1, n=4), 2)
    sd = {f"module.{k}": v for k, v in G.state_dict().items()}  # saved from nn.DataParallel
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}  # as old torch wrote them
    torch.save(sd, tmp_path / "netG.pth")
    res = runner.invoke(app, ["import", str(tmp_path / "netG.pth"), "--out", str(tmp_path / "ck")])
    assert res.exit_code == 0, res.output
    assert "32x32" in res.output and "no discriminator" in res.output
    b = load_checkpoint(tmp_path / "ck", device="cpu")
    assert b.D is None and b.config.image_size == 32 and b.config.nc == 1
    z = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(b.G(z), _forward(G, z[:, :, None, None]), atol=1e-6, rtol=1e-5)
    # analyses that need D say so in one line; those that need data ask for --data
    res = runner.invoke(app, ["filters", str(tmp_path / "ck"), "--out", str(tmp_path / "f"), "--device", "cpu"])
    assert res.exit_code == 2 and "needs a discriminator" in res.output and len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["memorization", str(tmp_path / "ck"), "--out", str(tmp_path / "m"), "--device", "cpu",
                              "--n", "8", "--n-test", "8", "--recovery-n", "0", "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 2 and "pass --data" in res.output, res.output
    res = runner.invoke(app, ["sample", str(tmp_path / "ck"), "--out", str(tmp_path / "s.png"), "--n", "4",
                              "--device", "cpu"])
    assert res.exit_code == 0 and (tmp_path / "s.png").is_file()
    res = runner.invoke(app, ["info", str(tmp_path / "ck")])
    assert res.exit_code == 0 and "source: none" in res.output


class _Marker:
    """A pickle that would create a file if it were ever unpickled by the full loader."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _bad_files(tmp_path: Path, source: tuple) -> dict[str, tuple[Path, str]]:
    G, D, g_file, _ = source
    sd = G.state_dict()
    cases: dict[str, tuple[Path, str]] = {}

    def save(name: str, obj, expect: str) -> None:
        torch.save(obj, tmp_path / name)
        cases[name] = (tmp_path / name, expect)

    save("missing.pth", {k: v for k, v in sd.items() if k != "main.4.running_var"}, "missing")
    save("unexpected.pth", {**sd, "main.3.bias": torch.zeros(32)}, "unexpected")
    save("shape.pth", {**sd, "main.3.weight": torch.zeros(64, 20, 4, 4)}, "no toolkit DCGAN")
    save("sizes.pth", {k: v for k, v in sd.items() if not k.startswith(("main.12.",))}, "unexpected")
    save("size256.pth", examples_generator(nz=4, ngf=1, nc=3, n=7).state_dict(), "the toolkit's DCGANs are")
    save("module.pth", G, "state dict")  # a whole pickled module object
    save("nested.pth", {"netG": sd, "epoch": 3}, "state dict")
    with open(tmp_path / "evil.pth", "wb") as fh:
        pickle.dump({"main.0.weight": _Marker(tmp_path / "PWNED")}, fh)
    cases["evil.pth"] = (tmp_path / "evil.pth", "restricted loader")
    (tmp_path / "text.pth").write_text("not a torch file")
    cases["text.pth"] = (tmp_path / "text.pth", "restricted loader")
    return cases


def test_bad_files_one_line_exit_2_nothing_executed(source64, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name, (path, expect) in _bad_files(bad, source64).items():
        with pytest.raises(ImportError_):
            read_state_dict(path) if name in ("module.pth", "nested.pth", "evil.pth", "text.pth") else \
                import_checkpoint(path, tmp_path / f"never-{name}")
        res = runner.invoke(app, ["import", str(path), "--out", str(tmp_path / f"out-{name}")])
        assert res.exit_code == 2, (name, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], (name, res.output)
        assert not (tmp_path / f"out-{name}").exists()
    assert not (bad / "PWNED").exists()  # the malicious reduce never ran
    res = runner.invoke(app, ["import", str(bad / "module.pth"), "--out", str(tmp_path / "x")])
    assert "torch.save(net.state_dict(), PATH)" in res.output


def test_mismatched_pair_and_existing_out(source64, tmp_path: Path) -> None:
    _, _, g_file, _ = source64
    D32 = _randomize(examples_discriminator(ndf=8, nc=3, n=4), 3)
    torch.save(D32.state_dict(), tmp_path / "d32.pth")
    res = runner.invoke(app, ["import", str(g_file), "--netD", str(tmp_path / "d32.pth"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "image_size=32" in res.output
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("user file")
    res = runner.invoke(app, ["import", str(g_file), "--out", str(tmp_path / "taken")])
    assert res.exit_code == 2 and "already exists" in res.output
    assert (tmp_path / "taken" / "mine.txt").read_text() == "user file"


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST not installed")
def test_imported_model_takes_data_for_filters(source64, tmp_path: Path) -> None:
    """With --data an imported model (1 channel here) runs an analysis that needs real images."""
    G = _randomize(examples_generator(nz=8, ngf=4, nc=1, n=4), 4)
    D = _randomize(examples_discriminator(ndf=4, nc=1, n=4), 5)
    torch.save(G.state_dict(), tmp_path / "g.pth")
    torch.save(D.state_dict(), tmp_path / "d.pth")
    assert runner.invoke(app, ["import", str(tmp_path / "g.pth"), "--netD", str(tmp_path / "d.pth"),
                               "--out", str(tmp_path / "ck")]).exit_code == 0
    res = runner.invoke(app, ["filters", str(tmp_path / "ck"), "--out", str(tmp_path / "f"), "--device", "cpu",
                              "--images", "32", "--filters", "0:2", "--top", "2"])
    assert res.exit_code == 2 and "pass --data" in res.output
    res = runner.invoke(app, ["filters", str(tmp_path / "ck"), "--out", str(tmp_path / "f"), "--device", "cpu",
                              "--images", "32", "--filters", "0:2", "--top", "2", "--data", "fashion-mnist"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "f" / "fig5_conv3.png").is_file()


def test_forget_boxes_on_imported_model_without_segmenter(tmp_path: Path) -> None:
    G = _randomize(examples_generator(nz=8, ngf=4, nc=1, n=4), 6)
    torch.save(G.state_dict(), tmp_path / "g.pth")
    assert runner.invoke(app, ["import", str(tmp_path / "g.pth"), "--out", str(tmp_path / "ck")]).exit_code == 0
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"seed": 5, "index": i, "boxes": [[4, 4, 16, 16]]} for i in range(6)]))
    res = runner.invoke(app, ["forget", str(tmp_path / "ck"), "--segmenter", "none", "--layer", "conv2", "--counts",
                              "1,4", "--out", str(tmp_path / "f"), "--device", "cpu"])
    assert res.exit_code == 2 and "needs --boxes" in res.output
    res = runner.invoke(app, ["forget", str(tmp_path / "ck"), "--segmenter", "none", "--boxes", str(boxes),
                              "--layer", "conv2", "--counts", "1,4", "--out", str(tmp_path / "f"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "f" / "box_removal.json").read_text())
    assert saved["counts"] == [1, 4] and len(saved["inside"]["probe"]) == 2 and saved["n_images"] == 6
    assert (tmp_path / "f" / "with_without.png").is_file()
