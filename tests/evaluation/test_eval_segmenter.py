import pytest
import torch

from dcgan_viz.evaluation import Segmenter, SegmenterConfig, evaluate_segmenter, predict_masks, train_segmenter
from dcgan_viz.evaluation.training import confusion_matrix, segmentation_scores

TINY = SegmenterConfig(in_channels=3, n_classes=2, width=8, depth=2)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_default_segmenter_shapes(size):
    model = Segmenter(SegmenterConfig(n_classes=9)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size) * 2 - 1)
    assert out.shape == (2, 9, size, size)
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 1_000_000


def test_segmenter_rejects_bad_input():
    model = Segmenter(TINY)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 3, 18, 18))
    with pytest.raises(ValueError):
        model(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="n_classes"):
        SegmenterConfig(n_classes=1)


def test_predict_masks_accepts_uint8_and_model_range_and_keeps_mode():
    model = Segmenter(TINY)
    u8 = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)
    as_float = u8.permute(0, 3, 1, 2).float() / 127.5 - 1
    masks = predict_masks(model, u8, batch_size=2)
    assert masks.dtype == torch.uint8 and masks.shape == (5, 16, 16)
    assert torch.equal(masks, predict_masks(model, as_float))
    assert model.training


def test_segmenter_learns_threshold_task(threshold_task, seeded):
    images, masks = threshold_task(256, 0)
    val = threshold_task(64, 1)
    model, metrics = train_segmenter(images, masks, 2, config=TINY, steps=40, batch_size=16, device="cpu", seed=0,
                                     log_every=10, val=val, class_names=["dark", "bright"])
    assert metrics["val"]["miou"] > 0.9
    assert set(metrics["val"]["iou_per_class"]) == {"dark", "bright"}
    assert metrics["loss_history"][-1][1] < metrics["loss_history"][0][1]
    untrained = evaluate_segmenter(seeded(lambda: Segmenter(TINY)), *val)
    assert untrained["miou"] < 0.6


def test_train_segmenter_validates_inputs(threshold_task):
    images, masks = threshold_task(8, 0)
    with pytest.raises(ValueError, match="class id"):
        train_segmenter(images, masks * 3, 2, config=TINY, steps=1, device="cpu")
    with pytest.raises(ValueError, match="masks must be integer"):
        train_segmenter(images, masks[:4], 2, config=TINY, steps=1, device="cpu")
    with pytest.raises(ValueError, match="masks must be integer"):
        train_segmenter(images, masks.float(), 2, config=TINY, steps=1, device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        train_segmenter(images.float(), masks, 2, config=TINY, steps=1, device="cpu")


def test_segmentation_scores_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 2]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[3, 1, 0], [0, 3, 1], [0, 0, 0]]
    scores = segmentation_scores(conf, ["a", "b", "c"])
    assert scores["pixel_accuracy"] == pytest.approx(6 / 8)
    # a: TP 3, FN 1, FP 0 -> 3/4; b: TP 3, FN 1, FP 1 -> 3/5; c is absent from the ground truth
    assert scores["iou_per_class"] == {"a": pytest.approx(0.75), "b": pytest.approx(0.6), "c": None}
    assert scores["miou"] == pytest.approx((0.75 + 0.6) / 2)
    with pytest.raises(ValueError, match="class names"):
        segmentation_scores(conf, ["a"])


def test_evaluate_segmenter_is_over_the_whole_set(threshold_task):
    images, masks = threshold_task(6, 3)
    model = Segmenter(TINY)
    whole = evaluate_segmenter(model, images, masks, batch_size=6)
    chunked = evaluate_segmenter(model, images, masks, batch_size=4)
    assert whole == chunked
    pred = predict_masks(model, images)
    assert whole == segmentation_scores(confusion_matrix(pred, masks, 2))
