"""The shared figure style: labelled grids draw every label and the caption at the written size,
outlines mark exactly a region's boundary, grids pad in white, and the figure builders of each
analysis hand their labels to the style."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan_viz.plots import style


@pytest.fixture
def drawn(monkeypatch):
    """Every text line the style draws (through text_block), in order."""
    lines: list[str] = []
    original = style.text_block

    def record(text_lines, *args, **kwargs):
        lines.extend(text_lines)
        return original(text_lines, *args, **kwargs)

    monkeypatch.setattr(style, "text_block", record)
    return lines


def _tiles(n: int, size: int = 8, value: int = 128) -> np.ndarray:
    return np.full((n, size, size, 3), value, np.uint8)


def test_labelled_grid_draws_row_and_column_labels_title_and_caption(drawn) -> None:
    image = style.labelled_grid([_tiles(3), _tiles(2)], ["first row", "second row"], ["a", "b", "c"],
                                caption="measured 61.2%", title="the title", scale=2)
    text = " ".join(drawn)
    for expected in ("first row", "second row", "the title", "measured 61.2%"):
        assert expected in text
    assert [x for x in drawn if x in ("a", "b", "c")] == ["a", "b", "c"]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    bare = style.labelled_grid([_tiles(3), _tiles(2)], scale=2)
    assert bare.shape[0] < image.shape[0] and bare.shape[1] < image.shape[1]  # labels and caption take room
    # tiles are drawn at the written size: 2 rows of 16 px tiles with 4 px padding
    assert bare.shape == (2 * (16 + 4) + 4, 3 * (16 + 4) + 4, 3)
    assert (bare == 128).all(axis=2).sum() == 5 * 16 * 16  # five tiles; the short row ends in white, not black
    assert not (bare == 0).all(axis=2).any()


def test_caption_text_is_drawn_in_dark_pixels_below_the_image() -> None:
    tile = _tiles(1, 32, 255)[0]
    with_caption = style.caption_strip(tile, "a caption long enough to wrap over two lines at this width")
    strip = with_caption[32:]
    assert strip.shape[0] > 2 * style.CAPTION_PX  # wrapped to the image's width: two lines or more
    assert (strip < 160).any()  # text pixels, not an empty strip
    assert style.caption_strip(tile, "").shape == (32, 32, 3)  # no caption, no strip


def test_symbols_the_font_lacks_are_spelled_out() -> None:
    assert style.plain("Fig. 7 — α = 0.5, ≤ 10% ± 2") == "Fig. 7 - alpha  = 0.5, <= 10% +/- 2"
    assert style.plain("Fréchet Δyaw") == "Frechet delta yaw"


def test_outline_marks_only_the_boundary_of_a_region() -> None:
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    edge = style.outline(mask)
    assert edge.sum() == 12 and edge[2, 2] and not edge[3, 3] and not edge[0, 0]
    assert not style.outline(np.zeros((8, 8), bool)).any()  # control: nothing removed, nothing drawn
    tile = _tiles(1, 8)[0]
    drawn = style.draw_outline(tile, mask, scale=2)
    coloured = (drawn == style.ACCENT).all(axis=2)
    assert drawn.shape == (16, 16, 3) and coloured.sum() == 7 * 4  # a 1-px ring of the 8x8 upscaled square
    assert (drawn[~coloured] == 128).all()


def test_grids_pad_in_the_shared_background() -> None:
    from dcgan_viz.images import grid

    g = grid(_tiles(3, 4, 10), nrow=2)
    assert (g == 10).all(axis=2).sum() == 3 * 16
    assert (g[(g != 10).any(axis=2)] == style.BACKGROUND).all()


def test_bar_strip_heights_follow_the_values() -> None:
    strip = style.bar_strip([1.0, 3.0], [10, 30], 40, 20, 3.0)
    heights = [int((strip[:, x] != style.BACKGROUND).any(axis=1).sum()) for x in (10, 30)]
    assert heights[1] > 2 * heights[0] > 0


def test_plotly_style_sets_titles_and_font() -> None:
    go = pytest.importorskip("plotly.graph_objects")
    fig = style.plotly_style(go.Figure(go.Bar(x=[1], y=[2])), "title", "x (units)", "y (units)")
    assert fig.layout.title.text == "title" and fig.layout.xaxis.title.text == "x (units)"
    assert fig.layout.yaxis.title.text == "y (units)" and fig.layout.font.size == style.PLOTLY_FONT["size"]
