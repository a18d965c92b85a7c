"""The one style of every figure: PNG figures (labelled image grids with a caption strip, drawn at
the size they are written) and plotly figures (font, colours, margins). Nothing here computes.

PNG figures are composed at their final resolution: tiles are upscaled (nearest neighbour) by
``scale`` first, then labels and captions are drawn in ``FONT_PX`` / ``CAPTION_PX`` pixel text, so
they stay readable wherever the PNG travels. Fonts are Pillow's built-in scalable font (no font
file is needed).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

BACKGROUND = 255  # white canvas and padding, in every grid (dashboard included): no black filler
TEXT = (34, 34, 34)
MUTED = (96, 96, 96)
ACCENT, ACCENT_NAME = (230, 20, 120), "magenta"  # outlines that point at a change (rare in rooms and faces)
SERIES = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b2", "#937860")
PAD = 2  # pixels between tiles, before upscaling
FONT_PX, CAPTION_PX, TITLE_PX = 14, 13, 16
MARGIN = 8  # pixels around text blocks
SCALE = 2  # PNG figures: tiles upscaled 2x
PLOTLY_FONT = dict(family="DejaVu Sans, Helvetica, Arial, sans-serif", size=13, color="#222222")


_PLAIN = str.maketrans({"—": "-", "–": "-", "≤": "<=", "≥": ">=", "±": "+/-", "α": "alpha ", "Δ": "delta ",
                        "×": "x", "…": "...", "’": "'", "“": '"', "”": '"', "−": "-", "→": "->"})


def plain(text: str) -> str:
    """``text`` in ASCII, which the built-in font draws: symbols spelled out (em dash, <=, alpha, ...),
    accents dropped (Fréchet -> Frechet)."""
    import unicodedata

    return unicodedata.normalize("NFKD", text.translate(_PLAIN)).encode("ascii", "ignore").decode("ascii")


@lru_cache(maxsize=8)
def font(px: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=px)


def text_width(text: str, px: int) -> int:
    return int(np.ceil(font(px).getlength(text)))


def wrap(text: str, px: int, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels at ``px`` (a single long word may overflow)."""
    lines: list[str] = []
    for paragraph in plain(text).split("\n"):
        words, line = paragraph.split(), ""
        for word in words:
            trial = f"{line} {word}".strip()
            if line and text_width(trial, px) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.uint8)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 (..., H, W, C) -> (..., H*scale, W*scale, C), nearest neighbour."""
    return np.asarray(image).repeat(scale, axis=-3).repeat(scale, axis=-2) if scale > 1 else np.asarray(image)


def text_block(lines: Sequence[str], width: int, px: int, colour=TEXT, align: str = "left") -> np.ndarray:
    """uint8 (h, width, 3) white strip holding ``lines`` (already wrapped) at ``px``."""
    from PIL import Image, ImageDraw

    line_h = int(px * 1.35)
    height = max(1, len(lines)) * line_h + 2 * (MARGIN // 2)
    canvas = Image.new("RGB", (max(width, 1), height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(plain(x) for x in lines):
        w = text_width(line, px)
        x = {"left": MARGIN, "center": (width - w) // 2, "right": width - w - MARGIN}[align]
        draw.text((max(x, 0), MARGIN // 2 + i * line_h), line, font=font(px), fill=colour)
    return np.asarray(canvas)


def caption_strip(image: np.ndarray, caption: str, px: int = CAPTION_PX) -> np.ndarray:
    """uint8 (H, W, C) -> (H + h, W, 3): the caption wrapped to the image's width underneath."""
    image = _rgb(image)
    if not caption:
        return image
    strip = text_block(wrap(caption, px, image.shape[1] - 2 * MARGIN), image.shape[1], px, MUTED)
    return np.concatenate([image, strip])


def title_strip(image: np.ndarray, title: str, px: int = TITLE_PX) -> np.ndarray:
    """uint8 (H, W, C) -> (h + H, W, 3): a centred heading above the image."""
    image = _rgb(image)
    strip = text_block(wrap(title, px, image.shape[1] - 2 * MARGIN), image.shape[1], px, TEXT, "center")
    return np.concatenate([strip, image])


def side_by_side(panels: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """uint8 (H_i, W_i, C) panels -> one image, top-aligned on white with ``gap`` pixels between."""
    panels = [_rgb(p) for p in panels]
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    out = np.full((height, width, 3), BACKGROUND, np.uint8)
    x = 0
    for p in panels:
        out[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def stack(parts: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 (H_i, W_i, C) parts -> one image, left-aligned one under the other on white."""
    parts = [_rgb(p) for p in parts]
    width = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=BACKGROUND)
                           for p in parts])


def labelled_grid(rows: Sequence[Sequence[np.ndarray] | np.ndarray], row_labels: Sequence[str] | None = None,
                  col_labels: Sequence[str] | None = None, caption: str = "", title: str = "",
                  scale: int = SCALE, under_rows: Sequence[np.ndarray] | None = None,
                  label_width: int = 150) -> np.ndarray:
    """The labelled figure: rows of uint8 tiles [(n_i, H, W, C) or lists of (H, W, C)] -> one uint8
    (H', W', 3) image at its final size: a title, column labels above, row labels at the left
    (wrapped to ``label_width`` px), tiles upscaled by ``scale`` on white (short rows end early), an
    optional strip under each row (``under_rows[i]``: uint8 (h, w, 3), already at final size) and
    the caption wrapped underneath."""
    rows = [[_rgb(t) for t in r] for r in rows]
    if not rows or not any(rows):
        raise ValueError("a figure needs at least one tile")
    h, w = rows[0][0].shape[:2]
    th, tw, pad = h * scale, w * scale, PAD * scale
    ncol = max(len(r) for r in rows)
    left = label_width if row_labels else 0
    width = left + ncol * (tw + pad) + pad
    parts = []
    if title:
        parts.append(text_block(wrap(title, TITLE_PX, width - 2 * MARGIN), width, TITLE_PX, TEXT, "center"))
    if col_labels:
        wrapped = [wrap(label, FONT_PX, tw + pad - 2) for label in col_labels]
        depth = max(len(x) for x in wrapped)
        header = np.full((depth * int(FONT_PX * 1.35) + MARGIN, width, 3), BACKGROUND, np.uint8)
        for j, lines in enumerate(wrapped[:ncol]):
            cell = text_block(lines + [""] * (depth - len(lines)), tw + pad, FONT_PX, TEXT, "center")
            x = left + pad // 2 + j * (tw + pad)
            header[: cell.shape[0], x : x + cell.shape[1]] = cell[: header.shape[0]]
        parts.append(header)
    for i, r in enumerate(rows):
        band = np.full((th + pad, width, 3), BACKGROUND, np.uint8)
        for j, tile in enumerate(r):
            x = left + pad + j * (tw + pad)
            band[pad : pad + th, x : x + tw] = upscale(tile, scale)
        if row_labels:
            label = text_block(wrap(row_labels[i], FONT_PX, left - 2 * MARGIN), left, FONT_PX, TEXT, "right")
            y = max(0, (band.shape[0] - label.shape[0]) // 2)
            band[y : y + min(label.shape[0], band.shape[0]), :left] = label[: band.shape[0] - y]
        parts.append(band)
        if under_rows is not None and under_rows[i] is not None:
            strip = _rgb(under_rows[i])
            under = np.full((strip.shape[0] + pad, width, 3), BACKGROUND, np.uint8)
            under[: strip.shape[0], left + pad : left + pad + strip.shape[1]] = strip[:, : width - left - pad]
            parts.append(under)
    parts.append(np.full((pad, width, 3), BACKGROUND, np.uint8))
    return caption_strip(np.concatenate(parts), caption)


def bar_strip(values: Sequence[float], positions: Sequence[int], width: int, height: int, top: float,
              label: str = "", colour: str = SERIES[0]) -> np.ndarray:
    """uint8 (height, width, 3): a small bar chart on white, one bar of ``values[i] / top`` of the
    height centred at x = ``positions[i]``, with a baseline and ``label`` at the top left."""
    from PIL import Image, ImageDraw, ImageColor

    canvas = Image.new("RGB", (width, height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    fill = ImageColor.getrgb(colour)
    plot_h = height - 2
    for v, x in zip(values, positions):
        bar = max(1, int(round(plot_h * min(max(float(v) / top, 0.0), 1.0)))) if top > 0 else 1
        draw.rectangle([x - 3, height - 1 - bar, x + 3, height - 1], fill=fill)
    draw.line([0, height - 1, width, height - 1], fill=MUTED)
    if label:
        draw.text((2, 0), plain(label), font=font(11), fill=MUTED)
    return np.asarray(canvas)


def outline(mask: np.ndarray) -> np.ndarray:
    """bool (H, W) region -> bool (H, W) its inner boundary (pixels of the region with a 4-neighbour outside)."""
    m = np.pad(np.asarray(mask, bool), 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return np.asarray(mask, bool) & ~inner


def draw_outline(image: np.ndarray, mask: np.ndarray, scale: int = SCALE, colour=ACCENT) -> np.ndarray:
    """uint8 (H, W, C) tile and bool (H, W) region -> (H*scale, W*scale, 3) with the region's
    boundary drawn in ``colour`` at the upscaled size (thin, so the pixels inside stay visible)."""
    big = upscale(_rgb(image), scale).copy()
    edge = outline(upscale(np.asarray(mask, bool)[..., None], scale)[..., 0])
    big[edge] = colour
    return big


def plotly_style(fig, title: str | None = None, x: str | None = None, y: str | None = None):
    """Apply the shared plotly style (font, white background, colours, margins) and, when given,
    the title and axis titles (with units); returns ``fig``."""
    fig.update_layout(font=PLOTLY_FONT, paper_bgcolor="white", plot_bgcolor="white", colorway=list(SERIES),
                      margin=dict(l=60, r=20, t=60 if (title or fig.layout.title.text) else 20, b=50),
                      legend=dict(bgcolor="rgba(255,255,255,0.8)"))
    fig.update_xaxes(showline=True, linecolor="#888", gridcolor="#eee", zeroline=False)
    fig.update_yaxes(showline=True, linecolor="#888", gridcolor="#eee", zeroline=False)
    if title is not None:
        fig.update_layout(title=dict(text=title, x=0.02))
    if x is not None:
        fig.update_layout(xaxis_title=x)
    if y is not None:
        fig.update_layout(yaxis_title=y)
    return fig
