"""Issue #18 (Reliability): each item found has a test here that failed before its fix.

Items: 1 prepare replacing foreign data, 2 a fresh train mixing with an existing run, 3 wrong-typed /
deeply nested checkpoint.json, 4 sizes checked from the safetensors header before building nets,
5 output paths, 6 --device, 7 huge outputs, 8 nonsense accepted, 9 resume recovery, 10 leftovers
and a cache corrupted in place. docs/reliability.md names these tests.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dcgan_viz.checkpoint import CheckpointError, load_checkpoint, run_checkpoints, save_checkpoint
from dcgan_viz.cli import app
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import ModelConfig, build_models
from dcgan_viz.train import TrainConfig, Trainer

runner = CliRunner()
SPEC = DataSpec(source="random", size=32, count=64)
TINY_TRAIN = ["--data", "rooms:count=32,test_count=8", "--image-size", "32", "--ngf", "8", "--ndf", "8", "--nz", "16",
              "--batch-size", "16", "--device", "cpu", "--no-progress"]


def one_line_error(res, *needles: str) -> str:
    """exit 2, exactly one output line starting ``error:``, no traceback; returns the line."""
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def ckpt(tmp_path: Path, tiny_cfg: ModelConfig) -> Path:
    G, D = build_models(tiny_cfg)
    return save_checkpoint(tmp_path / "ck", G, D, data=DataSpec(source="rooms", size=32, count=100), step=3, epoch=1)


def _edit_meta(ckpt: Path, **changes) -> None:
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            meta[section][field] = value
        else:
            meta[section] = value
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))


def _trainer(run: Path, steps: int, tiny_cfg: ModelConfig, images: torch.Tensor, resume: bool = False,
             every: int = 2, keep: int = 10) -> Trainer:
    cfg = TrainConfig(max_steps=steps, batch_size=16, checkpoint_every=every, keep_checkpoints=keep, progress=False,
                      device="cpu")
    return Trainer(tiny_cfg, cfg, SPEC, images, run, resume=resume)


# -- 1: prepare never replaces what it did not write -----------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", "subfolder", "file"])
def test_item1_prepare_refuses_foreign_out(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "d"
    if kind == "file":
        out.write_text("hi\n")
    else:
        (out / ("thesis" if kind == "subfolder" else "")).mkdir(parents=True, exist_ok=True)
        (out / ("thesis" if kind == "subfolder" else "") / "notes.txt").write_text("hi\n")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    one_line_error(runner.invoke(app, ["prepare", "rooms:count=10", "--size", "32", "--out", str(out), "--no-progress"]))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing replaced, nothing left behind
    if kind != "file":
        from dcgan_viz.data.prepare import DataError, prepare

        with pytest.raises(DataError, match="not a prepared cache"):  # the library refuses too
            prepare(DataSpec.parse("rooms:count=10", size=32), out, progress=False)


def test_item1_prepare_replaces_its_own_cache(tmp_path: Path) -> None:
    out = tmp_path / "c"
    for count in (10, 12):
        res = runner.invoke(app, ["prepare", f"rooms:count={count}", "--size", "32", "--out", str(out), "--no-progress"])
        assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["count"] == 12
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


# -- 2: a fresh train never mixes with a run already there --------------------------------------------------


def test_item2_fresh_train_into_a_run_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "R"
    assert runner.invoke(app, ["train", *TINY_TRAIN, "--max-steps", "4", "--checkpoint-every", "2", "--out", str(run)]).exit_code == 0
    snapshot = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    one_line_error(runner.invoke(app, ["train", *TINY_TRAIN, "--max-steps", "2", "--out", str(run)]), "--resume")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == snapshot


def test_item2_trainer_refuses_to_mix(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    _trainer(tmp_path, 2, tiny_cfg, tiny_images).run()
    with pytest.raises(ValueError, match="holds a training run"):
        _trainer(tmp_path, 2, tiny_cfg, tiny_images)


def test_item2_run_killed_before_first_checkpoint_restarts_clean(tmp_path: Path, tiny_cfg: ModelConfig,
                                                                 tiny_images: torch.Tensor) -> None:
    run = tmp_path / "R"
    _trainer(run, 3, tiny_cfg, tiny_images, every=100).run()
    shutil.rmtree(run / "checkpoints")  # as if killed before its first checkpoint (log and run.json written)
    final = _trainer(run, 4, tiny_cfg, tiny_images, every=100).run()
    steps = [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4] and final.is_dir()


def test_item2_printed_checkpoint_exists_and_pruning_keeps_it(tmp_path: Path, tiny_cfg: ModelConfig,
                                                               tiny_images: torch.Tensor) -> None:
    run = tmp_path / "R"
    _trainer(run, 4, tiny_cfg, tiny_images, every=2).run()
    (run / "checkpoints" / "step-00000120").mkdir()  # a newer checkpoint (e.g. damaged, skipped by resume)
    shutil.copy(run / "checkpoints" / "step-00000004" / "checkpoint.json", run / "checkpoints" / "step-00000120")
    final = _trainer(run, 6, tiny_cfg, tiny_images, resume=True, every=2, keep=1).run()
    assert final.is_dir() and final.name == "step-00000006"


# -- 3: checkpoint.json of the wrong shape: one line, exit 2 --------------------------------------------------

BAD_META = {
    "data_str": {"data": "abc"},
    "metrics_str": {"metrics": "abc"},
    "model_int": {"model": 5},
    "ngf_str": {"model__ngf": "64"},
    "ngf_float": {"model__ngf": 64.5},
    "nz_huge": {"model__nz": 1e30},
    "ngf_bool": {"model__ngf": True},
    "size_str": {"data__size": "32"},
    "train_list": {"train": [1, 2]},
    "step_str": {"step": "7"},
}


@pytest.mark.parametrize("verb", ["info", "sample"])
@pytest.mark.parametrize("case", sorted(BAD_META))
def test_item3_wrong_types_are_one_line_errors(ckpt: Path, tmp_path: Path, verb: str, case: str) -> None:
    _edit_meta(ckpt, **BAD_META[case])
    args = [verb, str(ckpt)] + (["--out", str(tmp_path / "s.png"), "--device", "cpu"] if verb == "sample" else [])
    one_line_error(runner.invoke(app, args), str(ckpt))


@pytest.mark.parametrize("verb", ["info", "sample"])
def test_item3_deep_nesting_is_one_line_error(ckpt: Path, tmp_path: Path, verb: str) -> None:
    (ckpt / "checkpoint.json").write_text("[" * 200_000 + "]" * 200_000)
    args = [verb, str(ckpt)] + (["--out", str(tmp_path / "s.png"), "--device", "cpu"] if verb == "sample" else [])
    one_line_error(runner.invoke(app, args), "nested")


# -- 4: sizes bounded, shapes checked from the header before the nets are built ---------------------------------


def test_item4_huge_width_is_refused_without_allocating(ckpt: Path) -> None:
    _edit_meta(ckpt, model__ngf=1_000_000_000)
    t0 = time.perf_counter()
    one_line_error(runner.invoke(app, ["sample", str(ckpt), "--device", "cpu", "--out", str(ckpt.parent / "s.png")]),
                   "ngf")
    assert time.perf_counter() - t0 < 10


def test_item4_config_against_weights_from_the_header(ckpt: Path) -> None:
    # ngf=1500 is a legal config (~1.2 GB of weights) that does not fit the stored 8-wide weights: refused
    # from the safetensors header, before Generator(cfg) allocates anything
    _edit_meta(ckpt, model__ngf=1500)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="do not fit the model config"):
        load_checkpoint(ckpt, device="cpu")
    assert time.perf_counter() - t0 < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 500 * 1024  # KiB: far below 1.2 GB


def test_item4_model_config_bounds() -> None:
    for bad in ({"ngf": "64"}, {"ngf": 64.5}, {"nz": 10**30}, {"ngf": True}, {"image_size": 64.0}, {"ndf": 0},
                {"image_size": 128, "ngf": 2048}):
        with pytest.raises(ValueError):
            ModelConfig(**bad)
    assert ModelConfig(nc=np.int64(1)).nc == 1


# -- 5: output paths ------------------------------------------------------------------------------------------


def _unwritable(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o500)
        return d / "out"
    try:  # root ignores permissions: /sys is mounted read-only in containers
        import tempfile

        fd, probe = tempfile.mkstemp(dir="/sys")
        os.close(fd)
        os.unlink(probe)
    except OSError:
        return Path("/sys/dcgan-viz-test-out")
    pytest.skip("no unwritable location available as root")


def test_item5_train_out_checked_before_loading_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dcgan_viz.data.loading as loading

    def boom(*a, **k):
        raise AssertionError("data loaded before the output path was checked")

    monkeypatch.setattr(loading, "load_imageset", boom)
    (tmp_path / "file").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.tex").write_text("x")
    one_line_error(runner.invoke(app, ["train", *TINY_TRAIN, "--out", str(tmp_path / "file")]), "existing file")
    one_line_error(runner.invoke(app, ["train", *TINY_TRAIN, "--out", str(tmp_path / "foreign")]), "not written by dcgan-viz")
    one_line_error(runner.invoke(app, ["train", *TINY_TRAIN, "--out", str(_unwritable(tmp_path))]), "not writable")
    assert (tmp_path / "file").read_text() == "x" and (tmp_path / "foreign" / "thesis.tex").read_text() == "x"


def test_item5_analysis_and_sample_outputs(ckpt: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    one_line_error(runner.invoke(app, ["memorization", str(ckpt), "--out", str(tmp_path / "file"), "--device", "cpu"]),
                   "existing file")
    one_line_error(runner.invoke(app, ["sample", str(ckpt), "--out", str(tmp_path), "--device", "cpu"]), "is a directory")
    one_line_error(runner.invoke(app, ["sample", str(ckpt), "--out", str(tmp_path / "file"), "--device", "cpu"]),
                   "not written by dcgan-viz")
    one_line_error(runner.invoke(app, ["sample", str(ckpt), "--out", str(_unwritable(tmp_path) / "s.png"),
                                       "--device", "cpu"]), "not writable")
    png = tmp_path / "s.png"
    for _ in range(2):  # its own PNG is replaced
        assert runner.invoke(app, ["sample", str(ckpt), "--out", str(png), "--n", "4", "--device", "cpu"]).exit_code == 0
    assert (tmp_path / "file").read_text() == "x"


def test_item5_save_checkpoint_refuses_foreign_dir(tmp_path: Path, tiny_cfg: ModelConfig) -> None:
    G, D = build_models(tiny_cfg)
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "ch1.tex").write_text("x")
    (tmp_path / "file").write_text("x")
    for dest in ("thesis", "file"):
        with pytest.raises(CheckpointError):
            save_checkpoint(tmp_path / dest, G, D, data=SPEC)
    assert (tmp_path / "thesis" / "ch1.tex").read_text() == "x" and (tmp_path / "file").read_text() == "x"
    save_checkpoint(tmp_path / "ck", G, D, data=SPEC)
    save_checkpoint(tmp_path / "ck", G, D, data=SPEC, step=1)  # its own checkpoint is replaced
    assert json.loads((tmp_path / "ck" / "checkpoint.json").read_text())["step"] == 1


def test_item5_oserror_is_one_line_last_defence(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dcgan_viz.images as images

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "s.png"))

    monkeypatch.setattr(images, "save_png", denied)
    one_line_error(runner.invoke(app, ["sample", str(ckpt), "--out", str(tmp_path / "s.png"), "--n", "4",
                                       "--device", "cpu"]), "Permission denied")


# -- 6: --device ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["tpu", "cuda:7", "cuda"])
@pytest.mark.parametrize("verb", ["sample", "memorization", "filters", "interpolate"])
def test_item6_bad_device_is_one_line_error(ckpt: Path, tmp_path: Path, device: str, verb: str) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    out = tmp_path / ("s.png" if verb in ("sample", "interpolate") else "o")
    one_line_error(runner.invoke(app, [verb, str(ckpt), "--device", device, "--out", str(out)]), device)


def test_item6_dashboard_device_checked_before_serving(ckpt: Path) -> None:
    one_line_error(runner.invoke(app, ["dashboard", "--checkpoints", str(ckpt.parent), "--device", "tpu"]), "tpu")


def test_item6_one_resolver() -> None:
    from dcgan_viz.devices import resolve_device
    from dcgan_viz.evaluation.training import resolve_device as eval_resolve

    assert resolve_device("cpu") == eval_resolve("cpu") == torch.device("cpu")
    for bad in ("tpu", "gpu0", "meta"):
        with pytest.raises(ValueError, match="device"):
            eval_resolve(bad)


# -- 7: outputs that would not fit in memory are refused before allocating --------------------------------------


def test_item7_huge_scale_and_size(ckpt: Path, tmp_path: Path) -> None:
    one_line_error(runner.invoke(app, ["sample", str(ckpt), "--scale", "100000", "--device", "cpu",
                                       "--out", str(tmp_path / "s.png")]), "smaller scale")
    one_line_error(runner.invoke(app, ["prepare", "rooms:count=10", "--size", "100000", "--out", str(tmp_path / "c")]),
                   "image size")
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "c").exists()


def test_item7_big_chunks_shrink(tmp_path: Path) -> None:
    from dcgan_viz.data.loading import CHUNK_SIZE, chunk_size

    assert chunk_size(64, 3) == CHUNK_SIZE and chunk_size(4096, 3) * 4096 * 4096 * 3 <= 256 << 20


# -- 8: nonsense is refused, not silently accepted ----------------------------------------------------------------


@pytest.mark.parametrize("option", [["--max-steps", "-3"], ["--keep-checkpoints", "0"], ["--checkpoint-every", "-1"],
                                    ["--batch-size", "1"], ["--lr", "-1"]])
def test_item8_train_nonsense(tmp_path: Path, option: list[str]) -> None:
    one_line_error(runner.invoke(app, ["train", *TINY_TRAIN, *option, "--out", str(tmp_path / "r")]), option[0][2:].replace("-", "_"))
    assert not (tmp_path / "r").exists()


def test_item8_sample_scale_zero(ckpt: Path, tmp_path: Path) -> None:
    one_line_error(runner.invoke(app, ["sample", str(ckpt), "--scale", "0", "--out", str(tmp_path / "s.png")]), "scale")


@pytest.mark.parametrize("version", [True, -3, 0, "1", 1.0, None])
def test_item8_format_version_must_be_a_positive_int(ckpt: Path, version) -> None:
    _edit_meta(ckpt, format_version=version)
    line = one_line_error(runner.invoke(app, ["info", str(ckpt)]), "format_version must be")
    assert "newer" not in line


def test_item8_wrong_types_not_reported_as_newer(ckpt: Path) -> None:
    _edit_meta(ckpt, format_version="64", model="x", data=[], step="s")
    line = one_line_error(runner.invoke(app, ["info", str(ckpt)]))
    assert "newer" not in line


def test_item8_info_on_truncated_weights_fails(ckpt: Path) -> None:
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) - 100])
    one_line_error(runner.invoke(app, ["info", str(ckpt)]), "truncated")


# -- 9: resume recovers from a partial log line and a damaged newest checkpoint ------------------------------------


def test_item9_partial_last_log_line(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    run = tmp_path / "R"
    _trainer(run, 4, tiny_cfg, tiny_images).run()
    with open(run / "log.jsonl", "a") as fh:
        fh.write('{"step": 5, "epoch": 1, "loss_d"')  # killed mid-write
    _trainer(run, 6, tiny_cfg, tiny_images, resume=True).run()
    assert [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_item9_corrupt_earlier_log_line_names_the_file(tmp_path: Path, tiny_cfg: ModelConfig,
                                                        tiny_images: torch.Tensor) -> None:
    run = tmp_path / "R"
    _trainer(run, 4, tiny_cfg, tiny_images).run()
    lines = (run / "log.jsonl").read_text().splitlines()
    lines[1] = lines[1][:20]
    (run / "log.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(CheckpointError, match=r"log\.jsonl: line 2 is corrupt"):
        _trainer(run, 6, tiny_cfg, tiny_images, resume=True)


@pytest.mark.parametrize("damage", ["json", "no_json", "weights", "sha", "state", "no_state"])
def test_item9_damaged_newest_checkpoint_falls_back(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor,
                                                    damage: str, caplog: pytest.LogCaptureFixture) -> None:
    full = _trainer(tmp_path / "full", 6, tiny_cfg, tiny_images)
    full.run()
    run = tmp_path / "R"
    _trainer(run, 4, tiny_cfg, tiny_images).run()
    newest = run_checkpoints(run)[-1]
    if damage == "json":
        (newest / "checkpoint.json").write_text('{"format": "dcgan-viz-checkpoint", "form')
    elif damage == "no_json":  # not listed as a checkpoint any more; its directory is replaced at step 4
        (newest / "checkpoint.json").unlink()
    elif damage == "no_state":
        (newest / "train_state.pt").unlink()
    elif damage == "weights":
        data = (newest / "model.safetensors").read_bytes()
        (newest / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "sha":
        data = bytearray((newest / "model.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (newest / "model.safetensors").write_bytes(bytes(data))
    else:
        (newest / "train_state.pt").write_bytes(b"PK\x03\x04garbage")
    with caplog.at_level("WARNING"):
        resumed = _trainer(run, 6, tiny_cfg, tiny_images, resume=True)
    assert resumed.step == 2 and resumed.resumed_from.name == "step-00000002"
    if damage != "no_json":
        assert "skipped damaged" in caplog.text and "step-00000004" in caplog.text
    resumed.run()
    assert all(torch.equal(a, b) for a, b in zip(full.G.state_dict().values(), resumed.G.state_dict().values()))
    assert [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


# -- 10: leftovers of interrupted saves and prepares; a cache corrupted in place -------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_item10_stale_checkpoint_temps_removed(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    run = tmp_path / "R"
    _trainer(run, 2, tiny_cfg, tiny_images).run()
    dead, live = _dead_pid(), os.getppid()
    stale = [run / "checkpoints" / f".step-00000004.tmp-{dead}", run / "checkpoints" / f".step-00000002.old-{dead}",
             run / "samples" / f".epoch_001.png.{dead}.abcd1234.tmp", run / f".run.json.{dead}.x1y2z3w4.tmp"]
    kept = [run / "checkpoints" / f".step-00000006.tmp-{live}", run / "checkpoints" / "notes.txt", run / "my.tmp"]
    for p in stale + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.mkdir() if "step" in p.name else p.write_text("x"))
    _trainer(run, 4, tiny_cfg, tiny_images, resume=True).run()
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_item10_stale_prepare_temps_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = tmp_path / f".prep.{dead}.abcd1234.tmp"
    stale.mkdir()
    (stale / "images.u8").write_bytes(b"x")
    legacy = tmp_path / ".prep.ab12cd34.tmp"
    legacy.mkdir()
    (legacy / "images.u8").write_bytes(b"x")
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    other = tmp_path / f".other.{dead}.abcd1234.tmp"  # another cache's temp: not ours to judge here
    other.mkdir()
    res = runner.invoke(app, ["prepare", "rooms:count=10", "--size", "32", "--out", str(tmp_path / "prep"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert not stale.exists() and not legacy.exists() and other.exists()


def test_item10_cache_corrupted_in_place_is_rebuilt(tmp_path: Path) -> None:
    from dcgan_viz.data.prepare import prepare

    spec = DataSpec.parse("rooms:count=10", size=32)
    good = np.array(prepare(spec, tmp_path / "c", progress=False).images)
    raw = tmp_path / "c" / "images.u8"
    data = bytearray(raw.read_bytes())
    data[100:200] = bytes(100)  # same size, different bytes
    raw.write_bytes(bytes(data))
    again = prepare(spec, tmp_path / "c", progress=False)
    assert np.array_equal(np.array(again.images), good)
