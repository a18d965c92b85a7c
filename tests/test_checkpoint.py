"""Checkpoint round trip and every error case the design card names."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from dcgan_viz.checkpoint import CheckpointError, load_checkpoint, load_train_state, save_checkpoint
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import ModelConfig, build_models

SPEC = DataSpec(source="rooms", size=32, count=100)


@pytest.fixture
def ckpt(tmp_path: Path, tiny_cfg: ModelConfig) -> Path:
    G, D = build_models(tiny_cfg)
    return save_checkpoint(tmp_path / "ck", G, D, data=SPEC, step=7, epoch=2, metrics={"loss_d": 1.0},
                           train_state={"opt": {"x": torch.ones(3)}})


def test_round_trip(ckpt: Path, tiny_cfg: ModelConfig) -> None:
    b = load_checkpoint(ckpt, device="cpu")
    assert b.config == tiny_cfg and b.data == SPEC and b.meta["step"] == 7 and b.metrics == {"loss_d": 1.0}
    assert not b.G.training and not b.D.training and len(b.key) == 16
    G, D = build_models(tiny_cfg)
    G.load_state_dict(b.G.state_dict())
    assert torch.equal(load_train_state(ckpt)["opt"]["x"], torch.ones(3))


def test_fp16_weights_load_as_fp32(tmp_path: Path, tiny_cfg: ModelConfig) -> None:
    G, D = build_models(tiny_cfg)
    path = save_checkpoint(tmp_path / "h", G, D, data=SPEC, half=True)
    b = load_checkpoint(path, device="cpu")
    w = b.G.conv1.conv.weight
    assert w.dtype == torch.float32
    assert torch.allclose(w, G.conv1.conv.weight, atol=1e-3)
    assert json.loads((path / "checkpoint.json").read_text())["weights_dtype"] == "float16"


def test_run_directory_resolves_to_newest(tmp_path: Path, tiny_cfg: ModelConfig) -> None:
    G, D = build_models(tiny_cfg)
    for step in (5, 10):
        save_checkpoint(tmp_path / "run" / "checkpoints" / f"step-{step:08d}", G, D, data=SPEC, step=step)
    (tmp_path / "run" / "checkpoints" / ".step-00000015.tmp-1").mkdir()  # an interrupted write is ignored
    assert load_checkpoint(tmp_path / "run", device="cpu").meta["step"] == 10


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_checkpoint(tmp_path / "nope")


def test_directory_without_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path)


def test_missing_weights(ckpt: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(ckpt)


def test_truncated_weights(ckpt: Path) -> None:
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(ckpt)


def test_corrupt_weights_without_hash(ckpt: Path) -> None:
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    del meta["weights_sha256"]
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    (ckpt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="unreadable weights"):
        load_checkpoint(ckpt)


def test_corrupt_json(ckpt: Path) -> None:
    (ckpt / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt JSON"):
        load_checkpoint(ckpt)


def test_newer_format(ckpt: Path) -> None:
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["format_version"] = 99
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="newer than this dcgan-viz"):
        load_checkpoint(ckpt)


def test_weights_of_another_architecture(ckpt: Path) -> None:
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["model"]["ngf"] = 16
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit the model config"):
        load_checkpoint(ckpt)


class _Boom:
    def __reduce__(self):
        return (Path("/tmp/dcgan_viz_pwned").touch, ())


def test_pickle_file_is_refused_never_executed(tmp_path: Path) -> None:
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps(_Boom()))
    marker = Path("/tmp/dcgan_viz_pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="pickled checkpoints are refused"):
        load_checkpoint(evil)
    torch.save({"a": 1}, tmp_path / "zip.pt")
    with pytest.raises(CheckpointError, match="pickle/torch.save file"):
        load_checkpoint(tmp_path / "zip.pt")
    assert not marker.exists()


def test_pickled_train_state_with_code_is_refused(ckpt: Path) -> None:
    (ckpt / "train_state.pt").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(CheckpointError, match="unreadable training state"):
        load_train_state(ckpt)
    assert not Path("/tmp/dcgan_viz_pwned").exists()


def test_write_is_atomic(tmp_path: Path, tiny_cfg: ModelConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    G, D = build_models(tiny_cfg)
    path = save_checkpoint(tmp_path / "ck", G, D, data=SPEC, step=1)
    import dcgan_viz.checkpoint as ck

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", fail)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ck", G, D, data=SPEC, step=2, train_state={"x": 1})
    assert load_checkpoint(path, device="cpu").meta["step"] == 1  # old checkpoint intact
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temp leftovers
