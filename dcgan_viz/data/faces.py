"""Synthetic "faces": cartoon-realistic portraits with independent ground-truth attributes.

Every image is a pure function of ``(seed, index)``: each random quantity is drawn from
:mod:`dcgan_viz.data.rng` with its own stream, so image ``i`` is identical whether rendered
alone or in any batch. Rendering is vectorised over the batch (loops run only over a fixed list
of parts) and works on any device at any square size. Geometry is in normalised units: ``x``
and ``y`` run over [-1, 1] across the image, ``y`` pointing down.

Attribute conventions (``FACE_ATTRIBUTES``):

* ``smile`` in [0, 1]: 0 neutral straight mouth, ~0.4 closed upward curve, 1 broad open smile with teeth.
* ``glasses`` in {0 none, 1 clear (rims, eyes visible), 2 sunglasses (dark opaque lenses)}.
* ``beard`` in {0, 1}; ``hair_length`` in [0, 1] (short crop ... past the shoulders);
  ``hair_color`` indexes ``HAIR_COLORS``; ``skin_tone`` in [0, 1] (light ... dark).
* ``yaw`` in [-1, 1]: +1 turns the face towards the image's right (the person looks to the
  viewer's right: eyes, nose and mouth shift right on the head, the right half narrows),
  -1 towards the image's left. ``gaze`` in [-1, 1] moves the irises with the same convention.

The attributes are independent draws; everything else (head placement, colours, background,
light, feature sizes) is nuisance drawn from further streams. Only element-wise float ops with
correctly rounded results (+, -, *, /, sqrt, comparisons) are used, so CPU results do not depend
on whether torch takes its vectorised or scalar path, i.e. on the batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Sequence

import torch

from . import rng

FACE_ATTRIBUTES = ("smile", "glasses", "beard", "hair_length", "hair_color", "skin_tone", "yaw", "gaze")
HAIR_COLORS = ("black", "brown", "blond", "red", "grey")
FACE_ATTRIBUTE_KINDS = {
    "smile": "continuous",
    "glasses": "categorical:3",
    "beard": "categorical:2",
    "hair_length": "continuous",
    "hair_color": f"categorical:{len(HAIR_COLORS)}",
    "skin_tone": "continuous",
    "yaw": "continuous_signed",
    "gaze": "continuous_signed",
}
FACE_PARTS = ("background", "skin", "hair", "eyes", "mouth", "glasses", "beard", "clothes")
_PART = {name: i for i, name in enumerate(FACE_PARTS)}

# Pixels per plane rendered together: on CPU small enough to stay in cache, on GPU large enough
# to amortise kernel launches.
_BLOCK_PIXELS = {"cpu": 1 << 20, "cuda": 1 << 26}
_MAX_YAW = 0.6  # radians of head turn at |yaw| = 1 (about 34 degrees: three-quarter view)

# Nuisance ranges; the static paint windows below are derived from them.
_CX = 0.05  # head centre x in [-_CX, _CX]
_CY = (-0.14, -0.06)
_A = (0.42, 0.5)  # head half-width
_ASPECT = (1.2, 1.32)  # head half-height / half-width

_SKIN_RGB = ((0.98, 0.84, 0.74), (0.80, 0.58, 0.43), (0.34, 0.22, 0.15))  # tone 0, 0.5, 1
_HAIR_RGB = ((0.09, 0.08, 0.08), (0.36, 0.22, 0.12), (0.86, 0.72, 0.44), (0.66, 0.26, 0.11), (0.72, 0.72, 0.74))
_HAIR_CUM = (0.28, 0.56, 0.74, 0.86)  # cumulative probabilities of HAIR_COLORS[:-1]
_IRIS_RGB = ((0.30, 0.18, 0.08), (0.25, 0.45, 0.70), (0.30, 0.50, 0.30), (0.12, 0.08, 0.06))
_FRAME_RGB = ((0.05, 0.05, 0.06), (0.35, 0.20, 0.10), (0.62, 0.62, 0.66))


class _Stream(IntEnum):
    """rng stream per parameter family (never renumber: it would change every image)."""

    SMILE = 1
    GLASSES = 2
    BEARD = 3
    HAIR_LENGTH = 4
    HAIR_COLOR = 5
    SKIN_TONE = 6
    YAW = 7
    GAZE = 8
    HEAD = 20
    FEATURES = 21
    HAIR_STYLE = 22  # 4 slots: back-hair width, cap volume, hairline height, streak phase
    SKIN_TINT = 23
    BACKGROUND = 24
    BACKGROUND_NOISE = 25
    LIGHT = 26
    CLOTHES = 27
    ACCESSORIES = 28
    STUBBLE = 29
    BEARD_STYLE = 30
    EYES = 31
    MOUTH = 32
    HAIR_TINT = 33


@dataclass
class FacesBatch:
    """Rendered faces with their ground truth.

    images: uint8 (N, H, W, 3). attributes: float32 (N, len(FACE_ATTRIBUTES)).
    masks: uint8 (N, H, W) ids into FACE_PARTS. indices: int64 (N,).
    """

    images: torch.Tensor
    attributes: torch.Tensor
    masks: torch.Tensor
    indices: torch.Tensor


def render_faces(seed: int, indices: int | Sequence[int] | torch.Tensor, size: int = 64,
                 device: torch.device | str | None = None) -> FacesBatch:
    """Render faces ``indices`` of ``seed`` at ``size`` x ``size`` on ``device``.

    ``indices``: an int n (images 0..n-1), a sequence of ints or an int64 tensor.
    """
    if size < 4:
        raise ValueError(f"size must be >= 4, got {size}")
    if isinstance(indices, torch.Tensor):
        device = indices.device if device is None else device
        idx = indices.to(device=device, dtype=torch.int64).reshape(-1)
    elif isinstance(indices, int):
        idx = torch.arange(indices, dtype=torch.int64, device=device)
    else:
        idx = torch.as_tensor(list(indices), dtype=torch.int64, device=device).reshape(-1)
    if idx.numel() and int(idx.min()) < 0:
        raise ValueError("face indices must be >= 0")
    block = max(1, _BLOCK_PIXELS.get(idx.device.type, 1 << 20) // (size * size))
    parts = [_render_block(seed, b, size) for b in idx.split(block)]  # an empty idx gives one empty block
    return FacesBatch(*(torch.cat(p) for p in zip(*parts)), indices=idx)


# ----------------------------------------------------------------------------- random draws


def _cols(u: torch.Tensor) -> list[torch.Tensor]:
    """Split (N, k) draws into k per-image columns of shape (N, 1, 1)."""
    return [c.reshape(-1, 1, 1) for c in u.unbind(1)]


def _mix(lo: float | torch.Tensor, hi: float | torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation lo -> hi at t (plain ops, no fused lerp)."""
    return lo + (hi - lo) * t


def _category(u: torch.Tensor, cumulative: Sequence[float]) -> torch.Tensor:
    """Categorical index (same shape as uniform ``u``) for cumulative class probabilities."""
    out = torch.zeros_like(u)
    for c in cumulative:
        out += (u >= c).float()
    return out


def _draw_attributes(seed: int, index: torch.Tensor) -> torch.Tensor:
    """Independent ground-truth attributes, float32 (N, len(FACE_ATTRIBUTES)), without rendering."""
    u = lambda stream, k=1: rng.uniform(seed, index, stream, k)  # noqa: E731
    mode, value = u(_Stream.SMILE, 2).unbind(1)
    # a third clearly neutral, a third clearly smiling, a third anywhere in between
    smile = torch.where(mode < 1 / 3, 0.12 * value, torch.where(mode < 2 / 3, 0.8 + 0.2 * value, value))
    glasses = _category(u(_Stream.GLASSES)[:, 0], (0.5, 0.75))
    beard = (u(_Stream.BEARD)[:, 0] < 0.35).float()
    hair_color = _category(u(_Stream.HAIR_COLOR)[:, 0], _HAIR_CUM)
    columns = (smile, glasses, beard, u(_Stream.HAIR_LENGTH)[:, 0], hair_color, u(_Stream.SKIN_TONE)[:, 0],
               2 * u(_Stream.YAW)[:, 0] - 1, 2 * u(_Stream.GAZE)[:, 0] - 1)
    return torch.stack(columns, 1)


def _sin(x: torch.Tensor) -> torch.Tensor:
    """sin by Taylor series (only +, *, /: batch-size independent); error < 3e-8 for |x| <= 1."""
    x2 = x * x
    return x * (1 - x2 / 6 * (1 - x2 / 20 * (1 - x2 / 42 * (1 - x2 / 72))))


def _palette(rgb: Sequence[Sequence[float]], k: torch.Tensor) -> torch.Tensor:
    """Rows of the table ``rgb`` picked by float indices ``k`` (N, 1, 1) -> (N, 3, 1, 1)."""
    table = torch.tensor(rgb, dtype=torch.float32, device=k.device)
    return table[k.reshape(-1).long()].reshape(-1, 3, 1, 1)


def _const(rgb: Sequence[float], device: torch.device) -> torch.Tensor:
    """A fixed colour as (1, 3, 1, 1)."""
    return torch.tensor(rgb, dtype=torch.float32, device=device).reshape(1, 3, 1, 1)


def _unit(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise the 2-vector (x, y)."""
    n = torch.sqrt(x * x + y * y + 1e-6)
    return x / n, y / n


# ----------------------------------------------------------------------------- canvas


@dataclass
class _Window:
    """A rectangle of the canvas: pixel slices and the normalised coordinates of its pixel centres."""

    rows: slice
    cols: slice
    x: torch.Tensor  # (1, 1, w)
    y: torch.Tensor  # (1, h, 1)


class _Canvas:
    """Float RGB image (N, 3, S, S) and part mask (N, S, S) painted back to front through windows."""

    def __init__(self, n: int, size: int, device: torch.device) -> None:
        self.size = size
        self.px = 2.0 / size
        self.coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * self.px - 1
        self.img = torch.empty(n, 3, size, size, device=device)
        self.mask = torch.zeros(n, size, size, dtype=torch.uint8, device=device)
        self.full = self.window(-1, 1, -1, 1)

    def window(self, x0: float, x1: float, y0: float, y1: float) -> _Window:
        """Window covering normalised box [x0, x1] x [y0, y1] plus a pixel of margin (clipped to the image)."""
        to_px = lambda v: min(max(int(math.floor((v + 1) / self.px)), 0), self.size)  # noqa: E731
        c0, c1, r0, r1 = to_px(x0 - self.px), to_px(x1 + self.px) + 1, to_px(y0 - self.px), to_px(y1 + self.px) + 1
        return _Window(slice(r0, r1), slice(c0, c1), self.coords[c0:c1].reshape(1, 1, -1),
                       self.coords[r0:r1].reshape(1, -1, 1))

    def paint(self, win: _Window, alpha: torch.Tensor, color: torch.Tensor, part: str | None = None,
              cover: torch.Tensor | None = None) -> None:
        """Blend ``color`` (broadcastable to (N, 3, h, w)) with ``alpha`` (N, h, w) into ``win``.

        Pixels where ``cover`` (default ``alpha``) exceeds 1/2 are labelled ``part``.
        """
        view = self.img[:, :, win.rows, win.cols]
        view += (color - view) * alpha.unsqueeze(1)
        if part is not None:
            self.mask[:, win.rows, win.cols].masked_fill_((alpha if cover is None else cover) > 0.5, _PART[part])


def _head_window(canvas: _Canvas, u0: float, u1: float, v0: float, v1: float) -> _Window:
    """Window holding head-relative box x = cx + a*u, y = cy + b*v (u0..u1, v0..v1) for every head."""
    b = (_A[0] * _ASPECT[0], _A[1] * _ASPECT[1])
    x0 = -_CX + min(u0 * _A[0], u0 * _A[1])
    x1 = _CX + max(u1 * _A[0], u1 * _A[1])
    y0 = _CY[0] + min(v0 * b[0], v0 * b[1])
    y1 = _CY[1] + max(v1 * b[0], v1 * b[1])
    return canvas.window(x0, x1, y0, y1)


def _soft(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage of the implicit shape q < 1; ``k`` ~ shape radius / (2 * pixel)."""
    return q.mul(-k).add_(k + 0.5).clamp_(0, 1)


def _edge(d: torch.Tensor, inv_px: float) -> torch.Tensor:
    """Anti-aliased coverage of d > 0 for a signed distance ``d`` (normalised units); modifies ``d``."""
    return d.mul_(inv_px).add_(0.5).clamp_(0, 1)


def _band(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, inv_px: float) -> torch.Tensor:
    """Anti-aliased coverage of lo < y < hi (bounds broadcast against y)."""
    return _edge(y - lo, inv_px).mul_(_edge(hi - y, inv_px))


def _neck(f: _Face, win: _Window, top: torch.Tensor, inv_px: float) -> torch.Tensor:
    """Coverage (N, h, w) of the neck column from ``top`` (N, 1, 1) downwards."""
    return _edge(f.neck_w - (win.x - f.neck_x).abs(), inv_px) * _edge(win.y - top, inv_px)


def _ellipse(win: _Window, x0: torch.Tensor, y0: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor) -> torch.Tensor:
    """Implicit axis-aligned ellipse q (N, h, w): < 1 inside (separable, one full-size add)."""
    return ((win.x - x0) / rx).square() + ((win.y - y0) / ry).square()


def _egg(win: _Window, cx: torch.Tensor, cy: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
         chin_shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Egg-shaped head outline, narrower towards the chin whose centre moves by ``chin_shift``.

    Returns (q (N, h, w) < 1 inside, X (N, h, w), Y (N, h, 1)) in head-normalised units.
    """
    y = (win.y - cy) / b
    low = y.clamp(0, 1).square()
    x = (win.x - (cx + chin_shift * low)).mul_(1 / (a * (1 - 0.16 * low)))
    return x.square().add_(y.square()), x, y


# ----------------------------------------------------------------------------- per-face parameters


@dataclass
class _Face:
    """Per-image parameters, each (N, 1, 1) (colours (N, 3, 1, 1)), plus access to fresh draws."""

    seed: int
    index: torch.Tensor
    attrs: torch.Tensor  # (N, len(FACE_ATTRIBUTES))
    cx: torch.Tensor
    cy: torch.Tensor
    a: torch.Tensor  # head half-width
    b: torch.Tensor  # head half-height
    sin_yaw: torch.Tensor
    cos_yaw: torch.Tensor
    light: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # unit vector towards the light
    skin: torch.Tensor
    hair: torch.Tensor
    eye_y: torch.Tensor
    nose_y: torch.Tensor
    mouth_y: torch.Tensor
    neck_x: torch.Tensor
    neck_w: torch.Tensor  # neck half-width

    def attr(self, name: str) -> torch.Tensor:
        """Attribute column ``name`` as (N, 1, 1)."""
        return self.attrs[:, FACE_ATTRIBUTES.index(name)].reshape(-1, 1, 1)

    def draw(self, stream: _Stream, k: int) -> list[torch.Tensor]:
        """k fresh uniform [0, 1) columns (N, 1, 1) from ``stream``."""
        return _cols(rng.uniform(self.seed, self.index, stream, k))

    def project(self, u: float, depth: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Image x of the head point at horizontal offset ``u`` (head half-widths, frontal view)
        protruding ``depth`` (1 = on the head ellipsoid), and its horizontal foreshortening."""
        c = math.sqrt(1 - u * u)
        x = self.cx + self.a * (u * self.cos_yaw + depth * c * self.sin_yaw)
        return x, ((c * self.cos_yaw - u * self.sin_yaw) / c).clamp_min(0.15)


def _make_face(seed: int, index: torch.Tensor, attrs: torch.Tensor) -> _Face:
    """Head placement, pose, light, colours and feature heights of each image."""
    draw = lambda stream, k: _cols(rng.uniform(seed, index, stream, k))  # noqa: E731
    attr = lambda name: attrs[:, FACE_ATTRIBUTES.index(name)].reshape(-1, 1, 1)  # noqa: E731
    ucx, ucy, ua, uasp = draw(_Stream.HEAD, 4)
    ueye, unose, umouth, uneck = draw(_Stream.FEATURES, 4)
    ulx, uly = draw(_Stream.LIGHT, 2)
    cx, cy, a = _mix(-_CX, _CX, ucx), _mix(*_CY, ucy), _mix(*_A, ua)
    b = a * _mix(*_ASPECT, uasp)
    sin_yaw = _sin(_MAX_YAW * attr("yaw"))
    lx, ly = _mix(-0.75, 0.75, ulx), _mix(-0.6, -0.1, uly)
    nose = _mix(0.24, 0.32, unose)
    return _Face(seed=seed, index=index, attrs=attrs, cx=cx, cy=cy, a=a, b=b,
                 sin_yaw=sin_yaw, cos_yaw=torch.sqrt(1 - sin_yaw * sin_yaw),
                 light=(lx, ly, torch.sqrt(1 - lx * lx - ly * ly)),
                 skin=_skin_rgb(attr("skin_tone"), draw(_Stream.SKIN_TINT, 3)),
                 hair=_hair_rgb(attr("hair_color"), draw(_Stream.HAIR_TINT, 2)),
                 eye_y=cy + b * _mix(-0.12, 0.0, ueye), nose_y=cy + b * nose,
                 mouth_y=cy + b * (nose + _mix(0.2, 0.26, umouth)),
                 neck_x=cx + 0.15 * a * sin_yaw, neck_w=a * _mix(0.36, 0.46, uneck))


def _skin_rgb(tone: torch.Tensor, jitter: list[torch.Tensor]) -> torch.Tensor:
    """Skin colour (N, 3, 1, 1): piecewise-linear light -> medium -> dark in ``tone``, small hue jitter."""
    light, mid, dark = (_const(rgb, tone.device) for rgb in _SKIN_RGB)
    t = tone.unsqueeze(1)
    rgb = torch.where(t < 0.5, _mix(light, mid, 2 * t), _mix(mid, dark, 2 * t - 1))
    hue = torch.cat([1 + 0.05 * (j - 0.5) for j in jitter], 1).unsqueeze(-1)
    return rgb * hue


def _hair_rgb(kind: torch.Tensor, jitter: list[torch.Tensor]) -> torch.Tensor:
    """Hair colour (N, 3, 1, 1) of HAIR_COLORS index ``kind``, with brightness and warmth jitter."""
    bright, warm = (j.unsqueeze(1) for j in jitter)
    shift = _const((1.0, 0.0, -1.0), kind.device)
    return (_palette(_HAIR_RGB, kind) * _mix(0.8, 1.15, bright) + 0.04 * (warm - 0.5) * shift).clamp(0, 1)


def _rgb(cols: Sequence[torch.Tensor]) -> torch.Tensor:
    """Three (N, 1, 1) columns -> colour (N, 3, 1, 1)."""
    return torch.cat(list(cols), 1).unsqueeze(-1)


@lru_cache(maxsize=8)
def _pixel_noise(size: int, device: torch.device) -> torch.Tensor:
    """Fixed per-pixel uniform noise (2 * size, 2 * size), cut per image at random offsets."""
    cells = torch.arange(4 * size * size, device=device)
    return rng.uniform(0, cells, _Stream.STUBBLE, 1).reshape(2 * size, 2 * size)


def _texture(c: _Canvas, f: _Face, win: _Window) -> torch.Tensor:
    """Per-pixel noise in [0, 1) (N, h, w) over ``win``, a random crop of `_pixel_noise` per image."""
    offset = rng.randint(f.seed, f.index, _Stream.STUBBLE, 0, c.size, 2)
    dev = offset.device
    rows = torch.arange(win.rows.start, win.rows.stop, device=dev).reshape(1, -1, 1) + offset[:, 0].reshape(-1, 1, 1)
    cols = torch.arange(win.cols.start, win.cols.stop, device=dev).reshape(1, 1, -1) + offset[:, 1].reshape(-1, 1, 1)
    return _pixel_noise(c.size, dev).reshape(-1)[rows * (2 * c.size) + cols]


def _smooth_noise(c: _Canvas, f: _Face, grid: int = 4) -> torch.Tensor:
    """Soft noise in [-0.5, 0.5] (N, S, S): smoothstep interpolation of a random grid x grid lattice."""
    knots = rng.uniform(f.seed, f.index, _Stream.BACKGROUND_NOISE, grid * grid).reshape(-1, grid, grid) - 0.5
    pos = (c.coords + 1) * ((grid - 1) / 2)
    lo = pos.floor().clamp(max=grid - 2)
    t = pos - lo
    t = t * t * (3 - 2 * t)
    lo = lo.long()
    rows = knots[:, :, lo] * (1 - t) + knots[:, :, lo + 1] * t  # (N, grid, S): along x
    t = t.reshape(-1, 1)
    return rows[:, lo, :] * (1 - t) + rows[:, lo + 1, :] * t


def _hair_fill(f: _Face, win: _Window, q: torch.Tensor) -> torch.Tensor:
    """Hair colour field (N, 3, h, w): streaks across x, darker towards the edge of shape ``q``."""
    *_, phase = f.draw(_Stream.HAIR_STYLE, 4)
    s = win.x / (0.22 * f.a) + phase
    streak = ((s - s.floor()) * 2 - 1).abs_().mul_(0.2).add_(0.9)  # triangle wave (N, 1, w)
    shade = q.clamp(0, 1).mul_(-0.35).add_(1.1).mul_(streak)
    return f.hair * shade.unsqueeze(1)


# ----------------------------------------------------------------------------- parts, back to front


def _paint_background(c: _Canvas, f: _Face) -> None:
    """Gradient, two-tone split or soft noise between two random colours."""
    u = f.draw(_Stream.BACKGROUND, 10)
    kind = _category(u[0], (1 / 3, 2 / 3))  # 0 gradient, 1 two-tone, 2 soft noise
    dx, dy = _unit(u[1] - 0.5, u[2] - 0.5)
    muted = lambda cols: _mix(0.5, _rgb(cols), 0.7).clamp(0.05, 0.95)  # noqa: E731
    c0, c1 = muted(u[3:6]), muted(u[6:9])
    sharp = torch.where(kind == 1, 12.0, 0.7)
    amp = torch.where(kind == 2, 1.6, 0.15)
    ramp = (c.full.x * dx + c.full.y * dy).sub_(0.6 * (u[9] - 0.5)).mul_(sharp).add_(0.5)
    t = ramp.add_(_smooth_noise(c, f).mul_(amp)).clamp_(0, 1)
    c.img.copy_(c0.expand_as(c.img))
    c.paint(c.full, t, c1)


def _paint_body(c: _Canvas, f: _Face) -> None:
    """Neck (skin) and shoulders (clothes) with a neckline."""
    u = f.draw(_Stream.CLOTHES, 8)
    win = c.window(-1, 1, _CY[0] + 0.45 * _A[0] * _ASPECT[0], 1)
    inv = 1 / c.px
    c.paint(win, _neck(f, win, f.cy + 0.5 * f.b, inv), f.skin * 0.82, "skin")
    top = f.cy + f.b * _mix(1.0, 1.15, u[0])
    rx, ry = _mix(0.85, 1.05, u[1]), _mix(0.4, 0.55, u[2])
    q = _ellipse(win, 0.6 * f.cx, top + ry, rx, ry)
    neckline = _ellipse(win, f.neck_x, top, f.neck_w * _mix(1.1, 1.8, u[3]), f.b * _mix(0.1, 0.35, u[4]))
    alpha = _soft(q, ry * (0.5 * inv)).mul_(1 - _soft(neckline, f.neck_w * (0.5 * inv)))
    shade = q.clamp_(0, 1).mul_(-0.35).add_(1.1)
    c.paint(win, alpha, _rgb(u[5:8]).mul(0.85).add(0.05) * shade.unsqueeze(1), "clothes")


def _paint_back_hair(c: _Canvas, f: _Face) -> None:
    """Long hair behind the head, growing from nothing (short crop) to past the shoulders."""
    length = f.attr("hair_length")
    uw, *_ = f.draw(_Stream.HAIR_STYLE, 4)
    win = _head_window(c, -1.7, 1.7, -1.13, 3.0)
    top, bottom = f.cy - 1.12 * f.b, f.cy + f.b * (2.8 * length - 0.2)
    ry = (bottom - top) / 2
    q = _ellipse(win, f.cx - 0.25 * f.a * f.sin_yaw, top + ry, f.a * (1 + 0.35 * length) * _mix(0.95, 1.1, uw), ry)
    alpha = _soft(q, f.a / (2 * c.px)).mul_(((length - 0.15) * 8).clamp(0, 1))
    alpha.mul_(1 - _neck(f, win, f.cy + 0.85 * f.b, 1 / c.px))  # the neck shows between the locks
    c.paint(win, alpha, _hair_fill(f, win, q), "hair")


def _paint_head(c: _Canvas, f: _Face, win: _Window) -> None:
    """Shadow on the neck, then the lit egg-shaped head."""
    chin = 0.15 * f.a * f.sin_yaw
    shadow, _, _ = _egg(win, f.cx, f.cy + 0.1 * f.b, 0.95 * f.a, f.b, chin)
    c.paint(win, _soft(shadow, torch.full_like(f.a, 3.0)).mul_(0.45), f.skin * 0.45)
    q, x, y = _egg(win, f.cx, f.cy, f.a, f.b, chin)
    alpha = _soft(q, f.a / (2 * c.px))
    lx, ly, lz = f.light
    normal_z = (1 - q).clamp_(min=0).sqrt_()
    shade = (x * lx).add_(y * ly).add_(normal_z.mul_(lz)).clamp_(min=0).mul_(0.5).add_(0.55)
    c.paint(win, alpha, f.skin * shade.unsqueeze(1), "skin")


def _paint_ears(c: _Canvas, f: _Face) -> None:
    """Ears at +-83 degrees longitude: the far one hides behind the head as it turns."""
    win = _head_window(c, -1.3, 1.3, -0.1, 0.26)
    s, co = math.sin(1.45), math.cos(1.45)
    for side in (-1.0, 1.0):
        facing = co * f.cos_yaw - side * s * f.sin_yaw  # cosine of the ear's angle to the viewer
        x = f.cx + f.a * (side * s * f.cos_yaw + co * f.sin_yaw)
        visible = ((facing + 0.3) / 0.3).clamp(0, 1)
        rx, ry, y = f.a * (0.09 + 0.12 * facing.clamp(min=0)), 0.17 * f.b, f.cy + 0.08 * f.b
        outer = _soft(_ellipse(win, x + side * 0.03 * f.a, y, rx, ry), rx / (2 * c.px)).mul_(visible)
        c.paint(win, outer, f.skin * 0.88, "skin")
        inner = _soft(_ellipse(win, x, y, 0.5 * rx, 0.6 * ry), torch.full_like(rx, 1.5)).mul_(0.5 * visible)
        c.paint(win, inner, f.skin * 0.6)


def _paint_hair_cap(c: _Canvas, f: _Face, win: _Window) -> None:
    """Hair over the skull above a hairline that comes further down the sides as hair grows."""
    length = f.attr("hair_length")
    _, uvol, uline, _ = f.draw(_Stream.HAIR_STYLE, 4)
    vol = 0.02 + 0.12 * length * uvol
    q = _ellipse(win, f.cx - 0.1 * f.a * f.sin_yaw, f.cy - 0.06 * f.b, f.a * (1.04 + vol), f.b * (1.03 + vol))
    face_x, _ = f.project(0.0, 1.0)
    sides = ((win.x - face_x) / f.a).square().clamp(max=1)  # (N, 1, w)
    hairline = f.cy + f.b * (_mix(-0.75, -0.5, uline) + (0.25 + 0.75 * length) * sides)
    alpha = _soft(q, f.a / (2 * c.px)).mul_(_edge(hairline - win.y, 0.7 / c.px))
    c.paint(win, alpha, _hair_fill(f, win, q), "hair")


def _paint_beard(c: _Canvas, f: _Face) -> None:
    """Beard: a darker stubbly area over jaw and chin below a line through the upper lip."""
    win = _head_window(c, -1.15, 1.15, -0.35, 1.15)
    density, line = f.draw(_Stream.BEARD_STYLE, 2)
    q, _, _ = _egg(win, f.cx, f.cy + 0.06 * f.b, 1.03 * f.a, 1.04 * f.b, 0.15 * f.a * f.sin_yaw)
    top = f.mouth_y - f.b * (_mix(0.1, 0.16, line) + 0.55 * ((win.x - f.cx) / f.a).square())
    cover = _soft(q, f.a / (2 * c.px)).mul_(_edge(win.y - top, 1 / c.px)).mul_(f.attr("beard"))
    alpha = _texture(c, f, win).mul_(0.2).add_(0.8).mul_(cover).mul_(_mix(0.75, 0.95, density))
    color = torch.minimum(f.hair * 0.85, f.skin * 0.55)
    c.paint(win, alpha, color, "beard", cover=cover)


def _paint_nose(c: _Canvas, f: _Face) -> None:
    """Nose by shading only: a shadowed flank, a shadow under the tip and a highlight."""
    win = _head_window(c, -1.0, 1.0, -0.2, 0.5)
    tip_x, _ = f.project(0.0, 1.25)
    bridge_x, _ = f.project(0.0, 1.05)
    side = (-3 * f.light[0]).clamp(-1, 1)  # away from the light
    blur = torch.full_like(f.a, 1.5)
    dark, a, b = f.skin * 0.55, f.a, f.b
    flank = _ellipse(win, (tip_x + bridge_x) / 2 + side * 0.07 * a, (f.eye_y + f.nose_y) / 2, 0.05 * a,
                     (f.nose_y - f.eye_y) / 2)
    c.paint(win, _soft(flank, blur).mul_(0.35), dark)
    under = _ellipse(win, tip_x, f.nose_y + 0.02 * b, 0.13 * a, 0.04 * b)
    c.paint(win, _soft(under, blur * 1.5).mul_(0.5), dark)
    tip = _ellipse(win, tip_x - side * 0.02 * a, f.nose_y - 0.07 * b, 0.06 * a, 0.05 * b)
    c.paint(win, _soft(tip, blur).mul_(0.25), (f.skin * 1.15).clamp(max=1))


def _eye_window(c: _Canvas) -> _Window:
    """Window of eyes, brows and glasses (arms reach the head's sides)."""
    return _head_window(c, -1.2, 1.2, -0.62, 0.22)


def _paint_eyes(c: _Canvas, f: _Face) -> None:
    """Eyebrows and eyes: dark lash outline, white, iris moved by gaze, pupil; smiling narrows them."""
    win = _eye_window(c)
    usize, uiris, uheight, uarch, uthick = f.draw(_Stream.EYES, 5)
    rx0 = f.a * _mix(0.17, 0.21, usize)
    ry = rx0 * 0.55 * (1 - 0.3 * f.attr("smile"))
    iris = _palette(_IRIS_RGB, _category(uiris, (0.4, 0.6, 0.8)))
    white = _const((0.93, 0.91, 0.88), f.a.device)
    brow = (f.hair * 0.6).clamp(max=0.35)
    k = ry / (2 * c.px)
    for side in (-1.0, 1.0):
        x, scale = f.project(0.4 * side, 0.92)
        rx = rx0 * scale
        lash = _soft(_ellipse(win, x, f.eye_y - 0.1 * ry, 1.15 * rx, 1.35 * ry), k).mul_(0.85)
        c.paint(win, lash, white * 0.12)
        sclera = _soft(_ellipse(win, x, f.eye_y, rx, ry), k)
        c.paint(win, sclera, white, "eyes")
        iris_x = x + 0.45 * rx * f.attr("gaze")
        for radius, color in ((0.9, iris), (0.45, white * 0.03)):
            disc = _ellipse(win, iris_x, f.eye_y, radius * ry * scale, radius * ry)
            c.paint(win, _soft(disc, k * radius).mul_(sclera), color)
        t = ((win.x - x) / (1.3 * rx)).square()
        mid = f.eye_y - ry - f.a * _mix(0.1, 0.16, uheight) + f.a * _mix(0.02, 0.07, uarch) * t
        half = f.a * _mix(0.025, 0.045, uthick) * (1 - t).clamp(min=0)
        ends = _edge(1.3 * rx - (win.x - x).abs(), 1 / c.px)
        c.paint(win, _band(win.y, mid - half, mid + half, 1 / c.px).mul_(ends), brow, "hair")


def _paint_mouth(c: _Canvas, f: _Face) -> None:
    """Lips around a line that curves up with smile and opens to show teeth for a broad smile."""
    win = _head_window(c, -0.9, 0.9, 0.3, 0.9)
    (uwidth,) = f.draw(_Stream.MOUTH, 1)
    smile = f.attr("smile")
    x, scale = f.project(0.0, 1.0)
    rx = f.a * (0.3 + 0.16 * smile) * _mix(0.9, 1.1, uwidth) * scale
    t = ((win.x - x) / rx).square()  # (N, 1, w)
    inside = (1 - t).clamp_(min=0)
    ends = _edge(rx - (win.x - x).abs(), 1 / c.px)
    mid = f.mouth_y - 0.13 * f.a * smile * t
    gap = f.a * (0.02 + 0.2 * ((smile - 0.4) / 0.6).clamp(0, 1)) * inside
    upper, lower = mid - 0.2 * gap, mid + 0.8 * gap
    lip = inside.sqrt()
    inv = 1 / c.px
    lips = _band(win.y, upper - 0.05 * f.a * lip, lower + 0.065 * f.a * lip, inv).mul_(ends)
    c.paint(win, lips, f.skin * 0.7 + _const((0.17, 0.03, 0.03), x.device), "mouth")
    c.paint(win, _band(win.y, upper, lower, inv).mul_(ends), f.skin * 0.2)
    teeth = _band(win.y, upper, upper + 0.45 * gap, inv).mul_(ends).mul_((gap > 0.04 * f.a).float())
    c.paint(win, teeth, _const((0.95, 0.93, 0.86), x.device))


def _paint_glasses(c: _Canvas, f: _Face) -> None:
    """Clear glasses (tinted lenses, rims) or sunglasses (dark opaque lenses), bridge and arms."""
    win = _eye_window(c)
    uw, uh, uthick, uframe, utint = f.draw(_Stream.ACCESSORIES, 5)
    kind = f.attr("glasses")
    worn, sun = (kind > 0).float(), (kind == 2).float()
    ry, half = f.a * _mix(0.17, 0.22, uh) * (1 + 0.1 * sun), f.a * _mix(0.025, 0.04, uthick)
    y = f.eye_y + 0.02 * f.a
    inv = 1 / c.px
    fills, rings, edges = [], [], []
    for side in (-1.0, 1.0):
        x, scale = f.project(0.4 * side, 1.0)
        rx = f.a * _mix(0.25, 0.31, uw) * (1 + 0.1 * sun) * scale
        q = _ellipse(win, x, y, rx, ry)
        fills.append(_soft(q, ry * (0.5 * inv)))
        rings.append(_edge((q - 1).abs_().mul_(-0.5 * ry).add_(half), inv))  # |q - 1| * ry / 2 ~ distance
        edges += [x - rx, x + rx]
    lens, rim = fills[0].maximum(fills[1]), rings[0].maximum(rings[1])
    # bridge between the lenses and arms out to the head's silhouette, all on one horizontal band
    spans = ((f.cx - 0.97 * f.a, edges[0]), (edges[1], edges[2]), (edges[3], f.cx + 0.97 * f.a))
    bar_x = sum(_band(win.x, lo, hi, inv) for lo, hi in spans)
    bar = bar_x * _band(win.y, y - 0.5 * ry - half * 0.8, y - 0.5 * ry + half * 0.8, inv)
    dark = _mix(0.03, 0.18, utint).unsqueeze(1) * _const((0.8, 1.0, 1.1), y.device)
    tint = _const((0.85, 0.93, 1.0), y.device)
    c.paint(win, lens * (0.94 * sun + 0.15 * (worn - sun)), torch.where(sun.unsqueeze(1) > 0, dark, tint),
            "glasses", cover=lens * sun)
    frame = rim.maximum(bar).mul_(worn)
    frame_rgb = _palette(_FRAME_RGB, _category(uframe, (0.5, 0.8))) * (1 - 0.7 * sun.unsqueeze(1))
    c.paint(win, frame, frame_rgb, "glasses")


def _render_block(seed: int, index: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images uint8 (N, S, S, 3), attributes (N, A) and part masks (N, S, S) of one block."""
    attrs = _draw_attributes(seed, index)
    f = _make_face(seed, index, attrs)
    c = _Canvas(len(index), size, index.device)
    head = _head_window(c, -1.3, 1.3, -1.25, 1.2)
    _paint_background(c, f)
    _paint_body(c, f)
    _paint_back_hair(c, f)
    _paint_head(c, f, head)
    _paint_ears(c, f)
    _paint_beard(c, f)
    _paint_hair_cap(c, f, head)
    _paint_nose(c, f)
    _paint_mouth(c, f)
    _paint_eyes(c, f)
    _paint_glasses(c, f)
    images = c.img.clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return images, attrs, c.mask
