"""Each analysis's figure builder hands its row and column labels and its caption to the shared
style, and marks what it claims (the removed pixels of Fig. 6, the step changes of Fig. 4)."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan_viz.plots import style
from tests.plots.test_style import drawn  # noqa: F401 - the fixture

pytest.importorskip("plotly")


def _images(n: int, size: int = 32, value: int = 128) -> np.ndarray:
    return np.full((n, size, size, 3), value, np.uint8)


def test_fig5_figure_labels_both_nets_every_unit_and_the_caption(drawn) -> None:  # noqa: F811
    from types import SimpleNamespace

    from dcgan_viz.plots.filters import fig5_figure

    def responses(label):
        top = SimpleNamespace(layer="conv3", units=[4, 9])
        return SimpleNamespace(label=label, top=top, images=np.zeros((2, 3, 64, 64, 3), np.uint8),
                               guided=np.ones((2, 3, 64, 64, 3), np.float32))

    fig5_figure([responses("trained"), responses("random")], caption="trained 58 vs random 50")
    text = " ".join(" ".join(drawn).split())  # wrapped lines joined
    for expected in ("trained D", "random-init D", "conv3 unit 4", "conv3 unit 9", "guided backprop", "top 3",
                     "trained 58 vs random 50"):
        assert expected in text, expected


def test_walk_figure_labels_segments_and_draws_each_step_change(drawn) -> None:  # noqa: F811
    from dcgan_viz.plots.latent import walk_figure

    points, steps = 3, 2
    m = (points - 1) * (steps + 1) + 1
    change = np.array([0.01, 0.01, 0.09, 0.01, 0.01, 0.01])  # one jump: the third step of the first segment
    image = walk_figure(_images(m), points, steps, change, "spike ratio 9.0", scale=2)
    text = " ".join(" ".join(drawn).split())  # wrapped lines joined
    for expected in ("z0 -> z1", "z1 -> z2", "anchor", "step 2", "next anchor", "spike ratio 9.0"):
        assert expected in text, expected
    from PIL import ImageColor
    from scipy import ndimage

    bars = (image == np.array(ImageColor.getrgb(style.SERIES[0]))).all(axis=2)
    labels, n = ndimage.label(bars)
    boxes = ndimage.find_objects(labels)
    assert n == len(change)  # one bar per step, under the row it belongs to
    heights = np.array([b[0].stop - b[0].start for b in boxes])
    order = sorted(range(n), key=lambda i: (boxes[i][0].stop, boxes[i][1].start))  # strip (baseline), then x
    jump = order.index(int(np.argmax(heights)))
    assert jump == 2 and heights.max() >= 5 * np.delete(heights, np.argmax(heights)).max()


def test_with_without_figure_outlines_only_removed_pixels(drawn) -> None:  # noqa: F811
    from dcgan_viz.plots.ablation import with_without_figure

    before, after = _images(2), _images(2)
    removed = np.zeros((2, 32, 32), bool)
    removed[0, 2:6, 2:6] = True  # latent 0 lost a window; latent 1 lost nothing (the control)
    image = with_without_figure(before, after, removed, ["(0, 3)", "(0, 7)"], "without 12 conv2 units", "ACE 61%",
                                scale=2)
    text = " ".join(" ".join(drawn).split())  # wrapped lines joined
    for expected in ("with all units", "without 12 conv2 units", "(0, 3)", "(0, 7)", "ACE 61%", "Outlined in magenta"):
        assert expected in text, expected
    accent = (image == np.array(style.ACCENT)).all(axis=2)
    ys, xs = np.nonzero(accent)
    assert accent.sum() == 7 * 4  # one ring, around the 4x4 region upscaled 2x
    assert xs.max() - xs.min() == 7  # in one tile (the first), the second tile has none


def test_memorization_figures_label_rows_and_distances(drawn) -> None:  # noqa: F811
    from dcgan_viz.analysis.dedup import DedupResult
    from dcgan_viz.analysis.memorization import ClosestPairs
    from dcgan_viz.plots.memorization import closest_pairs_figure, dedup_groups_figure

    pairs = ClosestPairs(np.array([0, 1]), np.array([2, 0]), np.array([0.125, 0.5]))
    closest_pairs_figure(pairs, _images(2), _images(3), "C_T -5.4")
    text = " ".join(" ".join(drawn).split())  # wrapped lines joined
    for expected in ("generated", "nearest training image", "d = 0.125", "d = 0.5", "C_T -5.4"):
        assert expected in text, expected
    drawn.clear()
    result = DedupResult("semantic", 8, np.zeros((4, 16), np.uint8), np.array([[0, 2]]), np.array([0, 1, 0, 3]),
                         np.array([0, 1, 3]), 0)
    assert dedup_groups_figure(result, _images(4), "precision 0.99") is not None
    assert "group 1: 2 images" in " ".join(drawn) and "precision 0.99" in " ".join(drawn)
    none = DedupResult("semantic", 8, np.zeros((2, 16), np.uint8), np.zeros((0, 2), np.int64), np.array([0, 1]),
                       np.array([0, 1]), 0)
    assert dedup_groups_figure(none, _images(2)) is None  # control: nothing grouped, no figure
