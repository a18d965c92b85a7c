"""Memorization statistics with their controls: a copying toy generator is flagged, a fresh one is not."""

from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from dcgan_viz.analysis.memorization import latent_recovery, memorization_statistics
from dcgan_viz.analysis.nearest import pixel_features
from dcgan_viz.checkpoint import save_checkpoint
from dcgan_viz.cli import app
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import ModelConfig, build_models

torch.set_num_threads(1)


def _blobs(n: int, seed: int) -> np.ndarray:
    """uint8 (n, 32, 32, 1) smooth random images (a continuous distribution, not discrete points)."""
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.interpolate(torch.rand(n, 1, 4, 4, generator=g), size=32, mode="bilinear")
    return (img * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _stats(gen: np.ndarray, train: np.ndarray, test: np.ndarray):
    return memorization_statistics(train, test, gen, {"pixel": lambda x: pixel_features(x, 8)}, "torch",
                                   n_cells=4, min_count=10, top=8)


def test_copying_generator_flagged_fresh_not() -> None:
    train, test, fresh = _blobs(400, 0), _blobs(300, 1), _blobs(300, 2)
    rng = np.random.default_rng(0)
    noisy = np.clip(train[rng.choice(400, 300)].astype(int) + rng.integers(-3, 4, (300, 32, 32, 1)), 0, 255)
    copier, honest = _stats(noisy.astype(np.uint8), train, test), _stats(fresh, train, test)
    assert copier.copying and copier.spaces["pixel"].copying.ct < -5
    assert copier.spaces["pixel"].ratio < 0.5 and copier.spaces["pixel"].near_copy_fraction > 0.9
    assert not honest.copying and abs(honest.spaces["pixel"].copying.ct) < 2.5
    assert 0.8 < honest.spaces["pixel"].ratio < 1.25 and honest.spaces["pixel"].near_copy_fraction < 0.05
    assert (np.diff(copier.closest.distances) >= 0).all()


def test_latent_recovery_separates_memorised_images() -> None:
    torch.manual_seed(0)
    G, _ = build_models(ModelConfig(image_size=32, nz=16, ngf=8, ndf=8, nc=1))
    G.eval()
    z = torch.rand(12, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        made = ((G(z) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    rng = np.random.default_rng(0)
    unreachable = rng.integers(0, 256, size=(12, 32, 32, 1), dtype=np.uint8)
    found = latent_recovery(G, made, unreachable, steps=60, lr=0.05)
    assert found.train_lower and found.ks_statistic == 1.0 and found.ks_pvalue < 1e-3
    same = latent_recovery(G, unreachable[:6], unreachable[6:], steps=60, lr=0.05)
    assert same.ks_pvalue > 0.05


def test_cli_end_to_end(tmp_path) -> None:
    torch.manual_seed(0)
    G, D = build_models(ModelConfig(image_size=32, nz=16, ngf=8, ndf=8, nc=1))
    ckpt = save_checkpoint(tmp_path / "ck", G, D, data=DataSpec(source="random", size=32, count=64, channels=1))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["memorization", str(ckpt), "--n", "64", "--n-test", "64", "--cells", "2",
                                      "--min-count", "5", "--recovery-n", "4", "--recovery-steps", "3",
                                      "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "memorization.json").read_text())
    assert set(report["spaces"]) == {"pixel", "d"} and report["counts"]["generated"] == 64
    assert (out / "closest_pairs.png").is_file() and "C_T" in (out / "memorization.md").read_text()
    bad = CliRunner().invoke(app, ["memorization", str(tmp_path / "missing"), "--out", str(out)])
    assert bad.exit_code == 2 and "error:" in bad.output


def test_copying_cells_are_reported() -> None:
    """Copies of a few training images plus poor samples: the copying cells and the share of
    samples in them are reported; an honest generator has no copying cell."""
    train, test = _blobs(400, 0), _blobs(300, 1)
    rng = np.random.default_rng(0)
    few = np.clip(train[rng.choice(400, 3)].repeat(50, 0).astype(int) + rng.integers(-2, 3, (150, 32, 32, 1)), 0, 255)
    poor = rng.integers(0, 256, (150, 32, 32, 1))  # far from all data: pushes C_T up
    mixed = _stats(np.concatenate([few, poor]).astype(np.uint8), train, test)
    honest = _stats(_blobs(300, 2), train, test)
    assert mixed.local_copying and 0.3 < mixed.copying_sample_share <= 1.0
    assert mixed.verdict == "COPYING" and mixed.summary()["verdict"] == "COPYING"
    assert not honest.local_copying and honest.verdict == "no copying"


def _photo_folder(root, n: int = 60):
    """A folder of n smooth 40x40 RGB PNGs (prepare/load centre-crop and resize them to 32)."""
    from PIL import Image

    root.mkdir(parents=True)
    g = torch.Generator().manual_seed(5)
    imgs = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=40, mode="bilinear")
    for i, img in enumerate((imgs * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img).save(root / f"{i:03d}.png")
    return root


def _memorization_cli(ckpt, out, cache, *extra):
    return CliRunner().invoke(app, ["memorization", str(ckpt), "--n", "32", "--n-test", "32", "--cells", "2",
                                    "--min-count", "2", "--recovery-n", "2", "--recovery-steps", "2",
                                    "--out", str(out), "--cache-dir", str(cache), *extra])


def _checkpoint_on(spec_text: str, path):
    """A tiny untrained checkpoint whose data spec is ``spec_text`` at 32 px (with its content hash)."""
    from dcgan_viz.data.loading import load_imageset

    torch.manual_seed(0)
    G, D = build_models(ModelConfig(image_size=32, nz=16, ngf=8, ndf=8, nc=3))
    spec = load_imageset(DataSpec.parse(spec_text, size=32)).spec
    return save_checkpoint(path, G, D, data=spec)


def test_memorization_of_a_model_trained_on_a_folder(tmp_path) -> None:
    folder = _photo_folder(tmp_path / "photos")
    ckpt = _checkpoint_on(f"folder:{folder}", tmp_path / "ck")
    result = _memorization_cli(ckpt, tmp_path / "out", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "memorization.json").read_text())
    counts = report["counts"]
    assert counts["train"] + counts["test"] == 60 and 1 <= counts["test"] <= 20  # the folder's hashed tenth


def test_memorization_of_a_model_trained_on_a_prepared_cache(tmp_path) -> None:
    """prepare prints the train/held-out counts; memorization compares with the held-out split the cache
    stores. Control: a cache from an older prepare (no held-out split) is a one-line error saying to
    prepare it again, and --data with the original spec still works."""
    folder = _photo_folder(tmp_path / "photos")
    cache = tmp_path / "prepared"
    prepared = CliRunner().invoke(app, ["prepare", f"folder:{folder}", "--out", str(cache), "--size", "32",
                                        "--no-progress"])
    assert prepared.exit_code == 0, prepared.output
    n_test = json.loads((cache / "manifest.json").read_text())["held_out"]["count"]
    assert 1 <= n_test <= 20
    assert f"prepared {60 - n_test} train images" in prepared.output and f"held-out: {n_test} images" in prepared.output
    ckpt = _checkpoint_on(f"prepared:{cache}", tmp_path / "ck")
    result = _memorization_cli(ckpt, tmp_path / "out", tmp_path / "feat")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "memorization.json").read_text())["counts"]["test"] == n_test

    manifest = json.loads((cache / "manifest.json").read_text())
    del manifest["held_out"]  # an older prepare
    (cache / "manifest.json").write_text(json.dumps(manifest))
    old = _memorization_cli(ckpt, tmp_path / "out2", tmp_path / "feat")
    assert old.exit_code == 2 and old.output.count("\n") == 1, old.output
    assert old.output.startswith("error: ") and f"run `dcgan-viz prepare folder:{folder} --out {cache}` again" \
        in old.output
    override = _memorization_cli(ckpt, tmp_path / "out3", tmp_path / "feat", "--data", f"folder:{folder}")
    assert override.exit_code == 0, override.output
