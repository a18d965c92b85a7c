import math

import pytest
import torch

from dcgan_viz.evaluation import ClassifierConfig, train_attribute_classifier, train_classifier
from dcgan_viz.evaluation.attributes import AttributeConfig
from dcgan_viz.evaluation.training import _batch_indices, _lr_factor, resolve_device

TINY = ClassifierConfig(in_channels=3, n_classes=3, width=4, feature_dim=8)


def _train(task, seed):
    images, labels = task(64, 0)
    return train_classifier(images, labels, 3, config=TINY, steps=6, batch_size=16, device="cpu", seed=seed,
                            hflip=True, log_every=2)


def test_training_is_deterministic_given_seed_and_leaves_global_rng_alone(colour_task):
    before = torch.random.get_rng_state()
    (m1, r1), (m2, r2), (m3, r3) = _train(colour_task, 1), _train(colour_task, 1), _train(colour_task, 2)
    assert torch.equal(torch.random.get_rng_state(), before)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert r1["loss_history"] == r2["loss_history"]
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_attribute_training_is_deterministic(attribute_task):
    images, attrs = attribute_task(32, 0)
    kinds = {"b": "continuous", "c": "categorical:3", "p": "continuous_signed"}
    config = AttributeConfig(kinds, width=4, feature_dim=8)
    runs = [train_attribute_classifier(images, attrs, config.kinds, config=config, steps=3, batch_size=8,
                                       device="cpu", seed=5)[0].state_dict() for _ in range(2)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_metrics_record_the_run(colour_task):
    _, metrics = _train(colour_task, 0)
    assert metrics["steps"] == 6 and metrics["batch_size"] == 16 and metrics["device"] == "cpu"
    assert [step for step, _ in metrics["loss_history"]] == [2, 4, 6]
    assert metrics["final_loss"] == metrics["loss_history"][-1][1]
    assert metrics["images_per_second"] > 0


def test_batches_cover_each_epoch_once():
    gen = torch.Generator().manual_seed(0)
    batches = list(_batch_indices(10, 4, 6, gen, torch.device("cpu")))
    assert all(len(b) == 4 for b in batches)
    first, second = torch.cat(batches[:2]), torch.cat(batches[2:4])
    assert len(set(first.tolist())) == 8 and len(set(second.tolist())) == 8


def test_lr_schedule_warms_up_then_decays_to_zero():
    steps, warmup = 100, 5
    factors = [_lr_factor(s, steps, warmup) for s in range(steps)]
    assert factors[0] == pytest.approx(0.2) and max(factors) == pytest.approx(factors[4])
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert factors[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 99 / 100)))


def test_resolve_device_and_bad_settings(colour_task):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    images, labels = colour_task(8, 0)
    with pytest.raises(ValueError, match="positive"):
        train_classifier(images, labels, 3, config=TINY, steps=0, device="cpu")
