import pytest
import torch

from dcgan_viz.evaluation import (
    Classifier,
    ClassifierConfig,
    evaluate_classifier,
    extract_features,
    predict_labels,
    train_classifier,
)

TINY = ClassifierConfig(in_channels=3, n_classes=3, width=8, feature_dim=16)


def test_fashion_mnist_shapes():
    model = Classifier(ClassifierConfig(in_channels=1, n_classes=10, feature_dim=128)).eval()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert model.features(x).shape == (4, 128)
        assert model.logits(x).shape == (4, 10)
        assert torch.equal(model(x), model.logits(x))
    u8 = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)  # grayscale (N, H, W)
    assert extract_features(model, u8).shape == (3, 128)
    assert predict_labels(model, u8).dtype == torch.int64


def test_features_are_the_penultimate_layer():
    model = Classifier(TINY).eval()
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    feats = extract_features(model, x, batch_size=2)
    with torch.no_grad():
        assert torch.allclose(model.classify(feats), model.logits(x), atol=1e-5)


def test_classifier_learns_colour_classes(colour_task, seeded):
    images, labels = colour_task(256, 0)
    val = colour_task(128, 1)
    model, metrics = train_classifier(images, labels, 3, config=TINY, steps=30, batch_size=32, device="cpu", seed=0,
                                      log_every=10, val=val)
    assert metrics["val"]["accuracy"] > 0.95 and metrics["val"]["n"] == 128
    assert evaluate_classifier(seeded(lambda: Classifier(TINY)), *val)["accuracy"] < 0.6


def test_grayscale_training_and_validation(colour_task):
    images, labels = colour_task(16, 0)
    gray = images[..., 0]
    model, _ = train_classifier(gray, labels, 3, steps=2, batch_size=8, device="cpu", hflip=True,
                                config=ClassifierConfig(in_channels=1, n_classes=3, width=4, feature_dim=8))
    assert model.config.in_channels == 1 and not model.training
    with pytest.raises(ValueError, match="labels must be"):
        train_classifier(images, labels + 3, 3, config=TINY, steps=1, device="cpu")
    with pytest.raises(ValueError, match="labels must be"):
        train_classifier(images, labels.float(), 3, config=TINY, steps=1, device="cpu")
    with pytest.raises(ValueError, match="does not fit"):
        train_classifier(gray, labels, 3, config=TINY, steps=1, device="cpu")
    with pytest.raises(ValueError, match="images but"):
        train_classifier(images, labels[:3], 3, config=TINY, steps=1, device="cpu")
