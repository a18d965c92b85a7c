"""The CLI wires options to the library and turns bad input into one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dcgan_viz.cli import app

runner = CliRunner()


def test_train_sample_info_end_to_end(tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--data", "rooms:count=64,test_count=16", "--image-size", "32", "--ngf", "8",
                              "--ndf", "8", "--nz", "16", "--epochs", "2", "--batch-size", "16", "--out", str(run),
                              "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (run / "samples" / "epoch_002.png").is_file() and (run / "log.jsonl").is_file()
    res = runner.invoke(app, ["info", str(run)])
    assert res.exit_code == 0 and "image_size: 32" in res.output and "source: rooms" in res.output
    out = tmp_path / "s.png"
    res = runner.invoke(app, ["sample", str(run), "--out", str(out), "--n", "9", "--seed", "3", "--device", "cpu"])
    assert res.exit_code == 0 and out.stat().st_size > 0
    # --resume reads the run's own settings: only what changes (here the number of epochs) is given
    res = runner.invoke(app, ["train", "--out", str(run), "--epochs", "3", "--no-progress", "--resume"])
    assert res.exit_code == 0, res.output
    assert (run / "samples" / "epoch_003.png").is_file()
    info = json.loads((run / "run.json").read_text())
    assert info["model"]["ngf"] == 8
    assert [(g["start_step"], g["device"]) for g in info["segments"]] == [(0, "cpu"), (8, "cpu")]  # where each part ran
    for changed, named in ((["--ngf", "16"], "ngf=8"), (["--batch-size", "32"], "batch_size=16"),
                           (["--data", "faces"], "trained on data")):
        res = runner.invoke(app, ["train", "--out", str(run), "--epochs", "4", "--resume", *changed])
        assert res.exit_code == 2 and named in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
    assert not (run / "samples" / "epoch_004.png").exists()
    assert json.loads((run / "run.json").read_text())["segments"] == info["segments"]  # refused: nothing rewritten


def test_prepare_then_train_from_cache(tmp_path: Path) -> None:
    res = runner.invoke(app, ["prepare", "faces:count=40,test_count=8", "--size", "32", "--out", str(tmp_path / "c"),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "--data", f"prepared:{tmp_path / 'c'}", "--image-size", "32", "--ngf", "8",
                              "--ndf", "8", "--nz", "16", "--max-steps", "2", "--batch-size", "16",
                              "--out", str(tmp_path / "r"), "--device", "cpu", "--no-progress"])
    assert res.exit_code == 0, res.output


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "evil.pt").write_bytes(b"\x80\x04K\x01.")
    cases = [
        ["info", str(tmp_path / "missing")],
        ["sample", str(tmp_path / "evil.pt")],
        ["train", "--data", "nosuchsource", "--out", str(tmp_path / "r")],
        ["train", "--data", "folder:/no/such/dir", "--out", str(tmp_path / "r")],
        ["train", "--data", "rooms:count=8", "--image-size", "48", "--out", str(tmp_path / "r")],
        ["train", "--data", "rooms:count=64", "--image-size", "32", "--out", str(tmp_path / "r2"), "--resume"],
    ]
    for args in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, res.output)
        assert "Traceback" not in res.output
