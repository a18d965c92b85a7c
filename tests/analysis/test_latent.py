"""Latent walks, concept arithmetic and directions, each against a control."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dcgan_viz.analysis.latent import (
    concept_vector,
    evaluate_expression,
    interpolate,
    lerp,
    noise_neighbours,
    parse_expression,
    slerp,
    svm_direction,
    walk,
    walk_smoothness,
    wilson_interval,
)
from dcgan_viz.checkpoint import save_checkpoint
from dcgan_viz.cli import app
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.latents import latents
from dcgan_viz.models import ModelConfig, build_models

torch.set_num_threads(1)

CFG = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)


def _tiny_g(seed: int = 0):
    torch.manual_seed(seed)
    G, D = build_models(CFG)
    return G.eval(), D.eval()


def test_slerp_keeps_norms_lerp_shrinks_for_opposite_vectors() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(32, 16, generator=g) * 2 - 1
    b = -a + 0.3 * (torch.rand(32, 16, generator=g) * 2 - 1)  # opposite-ish pairs
    ts = torch.linspace(0, 1, 11)
    lo = torch.minimum(a.norm(dim=1), b.norm(dim=1))
    hi = torch.maximum(a.norm(dim=1), b.norm(dim=1))
    for t in ts:
        ns = slerp(a, b, float(t)).norm(dim=1)
        assert torch.all(ns >= lo * (1 - 1e-5)) and torch.all(ns <= hi * (1 + 1e-5))
    mid_lerp = lerp(a, b, 0.5).norm(dim=1)
    assert torch.all(mid_lerp < 0.5 * lo)  # control: lerp collapses towards the origin
    # endpoints exact, and a 1-D t gives a path
    assert torch.allclose(slerp(a[0], b[0], 0.0), a[0], atol=1e-5)
    assert torch.allclose(slerp(a[0], b[0], 1.0), b[0], atol=1e-5)
    assert slerp(a[0], b[0], ts).shape == (11, 16)
    # nearly parallel vectors fall back to lerp (no division by ~0)
    p = slerp(a[0], a[0] * 1.5, ts)
    assert torch.isfinite(p).all() and torch.allclose(p, lerp(a[0], a[0] * 1.5, ts), atol=1e-5)


def test_interpolate_shape_and_anchors() -> None:
    z = latents(CFG, 0, 4)
    path = interpolate(z, 3, "slerp")
    assert path.shape == (3 * 4 + 1, 16)
    assert torch.allclose(path[::4], z, atol=1e-5)
    with pytest.raises(ValueError):
        interpolate(z, 3, "cubic")


def test_parser_accepts_sums_rejects_code() -> None:
    assert parse_expression("a - b + c") == [(1, "a"), (-1, "b"), (1, "c")]
    assert parse_expression("smiling_woman - neutral_woman + neutral_man")[1] == (-1, "neutral_woman")
    assert parse_expression("-a+b2") == [(-1, "a"), (1, "b2")]
    for bad in ["__import__('os')", "a * b", "", "   ", "a b", "a - - b", "a +", "1a", "a.b", "a -b; import os"]:
        with pytest.raises(ValueError) as err:
            parse_expression(bad)
        assert "\n" not in str(err.value)


def test_evaluate_expression_exact() -> None:
    concepts = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([0.5, 0.5, 0.5]),
                "c": torch.tensor([-1.0, 0.0, 4.0])}
    assert torch.equal(evaluate_expression("a - b + c", concepts), torch.tensor([-0.5, 1.5, 6.5]))
    assert torch.equal(evaluate_expression("-a", concepts), -concepts["a"])
    with pytest.raises(ValueError, match="unknown concept 'd'"):
        evaluate_expression("a + d", concepts)


def test_concept_vector_is_mean_of_named_latents() -> None:
    v = concept_vector(CFG, [(0, 3), (1, 5), (0, 7)])
    expected = torch.stack([latents(CFG, 0, [3])[0], latents(CFG, 1, [5])[0], latents(CFG, 0, [7])[0]]).mean(0)
    assert torch.allclose(v, expected)
    with pytest.raises(ValueError):
        concept_vector(CFG, [])


def test_noise_neighbours_deterministic_and_in_range() -> None:
    z = latents(CFG, 0, [0])[0]
    a, b, c = noise_neighbours(z, 50, 0.25, seed=1), noise_neighbours(z, 50, 0.25, seed=1), noise_neighbours(z, 50, 0.25, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (50, 16) and a.min() >= -1 and a.max() <= 1
    assert ((a - z).abs() <= 0.25 + 1e-6).all()
    # the global RNG is untouched
    torch.manual_seed(5)
    x = torch.rand(1)
    torch.manual_seed(5)
    noise_neighbours(z, 3, seed=0)
    assert torch.equal(torch.rand(1), x)


def test_smoothness_flags_injected_jump() -> None:
    G, _ = _tiny_g()
    z = latents(CFG, 0, 2)
    smooth = interpolate(z, 15, "slerp")
    jumpy = smooth.clone()
    jumpy[8:] = interpolate(latents(CFG, 1, 2), 15, "slerp")[8:]  # switches to an unrelated walk at step 8
    s, j = walk_smoothness(G, smooth), walk_smoothness(G, jumpy)
    assert s.images.shape == (17, 32, 32, 3) and s.step_change.shape == (16,)
    assert j.step_change.argmax() == 7
    assert j.spike_ratio > 3 * s.spike_ratio and s.spike_ratio < 4


def test_svm_recovers_planted_direction_random_labels_do_not() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.rand(600, 16, generator=g) * 2 - 1
    planted = torch.randn(16, generator=g)
    planted = planted / planted.norm()
    labels = (z @ planted > 0).long()
    d = svm_direction(z, labels)
    assert abs(float(d.norm()) - 1) < 1e-5 and float(d @ planted) > 0.9
    random_labels = torch.randint(0, 2, (600,), generator=g)
    assert abs(float(svm_direction(z, random_labels) @ planted)) < 0.5
    with pytest.raises(ValueError):
        svm_direction(z, torch.zeros(600))


def test_walk_along_direction() -> None:
    G, _ = _tiny_g()
    z = latents(CFG, 0, [0])[0]
    imgs = walk(G, z, torch.ones(16), [-1.0, 0.0, 1.0])
    assert imgs.shape == (3, 32, 32, 3) and imgs.dtype == torch.uint8
    assert not torch.equal(imgs[0], imgs[2])


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(50, 100)
    assert lo < 0.5 < hi and abs((hi - lo) - 0.19) < 0.01
    assert wilson_interval(0, 10)[0] == 0.0


def test_cli_interpolate_end_to_end(tmp_path) -> None:
    G, D = _tiny_g()
    ckpt = save_checkpoint(tmp_path / "ck", G, D, data=DataSpec(source="faces", size=32, count=64, test_count=16))
    out = tmp_path / "walk.png"
    runner = CliRunner()
    res = runner.invoke(app, ["interpolate", str(ckpt), "--seed", "0", "--points", "3", "--steps", "4", "--method", "slerp",
                              "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and out.read_bytes()[:4] == b"\x89PNG"
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["n_images"] == 11 and len(summary["step_change"]) == 10 and np.isfinite(summary["spike_ratio"])
    # controls: a bad method and a missing checkpoint are one-line errors with exit code 2
    bad = runner.invoke(app, ["interpolate", str(ckpt), "--method", "cubic", "--out", str(out)])
    assert bad.exit_code == 2 and "error:" in bad.output
    missing = runner.invoke(app, ["interpolate", str(tmp_path / "nope"), "--out", str(out)])
    assert missing.exit_code == 2 and "error:" in missing.output


def test_cli_arithmetic_bad_expression_and_checkpoint(tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["arithmetic", str(tmp_path / "nope"), "--expression", "__import__('os')",
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "bad expression" in res.output
    res = runner.invoke(app, ["arithmetic", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "error:" in res.output
