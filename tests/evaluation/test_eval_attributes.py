import pytest
import torch

from dcgan_viz.evaluation import (
    AttributeClassifier,
    AttributeConfig,
    evaluate_attribute_classifier,
    predict_attributes,
    train_attribute_classifier,
)
from dcgan_viz.evaluation.attributes import parse_kind
from dcgan_viz.evaluation.training import hflip_attributes

ATTRIBUTE_KINDS = {"brightness": "continuous", "colour": "categorical:3", "position": "continuous_signed"}
FACE_KINDS = {
    "smile": "continuous", "glasses": "categorical:3", "beard": "categorical:2", "hair_length": "continuous",
    "hair_color": "categorical:5", "skin_tone": "continuous", "yaw": "continuous_signed", "gaze": "continuous_signed",
}
TINY = AttributeConfig(ATTRIBUTE_KINDS, width=8, feature_dim=32)


def test_parse_kind():
    assert parse_kind("continuous") == ("continuous", 1)
    assert parse_kind("continuous_signed") == ("continuous_signed", 1)
    assert parse_kind("categorical:5") == ("categorical", 5)
    for bad in ("categorical", "categorical:1", "categorical:x", "binary", "continuous:2"):
        with pytest.raises(ValueError, match="bad attribute kind"):
            parse_kind(bad)


def test_config_keeps_order_and_round_trips():
    config = AttributeConfig(FACE_KINDS)
    assert config.names == tuple(FACE_KINDS)
    assert config.kinds == FACE_KINDS
    assert AttributeConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="duplicate"):
        AttributeConfig([("a", "continuous"), ("a", "continuous")])
    with pytest.raises(ValueError, match="'.'"):
        AttributeConfig({"a.b": "continuous"})
    with pytest.raises(ValueError, match="at least one"):
        AttributeConfig({})
    with pytest.raises(ValueError, match="unknown"):
        AttributeConfig.from_dict({**config.to_dict(), "depth": 3})


@pytest.mark.parametrize("size", [32, 64, 128])
def test_predictions_use_the_ground_truth_encoding(size):
    model = AttributeClassifier(AttributeConfig(FACE_KINDS))
    pred = predict_attributes(model, torch.rand(4, 3, size, size) * 2 - 1)
    assert pred.dtype == torch.float32 and pred.shape == (4, 8)
    for j, (name, kind) in enumerate(FACE_KINDS.items()):
        col = pred[:, j]
        if kind.startswith("categorical"):
            assert torch.equal(col, col.round()) and col.min() >= 0 and col.max() < int(kind.split(":")[1])
        elif kind == "continuous":
            assert col.min() >= 0 and col.max() <= 1
        else:
            assert col.min() >= -1 and col.max() <= 1


def test_hflip_negates_only_signed_columns_of_flipped_samples():
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).reshape(2, 1, 2, 3)
    targets = torch.tensor([[0.25, 2.0, 0.5], [0.75, 1.0, -0.25]])
    flip = torch.tensor([True, False])
    negate = torch.tensor([False, False, True])
    fx, ft = hflip_attributes(x, targets, flip, negate)
    assert torch.equal(fx[0], x[0].flip(-1)) and torch.equal(fx[1], x[1])
    assert ft.tolist() == [[0.25, 2.0, -0.5], [0.75, 1.0, -0.25]]


def test_attribute_classifier_learns_and_flip_negation_matters(attribute_task, seeded):
    images, attrs = attribute_task(512, 0)
    val = attribute_task(128, 1)
    kwargs = dict(config=TINY, steps=120, batch_size=32, device="cpu", seed=0, log_every=40, val=val)
    _, metrics = train_attribute_classifier(images, attrs, ATTRIBUTE_KINDS, **kwargs)
    per = metrics["val"]["per_attribute"]
    assert metrics["hflip_negate"] == ["position"]
    assert per["brightness"]["mae"] < 0.08 and per["brightness"]["corr"] > 0.95
    assert per["colour"]["accuracy"] > 0.9
    assert per["position"]["mae"] < 0.15 and per["position"]["corr"] > 0.95

    untrained = evaluate_attribute_classifier(seeded(lambda: AttributeClassifier(TINY)), *val)["per_attribute"]
    assert untrained["brightness"]["mae"] > 0.15 and untrained["colour"]["accuracy"] < 0.6
    assert untrained["position"]["mae"] > 0.3

    # mirroring without negating the position label makes it unlearnable (a left bar is labelled both ways)
    _, wrong = train_attribute_classifier(images, attrs, ATTRIBUTE_KINDS, hflip_negate=[], **kwargs)
    assert abs(wrong["val"]["per_attribute"]["position"]["corr"]) < 0.5


def test_train_attribute_classifier_validates_inputs(attribute_task):
    images, attrs = attribute_task(8, 0)
    run = dict(config=TINY, steps=1, device="cpu")
    with pytest.raises(ValueError, match="continuous_signed"):
        train_attribute_classifier(images, attrs, ATTRIBUTE_KINDS, hflip_negate=["brightness"], **run)
    for col, value in ((0, 1.5), (1, 3.0), (1, 0.5), (2, -1.2)):
        bad = attrs.clone()
        bad[0, col] = value
        with pytest.raises(ValueError, match="outside its range"):
            train_attribute_classifier(images, bad, ATTRIBUTE_KINDS, **run)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        train_attribute_classifier(images, attrs[:, :2], ATTRIBUTE_KINDS, **run)
    with pytest.raises(ValueError, match="does not fit"):
        train_attribute_classifier(images, attrs, ATTRIBUTE_KINDS, config=AttributeConfig(FACE_KINDS), steps=1)


def test_evaluate_attribute_classifier_metrics_by_hand(monkeypatch):
    model = AttributeClassifier(TINY)
    pred = torch.tensor([[0.2, 1.0, 0.5], [0.4, 2.0, -0.5], [0.6, 0.0, 0.0]])
    true = torch.tensor([[0.1, 1.0, 0.5], [0.4, 0.0, -0.5], [0.9, 0.0, 0.5]])
    monkeypatch.setattr("dcgan_viz.evaluation.training.predict_attributes", lambda m, images, batch_size: pred)
    scores = evaluate_attribute_classifier(model, torch.zeros(3, 16, 16, 3, dtype=torch.uint8), true)
    per = scores["per_attribute"]
    assert per["brightness"]["mae"] == pytest.approx(0.4 / 3)
    expected_corr = float(torch.corrcoef(torch.stack([pred[:, 0], true[:, 0]]))[0, 1])
    assert per["brightness"]["corr"] == pytest.approx(expected_corr, abs=1e-6)
    assert per["colour"] == {"accuracy": pytest.approx(2 / 3)}
    assert per["position"]["mae"] == pytest.approx(0.5 / 3)
    assert scores["mean_accuracy"] == pytest.approx(2 / 3)
    const = true.clone()
    const[:, 0] = 0.5
    constant = evaluate_attribute_classifier(model, torch.zeros(3, 16, 16, 3, dtype=torch.uint8), const)
    assert constant["per_attribute"]["brightness"]["corr"] is None
