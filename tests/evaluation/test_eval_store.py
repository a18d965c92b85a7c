import json

import pytest
import torch

from dcgan_viz.data.spec import DataSpec
from dcgan_viz.evaluation import (
    AttributeClassifier,
    AttributeConfig,
    Classifier,
    ClassifierConfig,
    Segmenter,
    SegmenterConfig,
    load_evaluator,
    save_evaluator,
)

KINDS = {"zeta": "continuous", "alpha": "categorical:3", "yaw": "continuous_signed"}  # not alphabetical on purpose


def _models():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return {
            "segmenter": Segmenter(SegmenterConfig(n_classes=3, width=4, depth=2)),
            "attributes": AttributeClassifier(AttributeConfig(KINDS, width=4, feature_dim=8)),
            "classifier": Classifier(ClassifierConfig(in_channels=3, n_classes=4, width=4, feature_dim=8)),
        }


def _outputs(model, x):
    with torch.no_grad():
        out = model.eval()(x)
    return torch.cat([v.reshape(len(x), -1) for v in out.values()], 1) if isinstance(out, dict) else out


def _saved(tmp_path, kind="classifier", **kwargs):
    model = _models()[kind]
    return model, save_evaluator(model, tmp_path / "ckpt", kwargs.pop("meta", None), **kwargs)


X = torch.rand(3, 3, 16, 16) * 2 - 1


@pytest.mark.parametrize("kind", ["segmenter", "attributes", "classifier"])
def test_round_trip_fp32_is_exact(tmp_path, kind):
    model = _models()[kind]
    spec = DataSpec(source="faces", size=16)
    meta = {"metrics": {"val": {"accuracy": 0.5}}, "data_spec": spec, "training": {"steps": 3}}
    path = save_evaluator(model, tmp_path / kind, meta)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == [kind]  # no temp leftovers
    loaded, config = load_evaluator(path, kind=kind)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    assert torch.equal(_outputs(loaded, X), _outputs(model, X))
    assert config["format"] == "dcgan-viz-evaluator" and config["format_version"] == 1 and config["kind"] == kind
    assert config["metrics"] == {"val": {"accuracy": 0.5}} and config["training"] == {"steps": 3}
    assert config["data_spec"]["source"] == "faces" and config["weights_dtype"] == "float32"
    assert isinstance(config["package_version"], str)


def test_names_are_stored(tmp_path):
    models = _models()
    seg = save_evaluator(models["segmenter"], tmp_path / "s", {"classes": ["wall", "floor", "window"]})
    assert load_evaluator(seg)[1]["classes"] == ["wall", "floor", "window"]
    cls = save_evaluator(models["classifier"], tmp_path / "c")
    assert load_evaluator(cls)[1]["label_names"] == ["0", "1", "2", "3"]
    att = save_evaluator(models["attributes"], tmp_path / "a")
    model, config = load_evaluator(att)
    assert config["attribute_names"] == ["zeta", "alpha", "yaw"] and config["attribute_kinds"] == KINDS
    assert model.attribute_names == ("zeta", "alpha", "yaw")
    with pytest.raises(ValueError, match="3 classes"):
        save_evaluator(models["segmenter"], tmp_path / "x", {"classes": ["wall"]})
    with pytest.raises(ValueError, match="unknown meta keys"):
        save_evaluator(models["classifier"], tmp_path / "x", {"classes": ["a", "b", "c", "d"]})


def test_half_weights_are_smaller_and_load_as_fp32(tmp_path):
    model = _models()["classifier"]
    full = save_evaluator(model, tmp_path / "full")
    half = save_evaluator(model, tmp_path / "half", half=True)
    ratio = (half / "model.safetensors").stat().st_size / (full / "model.safetensors").stat().st_size
    assert 0.45 < ratio < 0.6
    loaded, config = load_evaluator(half)
    assert config["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert torch.allclose(_outputs(loaded, X), _outputs(model, X), atol=1e-2, rtol=1e-2)


def test_overwrite_replaces_a_checkpoint_but_not_other_things(tmp_path):
    models = _models()
    path = save_evaluator(models["classifier"], tmp_path / "ckpt")
    save_evaluator(models["segmenter"], path)
    assert load_evaluator(path)[1]["kind"] == "segmenter"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        save_evaluator(models["segmenter"], tmp_path / "other")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        save_evaluator(models["segmenter"], tmp_path / "file")
    (tmp_path / "empty").mkdir()
    save_evaluator(models["segmenter"], tmp_path / "empty")
    with pytest.raises(ValueError, match="not an evaluation helper"):
        save_evaluator(torch.nn.Linear(2, 2), tmp_path / "lin")


def _edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def _error(path, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        load_evaluator(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_load_errors(tmp_path):
    assert "does not exist" in _error(tmp_path / "nope")
    _, path = _saved(tmp_path)
    assert "not a segmenter" in _error(path, kind="segmenter")
    assert "unknown evaluator kind" in _error(path, kind="gan")

    weights = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(weights[:100])
    assert "corrupt" in _error(path)
    _edit_config(path, weights_sha256=None)
    assert "not a readable safetensors file" in _error(path)
    (path / "model.safetensors").unlink()
    assert "has no model.safetensors" in _error(path)


def test_config_errors(tmp_path):
    _, path = _saved(tmp_path)
    original = (path / "config.json").read_text()
    _edit_config(path, format_version=2)
    assert "newer" in _error(path)
    _edit_config(path, format_version=1, kind="vae")
    assert "unknown kind" in _error(path)
    _edit_config(path, kind="classifier", format="something-else")
    assert "not a dcgan-viz-evaluator config" in _error(path)
    (path / "config.json").write_text(original)
    _edit_config(path, model={**json.loads(original)["model"], "width": 8})
    assert "do not fit the model config" in _error(path)
    _edit_config(path, model={"in_channels": 3, "n_classes": 4, "depth": 2})
    assert "bad model config" in _error(path)
    (path / "config.json").write_text("{not json")
    assert "not valid JSON" in _error(path)
    (path / "config.json").unlink()
    assert "has no config.json" in _error(path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    _, path = _saved(tmp_path, "classifier")
    _, other = _saved(tmp_path / "b", "segmenter")
    _edit_config(path, weights_sha256=None)
    (path / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    assert "do not fit the model config" in _error(path)


def test_failed_save_leaves_the_old_checkpoint_and_no_debris(tmp_path, monkeypatch):
    models = _models()
    path = save_evaluator(models["classifier"], tmp_path / "ckpt")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("dcgan_viz.evaluation.store.atomic_write_json", fail)
    with pytest.raises(OSError, match="disk full"):
        save_evaluator(models["segmenter"], path)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert load_evaluator(path, device="cpu")[1]["kind"] == "classifier"
