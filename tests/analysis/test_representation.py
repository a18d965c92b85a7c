"""Pooled D features (length per image size), the L2-SVM on a toy problem, the accuracy table,
the UMAP result, and an end-to-end `dcgan-viz represent` on a tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dcgan_viz.analysis.filters import random_discriminator
from dcgan_viz.analysis.representation import (
    UmapResult,
    feature_length,
    fit_real_map,
    fit_bytes,
    fit_svm,
    label_subset,
    pixel_features,
    pooled_features,
    select_c,
    svm_table,
    umap_embedding,
)
from dcgan_viz.checkpoint import load_checkpoint, save_checkpoint
from dcgan_viz.data.sources import FASHION_MNIST_DIR
from dcgan_viz.data.spec import DataSpec, ImageSet
from dcgan_viz.models import ModelConfig, build_models

torch.set_num_threads(1)


@pytest.mark.parametrize("size,expected", [(32, (4 + 8 + 16) * 16), (64, (4 + 8 + 16 + 32) * 16),
                                           (128, (4 + 8 + 16 + 32 + 64) * 16)])
def test_feature_length(size: int, expected: int) -> None:
    cfg = ModelConfig(image_size=size, ndf=4, nc=1)
    assert feature_length(cfg) == expected
    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 1), dtype=np.uint8)
    feats = pooled_features(random_discriminator(cfg), images, batch_size=2)
    assert feats.shape == (3, expected) and feats.dtype == np.float32


def test_pooling_is_max_over_4x4_cells() -> None:
    cfg = ModelConfig(image_size=32, ndf=4, nc=1)
    D = random_discriminator(cfg)
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
    first = D.features(torch.as_tensor(images).permute(0, 3, 1, 2).float() / 127.5 - 1, ["conv1"])["conv1"]  # (2, 4, 16, 16)
    cell = first[:, :, :4, 4:8].amax(dim=(2, 3))  # cell (0, 1) of each channel
    feats = pooled_features(D, images)
    np.testing.assert_allclose(feats[:, 1 : 4 * 16 : 16], cell.numpy(), rtol=1e-6)


def test_pixel_features_and_label_subset() -> None:
    px = pixel_features(np.array([[[[0], [255]]]], np.uint8))
    np.testing.assert_allclose(px, [[-1.0, 1.0]])
    labels = np.repeat(np.arange(5), [30, 2, 30, 30, 30])
    idx = label_subset(labels, 20, seed=3)
    assert len(idx) == 20 and len(set(idx)) == 20
    assert np.bincount(labels[idx], minlength=5).tolist() == [5, 2, 5, 4, 4]  # balanced, rare class all in
    assert np.array_equal(idx, label_subset(labels, 20, seed=3))


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three linearly separable Gaussian blobs in 5-D."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return (np.eye(3, 5)[y] * 6 + rng.normal(size=(n, 5))).astype(np.float32), y


def test_svm_on_separable_toy() -> None:
    (x, y), (tx, ty) = _toy(90, 0), _toy(60, 1)
    C, cv = select_c(x, y, Cs=(0.01, 1.0))
    assert C in (0.01, 1.0) and cv > 0.95
    score = fit_svm(x, y, tx, ty, C, "toy", cv)
    assert score.accuracy == 1.0 and score.dim == 5 and score.n_train == 90
    noise = np.random.default_rng(2).normal(size=x.shape).astype(np.float32)
    table = svm_table({"toy": (x, tx), "noise": (noise, noise[:60])}, y, ty, label_counts=(None, 30))
    acc = {(s["features"], s["n_train"]): s["accuracy"] for s in table.scores}
    assert acc[("toy", 90)] == 1.0 and acc[("toy", 30)] > 0.95 and acc[("noise", 90)] < 0.7
    assert "| toy | 30 |" in table.markdown()


def test_fit_svm_equals_the_scaler_pipeline_and_memory_limits_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from dcgan_viz.analysis import representation as rep

    (x, y), (tx, ty) = _toy(90, 0), _toy(60, 1)
    noise = np.random.default_rng(2).normal(size=tx.shape).astype(np.float32)
    ty_noisy = np.where(np.arange(60) % 4 == 0, (ty + 1) % 3, ty)  # some errors, so accuracy is informative
    lean = fit_svm(x, y, tx + noise, ty_noisy, C=0.01)
    reference = rep._svm(0.01, 0).fit(x, y).score(tx + noise, ty_noisy)
    assert lean.accuracy == pytest.approx(reference) and 0.5 < lean.accuracy < 1.0
    assert fit_bytes(60000, 7168) > 10e9  # the 60,000-label Fashion-MNIST fit that once ran out of memory
    workers = []
    real_pool = rep.ThreadPoolExecutor
    monkeypatch.setattr(rep, "ThreadPoolExecutor", lambda n: workers.append(n) or real_pool(n))
    features = {"toy": (x, tx), "noise": (noise.repeat(2, 0)[:90], noise)}
    wide = svm_table(features, y, ty, label_counts=(None, 30), n_jobs=2)
    monkeypatch.setattr(rep, "available_bytes", lambda: fit_bytes(90, 5) + 1)  # room for one fit at a time
    narrow = svm_table(features, y, ty, label_counts=(None, 30), n_jobs=2)
    assert workers[-1] == 1 and workers[-6] == 2  # [C selection per feature set and budget x4, fits] per table
    assert workers[-5:-1] == [1, 1, 1, 1]  # C selection is memory-limited too
    assert wide.scores == narrow.scores


def test_c_is_chosen_on_each_label_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every budget gets its own CV on its own labels; a budget above CV_MAX_LABELS chooses C on a
    subset and fits C_cv * n_cv / n_fit, while a budget within it fits the C its CV chose (control)."""
    from dcgan_viz.analysis import representation as rep

    (x, y), (tx, ty) = _toy(90, 0), _toy(60, 1)
    calls = []
    monkeypatch.setattr(rep, "select_c", lambda xs, ys, **kw: calls.append(len(ys)) or (0.1 * len(ys), 0.9))
    table = svm_table({"toy": (x, tx)}, y, ty, label_counts=(None, 30))
    assert calls == [90, 30]
    rows = {s["n_train"]: s for s in table.scores}
    assert rows[90]["C"] == pytest.approx(9.0) and rows[30]["C"] == pytest.approx(3.0)
    assert (rows[90]["cv_labels"], rows[30]["cv_labels"]) == (90, 30)
    calls.clear()
    monkeypatch.setattr(rep, "CV_MAX_LABELS", 45)
    table = svm_table({"toy": (x, tx)}, y, ty, label_counts=(None, 30))
    assert calls == [45, 30]
    rows = {s["n_train"]: s for s in table.scores}
    assert rows[90]["C_cv"] == pytest.approx(4.5) and rows[90]["C"] == pytest.approx(4.5 * 45 / 90)
    assert rows[30]["C"] == rows[30]["C_cv"] == pytest.approx(3.0)
    assert "| toy | 90 | 5 | 2.25 | 45 |" in table.markdown()


def test_each_fit_records_whether_it_converged(monkeypatch: pytest.MonkeyPatch) -> None:
    from dcgan_viz.analysis import representation as rep

    (x, y), (tx, ty) = _toy(90, 0), _toy(60, 1)
    noise = np.random.default_rng(3).normal(size=(90, 40)).astype(np.float32)  # not separable: hard to fit
    assert fit_svm(x, y, tx, ty, C=0.01).converged  # control: an easy fit converges
    monkeypatch.setattr(rep, "MAX_ITER", 2)
    hard = fit_svm(noise, y, noise[:60], ty, C=100.0)
    assert not hard.converged
    table = svm_table({"noise": (noise, noise[:60])}, y, ty, label_counts=(None,))
    assert [s["converged"] for s in table.scores] == [False]
    assert "| no (2 iterations) |" in table.markdown() and "stopped at 2 liblinear iterations" in table.markdown()


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        G, D = build_models(ModelConfig(image_size=32, nz=16, ngf=8, ndf=8))
    return save_checkpoint(tmp_path / "tiny", G, D, data=DataSpec(source="rooms", size=32, count=64, test_count=16))


@pytest.mark.slow
def test_umap_result_and_cache(tiny_checkpoint: Path, tmp_path: Path) -> None:
    bundle = load_checkpoint(tiny_checkpoint, device="cpu")
    rng = np.random.default_rng(0)
    real = ImageSet(spec=DataSpec(source="random", size=32), images=rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8),
                    labels=np.arange(30) % 3, label_names=("a", "b", "c"))
    emb = umap_embedding(bundle, real, n_real=25, n_generated=10, n_neighbors=5, cache_dir=tmp_path / "c")
    assert emb.coords.shape == (35, 2) and np.isfinite(emb.coords).all()
    assert emb.generated.sum() == 10 and emb.labels[25:].tolist() == [-1] * 10
    assert emb.index.tolist() == list(range(25)) + list(range(10))
    again = umap_embedding(bundle, real, n_real=25, n_generated=10, n_neighbors=5, cache_dir=tmp_path / "c")
    assert isinstance(again, UmapResult) and np.array_equal(again.coords, emb.coords)
    from dcgan_viz.plots.representation import umap_figure

    fig = umap_figure(again)
    assert [t.name for t in fig.data] == ["a", "b", "c", "generated"]
    projected = umap_embedding(bundle, real, n_real=25, n_generated=10, n_neighbors=5, mode="projected")
    assert projected.coords.shape == (35, 2) and np.isfinite(projected.coords).all()
    with pytest.raises(ValueError, match="mode must be one of joint, projected"):
        umap_embedding(bundle, real, n_real=25, n_generated=10, mode="tsne")


def test_real_map_projects_points_next_to_their_own_kind() -> None:
    """A map of two real clusters (different directions in feature space, as cosine sees them):
    new members of each cluster land among their own kind (the case that must be placed), and a
    point between the two lands in neither cluster's core (the control)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=64), rng.normal(size=64)
    real = np.concatenate([a + 0.3 * rng.normal(size=(60, 64)), b + 0.3 * rng.normal(size=(60, 64))]).astype(np.float32)
    fitted = fit_real_map(real, seed=0, n_neighbors=10)
    assert fitted.coords.shape == (120, 2)
    centre_a, centre_b = fitted.coords[:60].mean(0), fitted.coords[60:].mean(0)
    new = np.concatenate([a + 0.3 * rng.normal(size=(10, 64)), b + 0.3 * rng.normal(size=(10, 64))]).astype(np.float32)
    placed = fitted.project(new)
    to_a = np.linalg.norm(placed - centre_a, axis=1)
    to_b = np.linalg.norm(placed - centre_b, axis=1)
    assert (to_a[:10] < to_b[:10]).all() and (to_b[10:] < to_a[10:]).all()
    assert fitted.project(np.empty((0, 64), np.float32)).shape == (0, 2)
    again = fit_real_map(real, seed=0, n_neighbors=10)
    assert np.array_equal(again.coords, fitted.coords)  # seeded: the same map twice
    with pytest.raises(ValueError, match=r"UMAP seed must be in \[0, 2\*\*32\)"):
        fit_real_map(real, seed=2**32)
    with pytest.raises(ValueError, match="at least 3 images"):
        fit_real_map(real[:2])


@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(), reason="Fashion-MNIST files not installed")
def test_represent_cli(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from dcgan_viz.cli import app

    out = tmp_path / "out"
    args = ["represent", str(tiny_checkpoint), "--data", "fashion-mnist", "--out", str(out), "--train-count", "60",
            "--test-count", "30", "--labels", "30", "--umap-real", "0", "--device", "cpu", "--cache-dir", str(tmp_path / "c")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = json.loads((out / "accuracy.json").read_text())
    assert {(s["features"], s["n_train"]) for s in table["scores"]} == {
        (f, n) for f in ("trained D", "random D", "pixels") for n in (60, 30)}
    assert (out / "accuracy.md").read_text().startswith("| features |") and (out / "accuracy.html").is_file()
    bad = CliRunner().invoke(app, ["represent", str(tiny_checkpoint), "--data", "rooms:count=20", "--out", str(out),
                                   "--train-count", "20", "--test-count", "10", "--labels", "10", "--device", "cpu",
                                   "--cache-dir", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "has no labels" in bad.output
