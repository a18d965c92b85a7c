"""`dcgan-viz arithmetic` (user mode), `interpolate` (and its hidden `walk` alias) end to end on a
tiny checkpoint; bad input is a one-line error, exit 2. The measuring verbs (`arithmetic` measure
mode, `directions`) are tested with a toy generator / classifier in tests/analysis/test_directions.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dcgan_viz.checkpoint import save_checkpoint
from dcgan_viz.cli import app
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.latents import latents
from dcgan_viz.models import ModelConfig, build_models

torch.set_num_threads(1)
runner = CliRunner()
CFG = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    G, D = build_models(CFG)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "ck", G.eval(), D.eval(),
                           data=DataSpec(source="faces", size=32, count=64, test_count=16))


def _one_line_error(res, text: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], res.output


def test_arithmetic_user_mode_writes_png_and_json(ckpt, tmp_path) -> None:
    out = tmp_path / "a"
    res = runner.invoke(app, ["arithmetic", str(ckpt), "smile - neutral + B", "--concept", "smile=0:12,0:40,0:77",
                              "--concept", "neutral=1:3,1:4,1:5", "--concept", "B=2:0", "--concept", "unused=0:1",
                              "--neighbours", "5", "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    png = out / "arithmetic.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    meta = json.loads((out / "arithmetic.json").read_text())
    assert meta["terms"] == [[1, "smile"], [-1, "neutral"], [1, "B"]]
    assert meta["layout"]["rows"] == ["smile", "neutral", "B", "result"] and meta["layout"]["columns"] == 6
    mean = lambda pairs: torch.stack([latents(CFG, s, [i])[0] for s, i in pairs]).mean(0)  # noqa: E731
    expected = mean([(0, 12), (0, 40), (0, 77)]) - mean([(1, 3), (1, 4), (1, 5)]) + latents(CFG, 2, [0])[0]
    assert np.allclose(meta["result"], expected.numpy(), atol=1e-5)
    near = np.asarray(meta["neighbour_latents"])
    assert near.shape == (5, 16) and np.abs(near - np.clip(expected.numpy(), -1, 1)).max() <= 0.25 + 1e-5
    assert not meta["rescaled"] and abs(meta["result_norm_before_rescale"] - float(expected.norm())) < 1e-4
    # --rescale puts the result on the prior's expected norm, same direction
    res = runner.invoke(app, ["arithmetic", str(ckpt), "smile - neutral + B", "--concept", "smile=0:12,0:40,0:77",
                              "--concept", "neutral=1:3,1:4,1:5", "--concept", "B=2:0", "--rescale",
                              "--out", str(tmp_path / "r"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "r" / "arithmetic.json").read_text())
    assert abs(np.linalg.norm(r["result"]) - r["prior_norm"]) < 1e-4 and abs(r["prior_norm"] - (16 / 3) ** 0.5) < 1e-9


def test_arithmetic_user_mode_latents_file(ckpt, tmp_path) -> None:
    f = tmp_path / "latents.npy"
    np.save(f, latents(CFG, 5, 3).numpy())
    res = runner.invoke(app, ["arithmetic", str(ckpt), "me - you", "--concept", f"me={f}:0", "--concept",
                              f"you={f}:1,{f}:2", "--neighbours", "0", "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "o" / "arithmetic.json").read_text())
    z = latents(CFG, 5, 3)
    assert np.allclose(meta["result"], (z[0] - z[1:].mean(0)).numpy(), atol=1e-5)


@pytest.mark.parametrize("args, text", [
    (["smile - nope", "--concept", "smile=0:1"], "unknown concept 'nope'"),
    (["smile * 2", "--concept", "smile=0:1"], "bad expression"),
    (["__import__('os')", "--concept", "smile=0:1"], "bad expression"),
    (["smile - ", "--concept", "smile=0:1"], "ends with an operator"),
    (["smile", "--concept", "smile=0:x"], "bad exemplar"),
    (["smile", "--concept", "smile"], "bad concept"),
    (["smile", "--concept", "smile=0:1", "--concept", "smile=0:2"], "given twice"),
    (["smile"], "needs its concepts"),
    (["smile", "--concept", "smile=0:1", "--measure"], "not both"),
])
def test_arithmetic_user_mode_errors(ckpt, tmp_path, args, text) -> None:
    _one_line_error(runner.invoke(app, ["arithmetic", str(ckpt), *args, "--out", str(tmp_path / "o"),
                                        "--device", "cpu"]), text)
    assert not (tmp_path / "o").exists()


def test_arithmetic_latent_size_mismatch(ckpt, tmp_path) -> None:
    f = tmp_path / "wide.npy"
    np.save(f, np.zeros((2, 100), dtype=np.float32))  # 100-dim latents, the checkpoint has nz = 16
    _one_line_error(runner.invoke(app, ["arithmetic", str(ckpt), "a + b", "--concept", "a=0:1", "--concept",
                                        f"b={f}:0", "--out", str(tmp_path / "o"), "--device", "cpu"]),
                    "latent size mismatch")


@pytest.mark.parametrize("verb", ["interpolate", "walk"])
def test_interpolate_and_walk_alias(ckpt, tmp_path, verb) -> None:
    out = tmp_path / "i.png"
    res = runner.invoke(app, [verb, str(ckpt), "--points", "3", "--steps", "2", "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["n_images"] == 7 and len(summary["step_change"]) == 6
    _one_line_error(runner.invoke(app, [verb, str(ckpt), "--method", "cubic", "--out", str(out)]), "slerp or lerp")
    help_text = runner.invoke(app, ["--help"]).output
    assert "interpolate" in help_text and " walk " not in help_text  # the alias is hidden
