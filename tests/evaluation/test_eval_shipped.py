"""Missing evaluators: the error names the verb, the evaluator, what for and how to get it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dcgan_viz.checkpoint import save_checkpoint
from dcgan_viz.cli import app
from dcgan_viz.evaluation.shipped import SEGMENTER, Need, load_needed
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import ModelConfig, build_models

REPO = Path(__file__).resolve().parents[2]
NEED = Need("forget", "--segmenter", "a segmenter", "to label windows", "or --segmenter none --boxes FILE")


def _rooms_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    G, D = build_models(ModelConfig(image_size=32, nz=16, ngf=8, ndf=8))
    return save_checkpoint(path, G, D, data=DataSpec(source="rooms", size=32, count=64))


def test_default_evaluator_outside_the_repository_says_what_and_how(tmp_path: Path, monkeypatch) -> None:
    ckpt = _rooms_checkpoint(tmp_path / "ck")
    monkeypatch.chdir(tmp_path)  # outside the repository: the relative default does not resolve
    result = CliRunner().invoke(app, ["forget", str(ckpt), "--out", str(tmp_path / "out"), "--n", "4", "--n-fit", "4"])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    line = result.output
    assert line.startswith("error: forget needs a segmenter (--segmenter PATH) to label the --auto class")
    assert f"{SEGMENTER} not found (relative to {tmp_path})" in line and "run from the repository root" in line
    assert "--segmenter none --boxes FILE" in line
    directions = CliRunner().invoke(app, ["directions", str(ckpt), "--out", str(tmp_path / "d")])
    assert directions.exit_code == 2 and "directions needs a face-attribute classifier (--classifier PATH)" \
        in directions.output


def test_load_needed_loads_an_existing_evaluator_and_names_a_missing_one(tmp_path: Path) -> None:
    model, meta = load_needed(REPO / SEGMENTER, NEED, "segmenter")  # control: the shipped one loads
    assert meta["kind"] == "segmenter" and not model.training
    with pytest.raises(ValueError) as info:
        load_needed(tmp_path / "nowhere", NEED, "segmenter")
    message = str(info.value)
    assert message.startswith(f"forget needs a segmenter (--segmenter PATH) to label windows: {tmp_path / 'nowhere'} "
                              "not found; pass --segmenter PATH, or --segmenter none --boxes FILE")
    assert "repository root" not in message  # an explicit path elsewhere: no advice about the working directory
