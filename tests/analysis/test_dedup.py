"""Near-duplicate grouping: planted copies found, distinct images not merged; CLI writes a filtered cache."""

from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from dcgan_viz.analysis.dedup import find_duplicates, hamming, near_pairs, pair_scores, plant_duplicates
from dcgan_viz.cli import app
from dcgan_viz.data.prepare import Chunk, Stream, open_prepared, write_prepared
from dcgan_viz.data.spec import DataSpec

torch.set_num_threads(1)


def _distinct(n: int, seed: int = 0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.interpolate(torch.rand(n, 1, 6, 6, generator=g), size=32, mode="bicubic")
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_near_pairs_equal_all_pairs_search() -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(300, 4), dtype=np.uint8)
    codes[150:160] = codes[:10] ^ np.uint8(1 << 3)  # 1 bit away
    codes[160:170] = codes[10:20] ^ np.array([7, 0, 0, 0], np.uint8)  # 3 bits away
    i, j = np.triu_indices(len(codes), 1)
    d = hamming(codes[i], codes[j])
    for radius in (0, 1, 3):
        pairs, truncated = near_pairs(codes, radius)
        expected = np.stack([i[d <= radius], j[d <= radius]], 1)
        assert truncated == 0
        np.testing.assert_array_equal(pairs, expected)


def test_planted_copies_found_distinct_not_merged() -> None:
    base = _distinct(200)
    images, truth, kinds = plant_duplicates(base, 30, seed=0)
    result = find_duplicates(images, "phash", radius=4)
    scores = pair_scores(result, truth)
    assert scores["recall"] == 1.0 and scores["precision"] == 1.0
    np.testing.assert_array_equal(result.keep, np.arange(200))
    assert pair_scores(find_duplicates(base, "phash", radius=4), truth[:0])["predicted_pairs"] == 0


def test_shift_probes_are_needed_for_shifted_copies() -> None:
    images, truth, kinds = plant_duplicates(_distinct(200), 30, seed=0)
    shift = np.array(kinds) == "shift"
    unprobed = find_duplicates(images, "phash", radius=4, max_shift=0)
    assert pair_scores(unprobed, truth[shift])["recall"] < 0.8


def test_semantic_hash_reports_progress_on_stderr(capsys) -> None:
    """Training and hashing (25 shifts) report progress lines on stderr; without show_progress, nothing."""
    images = _distinct(40)
    find_duplicates(images, "semantic", steps=20, show_progress=True)
    err = capsys.readouterr().err.splitlines()
    assert "semantic hash: training the autoencoder: 20/20 step (100%)" in [line.rsplit(",", 1)[0] for line in err]
    assert any(line.startswith(f"hashing (every shift): {40 * 25}/{40 * 25} img (100%)") for line in err)
    find_duplicates(images, "semantic", steps=20)
    assert capsys.readouterr().err == ""


def test_semantic_hash_finds_planted_copies() -> None:
    images, truth, _ = plant_duplicates(_distinct(300), 30, seed=1)
    scores = pair_scores(find_duplicates(images, "semantic", steps=1000), truth)
    assert scores["recall"] >= 0.9 and scores["precision"] == 1.0


def test_dedup_cli_writes_report_and_filtered_cache(tmp_path) -> None:
    stream = Stream(iter([Chunk(images=_distinct(48))]), 48, "smooth-48")
    write_prepared(stream, DataSpec(source="random", size=32, channels=1), tmp_path / "set", progress=False)
    out = tmp_path / "out"
    args = ["dedup", f"prepared:{tmp_path / 'set'}", "--out", str(out), "--method", "phash",
            "--plant", "9", "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "dedup.json").read_text())
    assert report["kept"] == 48 and report["planted"]["recall"] == 1.0 and report["planted"]["precision"] == 1.0
    filtered = open_prepared(out / "filtered")
    assert len(filtered) == 48
    bad = CliRunner().invoke(app, ["dedup", "nosuch:x", "--out", str(out)])
    assert bad.exit_code == 2 and "error:" in bad.output


def test_semantic_hash_input_ignores_recolouring_but_not_content() -> None:
    from dcgan_viz.analysis.dedup import _hash_input

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0.2, 0.8, size=(4, 3, 32, 32)).astype(np.float32))
    recoloured = x * torch.tensor([0.9, 1.05, 1.1]).view(1, 3, 1, 1) + 0.03  # per-channel gain and offset
    torch.testing.assert_close(_hash_input(recoloured), _hash_input(x), atol=1e-4, rtol=0)
    other = torch.from_numpy(rng.uniform(0.2, 0.8, size=(4, 3, 32, 32)).astype(np.float32))
    assert (_hash_input(other) - _hash_input(x)).abs().mean() > 0.3  # control: different content moves the input
