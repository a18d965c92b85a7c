"""Network dissection: exact thresholds, a planted detector is found (IoU 1), a random unit is not."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from dcgan_viz.analysis.dissection import detector_markdown, detector_table, dissect, unit_thresholds

torch.set_num_threads(1)
CLASSES = ("wall", "lamp")


class Planted(nn.Module):
    """conv1 (1x1): unit 0 = image channel 0 (which carries the lamp mask), unit 1 = random mix of the
    noise channels 1, 2."""

    feature_layers = ("conv1",)

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.7, -0.4]]).view(2, 3, 1, 1))
        self.conv1 = nn.Sequential(OrderedDict(conv=conv, act=nn.LeakyReLU(0.2)))

    def features(self, x: torch.Tensor, layers=None) -> dict[str, torch.Tensor]:
        return {"conv1": self.conv1(x)}


@pytest.fixture
def planted_data() -> tuple[np.ndarray, np.ndarray]:
    """40 16x16 images; lamps (class 1) are 3x3 squares in 3 images: 27 of 10240 pixels (< 0.5%)."""
    rng = np.random.default_rng(0)
    masks = np.zeros((40, 16, 16), np.uint8)
    for i, (y, x) in zip((2, 17, 31), ((1, 1), (8, 12), (13, 4))):
        masks[i, y : y + 3, x : x + 3] = 1
    images = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    images[..., 0] = np.where(masks == 1, 255, 0)
    return images, masks


def test_thresholds_are_exact_quantiles(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = planted_data
    net = Planted()
    t = unit_thresholds(net, images, ["conv1"], quantile=0.005, batch_size=7)["conv1"]
    acts = net.features(torch.as_tensor(images).permute(0, 3, 1, 2).float() / 127.5 - 1)["conv1"]
    above = (acts > t[None, :, None, None]).sum(dim=(0, 2, 3))
    assert above[1] == int(0.005 * acts[:, 0].numel())  # continuous unit: exactly 0.5% above T
    assert above[0] == 27  # the planted unit: its 27 lamp pixels, below T everything is -0.2


def test_planted_detector_found_random_unit_not(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    images, masks = planted_data
    res = dissect(Planted(), images, masks, CLASSES, label="planted", batch_size=16)
    iou = res.iou["conv1"]
    assert iou[0, 1] == pytest.approx(1.0)
    assert iou[1].max() < 0.04
    assert res.detectors() == {"conv1": {"wall": 0, "lamp": 1}}
    assert res.detectors(threshold=0.0) == {"conv1": {"wall": 1, "lamp": 1}}  # the random unit's best is wall
    row = detector_table([res])[0]
    assert row["units"] == 2 and row["detectors"] == 1 and row["lamp"] == 1
    assert row["mean_best_iou"] == pytest.approx((1.0 + iou[1].max()) / 2, abs=1e-4)
    md = detector_markdown([res])
    assert "| planted | conv1 | 2 | 1 | 0.5" in md and "40 images" in md


def test_mask_shape_checked(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    images, masks = planted_data
    with pytest.raises(ValueError, match="do not match"):
        dissect(Planted(), images, masks[:, :8], CLASSES)
