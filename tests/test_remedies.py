"""Remedies against collapse: off is the paper's step bit for bit; each one, on, changes the step
as specified; runs with remedies stay exact (same seed, resume); bad values are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from dcgan_viz.cli import app
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.images import from_uint8
from dcgan_viz.models import ModelConfig
from dcgan_viz.remedies import (
    LEVEL,
    RemedyBuffers,
    Remedies,
    augment,
    color,
    cutout,
    noise_sigma,
    parse_augment,
    translate,
)
from dcgan_viz.train import Trainer, TrainConfig, fused_adam_supported

SPEC = DataSpec(source="random", size=32, count=128)


def _cfg(**kw) -> TrainConfig:
    base = dict(max_steps=6, batch_size=16, checkpoint_every=6, progress=False, device="cpu", health_every=0)
    return TrainConfig(**(base | kw))


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_off_is_the_paper_step_bit_for_bit(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    """A hand-written paper iteration (BCE on logits, Adam 2e-4 / 0.5, D-step then non-saturating
    G-step) on the trainer's own batches and latents gives exactly the trainer's weights."""
    trainer = Trainer(tiny_cfg, _cfg(), SPEC, tiny_images, tmp_path / "run")
    assert trainer.gan.remedies is None
    ref = Trainer(tiny_cfg, _cfg(), SPEC, tiny_images, tmp_path / "ref")  # same init; only its inputs are used
    G, D = ref.G, ref.D
    fused = {"fused": True} if fused_adam_supported(torch.device("cpu")) else {}  # the trainer's Adam kernel
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), **fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), **fused)
    perm = ref._epoch_perm(0)
    for step in range(6):
        ref._fill_inputs(perm, step)
        real = from_uint8(tiny_images[ref.gan.idx])
        z = ref.gan.z.clone()
        opt_d.zero_grad()
        fake = G(z)
        out_r, out_f = D(real), D(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(out_r, torch.ones_like(out_r)) + \
            F.binary_cross_entropy_with_logits(out_f, torch.zeros_like(out_f))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        out_g = D(fake)
        F.binary_cross_entropy_with_logits(out_g, torch.ones_like(out_g)).backward(inputs=list(G.parameters()))
        opt_g.step()
    trainer.run()
    assert _same(trainer.G, G) and _same(trainer.D, D)


@pytest.mark.parametrize("option", [dict(label_smoothing=0.1), dict(instance_noise=0.1), dict(dequantize=4.0),
                                    dict(augment="translation"), dict(lr_d=1e-4)])
def test_each_remedy_changes_the_run_and_stays_exact(tmp_path: Path, tiny_cfg: ModelConfig,
                                                      tiny_images: torch.Tensor, option: dict) -> None:
    paper = Trainer(tiny_cfg, _cfg(), SPEC, tiny_images, tmp_path / "paper")
    paper.run()
    a = Trainer(tiny_cfg, _cfg(**option), SPEC, tiny_images, tmp_path / "a")
    a.run()
    assert not _same(a.G, paper.G)
    # the same seed replays the same run; a killed run resumed from its checkpoint does too
    half = Trainer(tiny_cfg, _cfg(max_steps=3, checkpoint_every=3, **option), SPEC, tiny_images, tmp_path / "b")
    half.run()
    resumed = Trainer(tiny_cfg, _cfg(**option), SPEC, tiny_images, tmp_path / "b", resume=True)
    resumed.run()
    assert _same(a.G, resumed.G) and _same(a.D, resumed.D)


def test_ttur_sets_each_learning_rate(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    t = Trainer(tiny_cfg, _cfg(lr=3e-4, lr_d=1e-4), SPEC, tiny_images, tmp_path / "run")
    assert [g["lr"] for g in t.opt_g.param_groups] == [3e-4]
    assert [g["lr"] for g in t.opt_d.param_groups] == [1e-4]


def test_label_smoothing_is_the_real_target(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    """loss_d with smoothing s equals BCE(D(x), 1 - s) + BCE(D(G(z)), 0) on the step's own inputs."""
    t = Trainer(tiny_cfg, _cfg(label_smoothing=0.2), SPEC, tiny_images, tmp_path / "run")
    t._fill_inputs(t._epoch_perm(0), 0)
    with torch.no_grad():
        real = from_uint8(tiny_images[t.gan.idx])
        out_r, out_f = t.D(real), t.D(t.G(t.gan.z))
        want = F.binary_cross_entropy_with_logits(out_r, torch.full_like(out_r, 0.8)) + \
            F.binary_cross_entropy_with_logits(out_f, torch.zeros_like(out_f))
    t.gan.run()
    assert t.gan.metrics[0].item() == pytest.approx(want.item(), rel=1e-5)


def test_instance_noise_anneals_to_zero() -> None:
    assert noise_sigma(0.2, 100, 0) == 0.2
    assert noise_sigma(0.2, 100, 50) == pytest.approx(0.1)
    assert noise_sigma(0.2, 100, 100) == 0.0 and noise_sigma(0.2, 100, 500) == 0.0
    buf = RemedyBuffers(Remedies(instance_noise=0.2, instance_noise_steps=100), 4, (3, 8, 8), torch.device("cpu"))
    x = torch.zeros(4, 3, 8, 8)
    buf.fill(torch.Generator().manual_seed(0), 0)
    seen = buf.real(x)
    assert seen.std().item() == pytest.approx(0.2, rel=0.15)  # N(0, 0.2^2) noise on every pixel
    assert torch.equal(buf.fake(x, 1), buf.noise[1] * 0.2) and not torch.equal(buf.fake(x, 1), buf.fake(x, 2))
    buf.fill(torch.Generator().manual_seed(0), 100)
    assert torch.equal(buf.real(x), x) and torch.equal(buf.fake(x, 2), x)  # annealed away


def test_dequantisation_stays_within_its_levels() -> None:
    buf = RemedyBuffers(Remedies(dequantize=4.0), 8, (3, 16, 16), torch.device("cpu"))
    buf.fill(torch.Generator().manual_seed(1), 0)
    x = torch.zeros(8, 3, 16, 16)
    delta = buf.real(x) - x
    assert delta.abs().max().item() <= 2.0 * LEVEL + 1e-7  # +- half of 4 levels
    assert delta.abs().max().item() > 1.5 * LEVEL and abs(delta.mean().item()) < 0.1 * LEVEL
    assert torch.equal(buf.fake(x, 1), x)  # generated images are never dequantised


def test_translation_shifts_whole_pixels_with_zero_fill() -> None:
    x = torch.zeros(2, 1, 16, 16)
    x[:, 0, 8, 8] = 1.0
    x[:, 0, 0, :] = 0.5  # top row: shifted down, zero fill comes in above
    # r = 2 at 16 px: u -> shift floor(u * 5) - 2
    u = torch.tensor([[0.99, 0.0], [0.5, 0.5]])
    out = translate(x, u)
    assert out[0, 0, 10, 6] == 1.0 and out[0].sum() == 1.0 + 0.5 * 14  # down 2, left 2: two top pixels leave
    assert torch.equal(out[1], x[1])  # shift (0, 0)
    assert torch.all(out[0, 0, :2] == 0)


def test_cutout_zeroes_a_half_size_square() -> None:
    x = torch.ones(3, 2, 16, 16)
    out = cutout(x, torch.tensor([[0.5, 0.5], [0.0, 0.0], [0.99, 0.99]]))
    assert (out[0] == 0).sum().item() == 2 * 8 * 8  # a full 8x8 square, both channels
    assert 0 < (out[1] == 0).sum().item() < 2 * 8 * 8  # a corner square is clipped
    assert (out[2] == 0).sum().item() < 2 * 8 * 8


def test_color_is_identity_at_the_middle_and_augment_is_differentiable() -> None:
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    assert torch.allclose(color(x, torch.full((4, 3), 0.5)), x, atol=1e-6)
    x.requires_grad_(True)
    u = torch.rand(4, 7, generator=torch.Generator().manual_seed(0))
    augment(x, u, ("color", "translation", "cutout")).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_parse_augment() -> None:
    assert parse_augment("translation, cutout") == ("translation", "cutout") and parse_augment("") == ()
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        parse_augment("translation,rotate")


@pytest.mark.parametrize("args,message", [
    (["--label-smoothing", "0.7"], "label_smoothing must be in [0, 0.5)"),
    (["--augment", "rotate"], "unknown augmentation 'rotate'"),
    (["--instance-noise", "-1"], "instance_noise must be in [0, 2]"),
    (["--lr-d", "0"], "lr_d must be > 0"),
    (["--dequantize", "1000"], "dequantize must be in [0, 64]"),
    (["--health-every", "-5"], "health_every and health_warmup must be >= 0"),
])
def test_bad_remedy_values_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["train", "--data", "rooms:count=64", "--image-size", "32", "--out",
                                   str(tmp_path / "r"), *args])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not (tmp_path / "r").exists()
