"""Synthetic "rooms": bedroom-like interiors with per-pixel class masks and instance boxes.

Each image is a one-point-perspective room: a back wall rectangle, side walls, floor and
ceiling meeting it along lines through a vanishing point, then windows, a door and a picture
on the walls, a rug, a floor lamp and a bed on the floor, painted back to front.

Rendering is vectorised over the whole batch on any device. Every random quantity of image
``i`` is a hash of ``(seed, i, stream)`` (see :mod:`dcgan_viz.data.rng`), so an image is the
same alone or inside any batch. Pixel maths uses only exactly rounded float operations
(no fused multiply-add, no transcendental functions), so CPU batches agree bit for bit.

Painting writes a *material* id per pixel plus a uint8 blend ``t``; colours come from a
per-image palette at the end (``colour = A[m] + t / 255 * (B[m] - A[m])``, times the lighting), and
the class mask and instance map are lookups of the material map, so they always agree with
the pixels. Coordinates are in normalised image units ([0, 1] across the image), so ``size``
only changes the sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dcgan_viz.data import rng

ROOM_CLASSES: tuple[str, ...] = ("wall", "floor", "ceiling", "window", "bed", "door", "lamp", "picture", "rug")
MAX_OBJECTS = 8  # three windows, door, picture, rug, lamp, bed

Tensor = torch.Tensor

# Instance slots (1-based in the instance map; 0 = no object) and their classes.
_SLOT_CLASSES = ("window", "window", "window", "door", "picture", "rug", "lamp", "bed")
_WINDOWS, _DOOR, _PICTURE, _RUG, _LAMP, _BED = (1, 2, 3), 4, 5, 6, 7, 8

# (material, class, instance slot). Emissive materials (not dimmed by the room light) come last.
_MATERIALS: tuple[tuple[str, str, int], ...] = (
    ("back_wall", "wall", 0),
    ("left_wall", "wall", 0),
    ("right_wall", "wall", 0),
    ("floor", "floor", 0),
    ("ceiling", "ceiling", 0),
    *((f"window{i}_frame", "window", _WINDOWS[i]) for i in range(3)),
    ("door", "door", _DOOR),
    ("door_trim", "door", _DOOR),
    ("door_knob", "door", _DOOR),
    ("picture_frame", "picture", _PICTURE),
    ("picture_canvas", "picture", _PICTURE),
    ("picture_blob", "picture", _PICTURE),
    ("rug", "rug", _RUG),
    ("rug_border", "rug", _RUG),
    ("lamp_stand", "lamp", _LAMP),
    ("headboard", "bed", _BED),
    ("bed_base", "bed", _BED),
    ("bed_base_side", "bed", _BED),
    ("sheet", "bed", _BED),
    ("pillow", "bed", _BED),
    ("blanket", "bed", _BED),
    ("blanket_front", "bed", _BED),
    ("blanket_side", "bed", _BED),
    *((f"window{i}_sky", "window", _WINDOWS[i]) for i in range(3)),
    *((f"window{i}_view", "window", _WINDOWS[i]) for i in range(3)),
    ("lamp_shade", "lamp", _LAMP),
)
_M = {name: i for i, (name, _, _) in enumerate(_MATERIALS)}
_FIRST_EMISSIVE = _M["window0_sky"]
_CLASS_OF_MATERIAL = tuple(ROOM_CLASSES.index(cls) for _, cls, _ in _MATERIALS)
_SLOT_OF_MATERIAL = tuple(slot for _, _, slot in _MATERIALS)


class _S:
    """Random stream ids, one per parameter family. Never renumber: it would change every image."""

    ROOM = 1
    WALL_LOOK = 2
    WALL_COLOUR = 3
    FLOOR_LOOK = 4
    FLOOR_COLOUR = 5
    LIGHT = 6
    WINDOW_COUNT = 7
    CELL_ORDER = 8
    PRESENT = 9
    WALL_SLOT_BOX = 10
    WINDOW_STYLE = 11
    WINDOW_COLOUR = 12
    SKY = 13
    DOOR_STYLE = 14
    DOOR_COLOUR = 15
    PICTURE_STYLE = 16
    PICTURE_COLOUR = 17
    RUG_BOX = 18
    RUG_COLOUR = 19
    LAMP_BOX = 20
    LAMP_COLOUR = 21
    BED_BOX = 22
    BED_COLOUR = 23


@dataclass
class RoomsBatch:
    """Rendered rooms with ground truth.

    images: uint8 (N, H, W, 3). masks: uint8 (N, H, W) ids into ROOM_CLASSES.
    boxes: float32 (N, MAX_OBJECTS, 5) rows (class_id, x0, y0, x1, y1) in pixels (x1/y1
    exclusive), the tight box of each object instance's visible pixels; visible instances first,
    then padding rows (class_id -1, zeros). indices: int64 (N,) image indices.
    """

    images: Tensor
    masks: Tensor
    boxes: Tensor
    indices: Tensor


def render_rooms(seed: int, indices: int | Sequence[int] | Tensor, size: int = 64, device=None) -> RoomsBatch:
    """Render images ``indices`` of ``seed`` (an int n means ``range(n)``) as size x size rooms.

    ``device``: where to render (default: the indices tensor's device, else CPU). Large requests
    are rendered in blocks, so memory stays bounded; results do not depend on the blocking.
    """
    index = _as_index(indices, device)
    block = max(1, _BLOCK_PIXELS[index.device.type == "cuda"] // (size * size))
    parts = [_render_block(seed, part, size) for part in index.split(block)]  # an empty index gives one part
    if len(parts) == 1:
        return parts[0]
    return RoomsBatch(*(torch.cat([getattr(p, f) for p in parts]) for f in ("images", "masks", "boxes", "indices")))


_BLOCK_PIXELS = (1024 * 64 * 64, 16384 * 64 * 64)  # per block on CPU (cache-friendly), on CUDA


def _render_block(seed: int, index: Tensor, size: int) -> RoomsBatch:
    """Render one block of images: the whole pipeline, vectorised over ``index`` (N,)."""
    d = _Draw(seed, index)
    room = _room(d, size)
    canvas = _Canvas.background(room, d)
    _paint_wall_objects(canvas, room, d)
    floor_objects = _floor_layout(d, room)
    _paint_rug(canvas, room, d, floor_objects)
    _paint_lamp(canvas, room, d, floor_objects)
    _paint_bed(canvas, room, d, floor_objects)
    images = _shade(canvas, room, _palette(d), d)
    mat = canvas.mat.int()
    masks = torch.tensor(_CLASS_OF_MATERIAL, dtype=torch.uint8, device=index.device)[mat]
    slots = torch.tensor(_SLOT_OF_MATERIAL, dtype=torch.int64, device=index.device)[mat]
    return RoomsBatch(images=images, masks=masks, boxes=_instance_boxes(slots), indices=index)


# --------------------------------------------------------------------------- random draws


def _as_index(indices: int | Sequence[int] | Tensor, device) -> Tensor:
    """Image indices as an int64 tensor (N,) on ``device`` (default: the tensor's own, else CPU)."""
    if isinstance(indices, Tensor):
        return indices.to(device=device if device is not None else indices.device, dtype=torch.int64).reshape(-1)
    if isinstance(indices, int):
        return torch.arange(indices, dtype=torch.int64, device=device)
    return torch.as_tensor([int(i) for i in indices], dtype=torch.int64, device=device).reshape(-1)


class _Draw:
    """Hashed per-image uniforms for one (seed, indices)."""

    def __init__(self, seed: int, index: Tensor) -> None:
        self.seed, self.index = seed, index

    def u(self, stream: int, slots: int) -> Tensor:
        """Uniforms in [0, 1), (N, slots)."""
        return rng.uniform(self.seed, self.index, stream, slots)

    def cols(self, stream: int, slots: int) -> list[Tensor]:
        """``slots`` uniforms per image, each shaped (N, 1, 1) to broadcast against pixel maps."""
        return list(self.u(stream, slots).T.reshape(slots, -1, 1, 1))


def _frac(x: Tensor) -> Tensor:
    return x - torch.floor(x)


# --------------------------------------------------------------------------- room geometry


@dataclass
class _Room:
    """Room geometry: per-image scalars (N, 1, 1) in image units and pixel coordinate maps.

    Back wall [bx0, bx1] x [by0, by1]; vanishing point (vx, vy). A point at depth ``dep`` (0 on
    the back wall, 1 at the camera) is scaled about the vanishing point by ``1 / (1 - dep)``.
    x (1, 1, S) and y (1, S, 1): pixel centres. wall (N, 1, S): which wall a column's wall
    pixels are on (0 back, 1 left, 2 right). p (N, 1, S): position along that wall (back: fraction
    of its width; sides: depth). q (N, S, S): position down the wall (0 ceiling line, 1 floor
    line); tone (N, S, S) uint8: q clamped to [0, 1] in 1/255 steps. floor_scale (N, S, 1):
    perspective scale of each row's floor (>= 1).
    """

    bx0: Tensor
    bx1: Tensor
    by0: Tensor
    by1: Tensor
    vx: Tensor
    vy: Tensor
    x: Tensor
    y: Tensor
    wall: Tensor
    p: Tensor
    q: Tensor
    tone: Tensor
    floor_scale: Tensor

    @property
    def bw(self) -> Tensor:
        return self.bx1 - self.bx0

    @property
    def bh(self) -> Tensor:
        return self.by1 - self.by0

    def side_depth(self) -> tuple[Tensor, Tensor]:
        """Depth of the left and right walls where they leave the image, each (N, 1, 1)."""
        return self.bx0 / self.vx, (1 - self.bx1) / (1 - self.vx)

    def floor_depth(self) -> Tensor:
        """Depth of the floor at the image's bottom edge (N, 1, 1)."""
        return (1 - self.by1) / (1 - self.vy)

    def floor_x(self, a: Tensor, scale: Tensor) -> Tensor:
        """Image x of lateral position ``a`` (fraction of the back wall's width) at ``scale``."""
        return self.vx + scale * (self.bx0 + a * self.bw - self.vx)

    def floor_y(self, height: Tensor, scale: Tensor) -> Tensor:
        """Image y of ``height`` above the floor (fraction of the room's height) at ``scale``."""
        return self.vy + scale * (self.by1 - height * self.bh - self.vy)


def _room(d: _Draw, size: int) -> _Room:
    """Sample the back wall and vanishing point and build the pixel coordinate maps."""
    u_bw, u_bx, u_bh, u_by, u_vx, u_vy = d.cols(_S.ROOM, 6)
    bw = 0.32 + 0.28 * u_bw
    bx0 = 0.1 + (0.8 - bw) * u_bx
    bh = 0.3 + 0.18 * u_bh
    by1 = 0.56 + 0.18 * u_by
    by0 = by1 - bh
    vx = bx0 + bw * (0.3 + 0.4 * u_vx)
    vy = by0 + bh * (0.3 + 0.25 * u_vy)
    bx1 = bx0 + bw

    grid = (torch.arange(size, device=d.index.device, dtype=torch.float32) + 0.5) / size
    x, y = grid.reshape(1, 1, -1), grid.reshape(1, -1, 1)
    # Perspective scale of the wall seen in each column: 1 on the back wall, > 1 on the sides.
    u = torch.where(x < vx, (vx - x) / (vx - bx0), (x - vx) / (bx1 - vx))
    on_back = u <= 1
    wall_scale = torch.clamp(u, min=1.0)
    wall = torch.where(on_back, 0, torch.where(x < vx, 1, 2)).to(torch.uint8)
    p = torch.where(on_back, (x - bx0) / bw, 1 - 1 / wall_scale)
    q = (y - vy) * (1 / (wall_scale * bh)) + (vy - by0) / bh
    tone = (q.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    floor_scale = torch.clamp((y - vy) / (by1 - vy), min=1.0)
    return _Room(bx0, bx1, by0, by1, vx, vy, x, y, wall, p, q, tone, floor_scale)


# --------------------------------------------------------------------------- canvas


class _Canvas:
    """Per-pixel material id ``mat`` and blend ``t`` (0 = colour A .. 255 = colour B), both
    uint8 (N, S, S)."""

    def __init__(self, mat: Tensor, t: Tensor) -> None:
        self.mat, self.t = mat, t

    def paint(self, mask: Tensor, material: str, t: Tensor | int | None = None) -> None:
        """Set ``material`` (and ``t``: uint8 tensor or int) where ``mask`` (broadcastable to (N, S, S))."""
        self.mat.masked_fill_(mask, _M[material])
        if isinstance(t, int):
            self.t.masked_fill_(mask, t)
        elif t is not None:
            self.t = torch.where(mask, t, self.t)

    @classmethod
    def background(cls, room: _Room, d: _Draw) -> "_Canvas":
        """Walls, floor and ceiling with their textures."""
        below_wall = torch.where(room.y > room.vy, _M["floor"], _M["ceiling"]).to(torch.uint8)
        mat = torch.where((room.q >= 0) & (room.q <= 1), room.wall, below_wall)  # wall ids 0/1/2 = materials
        t = torch.where(mat == _M["floor"], _floor_texture(room, d), _wall_texture(room, d))
        return cls(mat, t)


def _wall_texture(room: _Room, d: _Draw) -> Tensor:
    """Wallpaper: plain, vertical stripes or a dot grid; uint8 t towards the stripe colour."""
    kind, freq, duty, amp, rows = d.cols(_S.WALL_LOOK, 5)
    amp = torch.where(kind < 0.35, 0.0, 100 + 155 * amp)
    stripes = ((_frac(room.p * (6 + 14 * freq)) < 0.3 + 0.4 * duty) * amp).to(torch.uint8)  # (N, 1, S)
    per_row = torch.where(kind < 0.7, 0, torch.floor(6 + 10 * rows)).to(torch.uint8)
    dots = (room.tone * per_row) < 128  # half of each of ``per_row`` periods down the wall
    return torch.where(dots, stripes, 0)


def _floor_texture(room: _Room, d: _Draw) -> Tensor:
    """Floor planks (tone per plank, dark seams) or tiles (checker, seams); carpet is flat. uint8."""
    kind = _floor_kind(d)
    boards, rows, phase = d.cols(_S.FLOOR_LOOK, 4)[1:]
    per_wall = torch.where(kind == 1, 4 + 6 * boards, 5 + 9 * boards)
    scale = per_wall / room.bw
    across = (room.x - room.vx) * (scale / room.floor_scale) + (room.vx - room.bx0) * scale
    k = torch.floor(across)
    seam = (across - k) < torch.where(kind == 2, 0.0, 0.08)
    depth = (1 - 1 / room.floor_scale) * (3 + 5 * rows)
    tile_row = torch.floor(depth)
    tile_seam = ((depth - tile_row) < 0.1) & (kind == 1)  # (N, S, 1)
    # Planks: a tone per board; tiles: a checker of boards and rows. Carpet: flat.
    step = torch.where(kind == 0, 0.618034, 0.5)
    offset = torch.where(kind == 0, phase, tile_row * 0.5)
    strength = torch.where(kind == 0, 100.0, torch.where(kind == 1, 255.0, 0.0))
    tone = (_frac(k * step + offset) * strength).to(torch.uint8)
    return torch.where(seam | tile_seam, 255, tone)


def _floor_kind(d: _Draw) -> Tensor:
    """0 wooden planks, 1 tiles, 2 carpet; (N, 1, 1) int64."""
    u = d.cols(_S.FLOOR_LOOK, 1)[0]
    return (u > 0.55).long() + (u > 0.8).long()


# --------------------------------------------------------------------------- wall objects


@dataclass
class _WallSlots:
    """Windows 0-2, door, picture on the walls: each (N, 5). wall: 0 back, 1 left, 2 right;
    [p0, p1) x [q0, q1) in wall coordinates (see _Room); present: bool."""

    wall: Tensor
    p0: Tensor
    p1: Tensor
    q0: Tensor
    q1: Tensor
    present: Tensor

    def slot(self, k: int) -> tuple[Tensor, ...]:
        """(wall, p0, p1, q0, q1, present) of slot k, each (N, 1, 1)."""
        return tuple(v[:, k].reshape(-1, 1, 1) for v in (self.wall, self.p0, self.p1, self.q0, self.q1, self.present))


# Slot kinds: windows x3, door, picture. Size ranges: p length on the back wall (fraction of its
# width), p length on a side wall (fraction of the free depth), top q, q length.
_P_BACK = ((0.22, 0.55),) * 3 + ((0.12, 0.2), (0.1, 0.26))
_P_SIDE = ((0.45, 0.92),) * 3 + ((0.3, 0.6), (0.3, 0.6))
_Q_TOP = ((0.08, 0.28),) * 3 + ((0.15, 0.3), (0.1, 0.3))
_Q_LEN = ((0.32, 0.6),) * 3 + ((1.0, 1.0), (0.15, 0.3))  # a door always reaches the floor


def _wall_slots(d: _Draw, room: _Room) -> _WallSlots:
    """Place windows, door and picture in distinct wall cells (back-left, back-right, left, right)."""
    dev = d.index.device
    u_count = d.u(_S.WINDOW_COUNT, 1)[:, 0]
    u_door, u_pic = d.u(_S.PRESENT, 2).T
    windows = (u_count > 0.14).long() + (u_count > 0.48).long() + (u_count > 0.8).long()
    door = (u_door < 0.4).long()
    picture = ((u_pic < 0.5) & (windows + door < 4)).long()
    # A random order of the four cells; windows take the first ones, then the door, then the picture.
    cell_by_rank = torch.argsort(d.u(_S.CELL_ORDER, 4), dim=1, stable=True)
    first = torch.arange(3, device=dev).expand(len(windows), 3)
    rank = torch.cat([first, windows[:, None], (windows + door)[:, None]], 1)
    present = torch.cat([first < windows[:, None], door[:, None] > 0, picture[:, None] > 0], 1)
    cell = cell_by_rank.gather(1, rank.clamp(max=3))
    used = torch.argsort(cell_by_rank, dim=1) < (windows + door + picture)[:, None]  # (N, 4)

    # Cell extents along the wall; a back half grows to the whole wall when the other half is free.
    left_depth, right_depth = (v.reshape(-1) for v in room.side_depth())
    edge = torch.full_like(left_depth, 0.04)
    lo = torch.stack([edge, torch.where(used[:, 0], 0.52, 0.04), edge, edge], 1).gather(1, cell)
    hi = torch.stack([torch.where(used[:, 1], 0.48, 0.96), 1 - edge, 0.92 * left_depth, 0.92 * right_depth], 1)
    hi = hi.gather(1, cell)
    wall = torch.tensor([0, 0, 1, 2], device=dev)[cell]

    u_len, u_pos, u_top, u_height = d.u(_S.WALL_SLOT_BOX, 20).reshape(-1, 4, 5).unbind(1)
    free = hi - lo
    length = torch.where(
        wall == 0, torch.minimum(_between(_P_BACK, u_len), 0.95 * free), _between(_P_SIDE, u_len) * free
    )
    p0 = lo + (free - length) * u_pos
    q0 = _between(_Q_TOP, u_top)
    q1 = torch.clamp(q0 + _between(_Q_LEN, u_height), max=1.0)
    return _WallSlots(wall, p0, p0 + length, q0, q1, present)


def _between(ranges: tuple[tuple[float, float], ...], u: Tensor) -> Tensor:
    """Map uniforms u (N, K) into per-column ranges [lo_k, hi_k)."""
    lo = torch.tensor([r[0] for r in ranges], device=u.device)
    span = torch.tensor([r[1] - r[0] for r in ranges], device=u.device)
    return lo + span * u


def _paint_wall_objects(c: _Canvas, room: _Room, d: _Draw) -> None:
    """Windows, then the picture, then the door, each in its own wall cell."""
    slots = _wall_slots(d, room)
    for i in range(3):
        _paint_window(c, room, d, i, _local(room, *slots.slot(i)))
    _paint_picture(c, room, d, _local(room, *slots.slot(4)))
    _paint_door(c, room, d, _local(room, *slots.slot(3)))


@dataclass
class _Local:
    """A wall object on [p0, p1) x [q0, q1): lp (N, 1, S) is the column's position across it
    (0..1); cols (N, 1, S) its columns; the other fields are per image (N, 1, 1): the vertical
    extent (q0, q1) and its approximate image-space width and height."""

    lp: Tensor
    cols: Tensor
    q0: Tensor
    q1: Tensor
    width: Tensor
    height: Tensor

    def border(self, thickness: Tensor) -> tuple[Tensor, Tensor]:
        """An image-space border ``thickness`` as fractions (across, down) of the object, at most
        a quarter of it."""
        thickness = torch.minimum(thickness, 0.25 * torch.minimum(self.width, self.height))
        return thickness / self.width, thickness / self.height

    def rows(self, q: Tensor, top: Tensor | float, bottom: Tensor | float) -> Tensor:
        """Pixels whose wall height lies in the fraction [top, bottom) of the object: (N, S, S)."""
        span = self.q1 - self.q0
        return (q >= self.q0 + span * top) & (q < self.q0 + span * bottom)


def _local(room: _Room, wall: Tensor, p0: Tensor, p1: Tensor, q0: Tensor, q1: Tensor, present: Tensor) -> _Local:
    """Local frame of a wall object in [p0, p1) x [q0, q1) on ``wall`` (each (N, 1, 1))."""
    lp = (room.p - p0) / (p1 - p0)
    cols = (room.wall == wall) & (lp >= 0) & (lp < 1) & present
    # Side walls: depth p maps to scale 1 / (1 - p) about the vanishing point.
    s0, s1 = 1 / (1 - p0), 1 / (1 - p1)
    side_span = torch.where(wall == 1, room.vx - room.bx0, room.bx1 - room.vx)
    width = torch.where(wall == 0, (p1 - p0) * room.bw, (s1 - s0) * side_span)
    height = (q1 - q0) * room.bh * torch.where(wall == 0, 1.0, (s0 + s1) / 2)
    return _Local(lp, cols, q0, q1, width, height)


def _paint_window(c: _Canvas, room: _Room, d: _Draw, i: int, o: _Local) -> None:
    """Frame, panes split by mullions, and an outside view (sky, trees or buildings).

    The sky's gradient follows the wall height q (elevation), the skyline the column.
    """
    u = d.u(_S.WINDOW_STYLE, 24)[:, 8 * i : 8 * i + 8].T.reshape(8, -1, 1, 1)
    u_frame, u_cols, u_rows, u_mull, u_freq, u_phase, u_amp, u_ground = u
    view = _view_kind(d)[:, i].reshape(-1, 1, 1)
    fp, fq = o.border(0.008 + 0.014 * u_frame)
    ncols = torch.floor(1 + 3 * u_cols)
    mp = fp * (0.4 + 0.3 * u_mull)  # mullion half-widths
    mq = torch.where(u_rows < 0.45, fq * (0.4 + 0.3 * u_mull), 0.0)
    ip = (o.lp - fp) / (1 - 2 * fp)  # across the glass, (N, 1, S)
    mullion_cols = (_frac(ip * ncols + 0.5) - 0.5).abs() * (1 - 2 * fp) < mp * ncols
    glass_cols = o.cols & (o.lp >= fp) & (o.lp < 1 - fp) & ~mullion_cols

    q = room.q
    inside = o.cols & o.rows(q, 0.0, 1.0)
    glass = glass_cols & o.rows(q, fq, 1 - fq) & ~o.rows(q, 0.5 - mq, 0.5 + mq)

    # Skyline height (fraction of the glass, from the bottom) as a function of the column.
    ground = 0.04 + 0.12 * u_ground
    crown = torch.clamp(1 - (_frac(ip * (1.5 + 2.5 * u_freq) + u_phase) * 2 - 1) ** 2 * 1.6, min=0.0)
    x_b = ip * (2 + 3 * u_freq) + u_phase
    tower = (0.3 + 0.7 * _frac(torch.floor(x_b) * 0.618034 + u_amp)) * (_frac(x_b) < 0.8)
    height = torch.where(view == 1, ground + (0.2 + 0.3 * u_amp) * crown, ground + 0.55 * tower)
    height = torch.where(view == 0, 0.0, height)
    skyline = o.q1 - (o.q1 - o.q0) * (fq + height * (1 - 2 * fq))  # (N, 1, S) wall height

    c.paint(inside, f"window{i}_frame")
    c.paint(glass, f"window{i}_sky", room.tone)
    c.paint(glass & (q > skyline), f"window{i}_view")


def _view_kind(d: _Draw) -> Tensor:
    """Outside view per window: 0 sky only, 1 trees, 2 buildings; (N, 3) int64."""
    u = d.u(_S.WINDOW_STYLE, 27)[:, 24:]
    return (u > 0.3).long() + (u > 0.7).long()


def _paint_door(c: _Canvas, room: _Room, d: _Draw, o: _Local) -> None:
    """Door leaf with two inset panels, trim along the sides and top, and a knob."""
    u_trim, u_side, u_knob = d.cols(_S.DOOR_STYLE, 3)
    tp, tq = o.border(0.008 + 0.01 * u_trim)
    q = room.q
    inside = o.cols & o.rows(q, 0.0, 1.0)
    leaf = inside & (o.lp >= tp) & (o.lp < 1 - tp) & o.rows(q, tq, 1.0)
    panels = ((o.lp >= 0.22) & (o.lp < 0.78)) & (o.rows(q, 0.1, 0.42) | o.rows(q, 0.52, 0.9))
    knob_p = torch.where(u_side < 0.5, 0.15, 0.85)
    knob_r = 0.01 + 0.008 * u_knob
    knob = ((o.lp - knob_p).abs() * o.width < knob_r) & o.rows(q, 0.55 - knob_r / o.height, 0.55 + knob_r / o.height)
    c.paint(inside, "door_trim")
    c.paint(leaf, "door", 0)
    c.paint(leaf & panels, "door", 255)
    c.paint(leaf & knob, "door_knob")


def _paint_picture(c: _Canvas, room: _Room, d: _Draw, o: _Local) -> None:
    """Framed picture: a two-colour gradient across it with a round blob."""
    u_frame, u_bx, u_by, u_br = d.cols(_S.PICTURE_STYLE, 4)
    fp, fq = o.border(0.006 + 0.012 * u_frame)
    inside = o.cols & o.rows(room.q, 0.0, 1.0)
    canvas = inside & (o.lp >= fp) & (o.lp < 1 - fp) & o.rows(room.q, fq, 1 - fq)
    # Blob: a disc in image-proportional units, centred at (bx, by) in the picture.
    radius = (0.12 + 0.2 * u_br) * o.height
    blob_y = o.q0 + (o.q1 - o.q0) * (0.2 + 0.6 * u_by)
    dy = (room.q - blob_y) * (o.height / (o.q1 - o.q0))
    dx = (o.lp - 0.2 - 0.6 * u_bx) * o.width
    blob = dy * dy < radius * radius - dx * dx
    c.paint(inside, "picture_frame")
    c.paint(canvas, "picture_canvas", (o.lp.clamp(0, 1) * 255).to(torch.uint8))
    c.paint(canvas & blob, "picture_blob")


# --------------------------------------------------------------------------- floor objects


@dataclass
class _FloorLayout:
    """Floor objects in room coordinates, each (N, 1, 1): lateral ``a`` as a fraction of the
    back wall's width, depth from the back wall (0) towards the camera (1); flags are bool."""

    rug: Tensor
    lamp: Tensor
    bed: Tensor
    bed_a0: Tensor
    bed_a1: Tensor
    bed_length: Tensor
    lamp_a: Tensor
    lamp_depth: Tensor


def _floor_layout(d: _Draw, room: _Room) -> _FloorLayout:
    """Bed against the back wall; the lamp beside it on the side away from the view centre."""
    u_rug, u_lamp, u_bed = d.cols(_S.PRESENT, 5)[2:]
    u_width, u_a, u_length = d.cols(_S.BED_BOX, 3)
    width = 0.35 + 0.25 * u_width
    a0 = 0.03 + (0.94 - width) * u_a
    length = room.floor_depth() * (0.45 + 0.45 * u_length)
    bed = u_bed < 0.93
    u_gap, u_pos, u_depth = d.cols(_S.LAMP_BOX, 3)
    bed_right = room.floor_x(a0 + width / 2, 1.0) > room.vx
    beside = torch.where(bed_right, a0 + width + 0.05 + 0.06 * u_gap, a0 - 0.05 - 0.06 * u_gap)
    lamp_a = torch.clamp(torch.where(bed, beside, 0.1 + 0.8 * u_pos), 0.05, 0.95)
    return _FloorLayout(u_rug < 0.45, u_lamp < 0.45, bed, a0, a0 + width, length, lamp_a, 0.02 + 0.14 * u_depth)


def _paint_rug(c: _Canvas, room: _Room, d: _Draw, f: _FloorLayout) -> None:
    """A rug with a border and bands parallel to the back wall: a trapezoid on the floor."""
    u_width, u_a, u_depth, u_length, u_border, u_bands = d.cols(_S.RUG_BOX, 6)
    width = 0.3 + 0.4 * u_width
    a0 = 0.03 + (0.94 - width) * u_a
    far = room.floor_depth()
    d0 = far * (0.05 + 0.45 * u_depth)
    d1 = torch.minimum(d0 + far * (0.2 + 0.3 * u_length), 0.97 * far)
    border = 0.04 + 0.05 * u_border

    def trapezoid(a0: Tensor, a1: Tensor, d0: Tensor, d1: Tensor) -> Tensor:
        s = room.floor_scale
        rows = (s >= 1 / (1 - d0)) & (s < 1 / (1 - d1)) & f.rug
        dx = room.x - room.vx
        return rows & (dx >= s * (room.floor_x(a0, 1.0) - room.vx)) & (dx < s * (room.floor_x(a1, 1.0) - room.vx))

    depth = 1 - 1 / room.floor_scale
    bands = (_frac((depth - d0) / (d1 - d0) * (3 + 6 * u_bands)) < 0.5).to(torch.uint8) * 255
    c.paint(trapezoid(a0, a0 + width, d0, d1), "rug_border")
    inset = border * 0.5 * far
    c.paint(trapezoid(a0 + border, a0 + width - border, d0 + inset, d1 - inset), "rug", bands)


def _paint_lamp(c: _Canvas, room: _Room, d: _Draw, f: _FloorLayout) -> None:
    """Floor lamp: a base, a thin stand and a tapered, lit shade."""
    u_height, u_shade, u_width, u_taper = d.cols(_S.LAMP_BOX, 7)[3:]
    s = 1 / (1 - f.lamp_depth)
    dx = (room.x - room.floor_x(f.lamp_a, s)).abs()
    foot = room.floor_y(torch.zeros_like(s), s)
    top = room.floor_y(0.35 + 0.3 * u_height, s)
    shade_height = s * room.bh * (0.09 + 0.07 * u_shade)
    half_bottom = s * (0.03 + 0.025 * u_width)
    half_top = half_bottom * (0.45 + 0.35 * u_taper)
    stand = (dx < 0.009 * s) & (room.y >= top) & (room.y < foot)
    base = (dx < 0.03 * s) & (room.y >= foot - 0.012 * s) & (room.y < foot)
    shade_rows = (room.y >= top) & (room.y < top + shade_height)
    shade = shade_rows & (dx < half_top + (half_bottom - half_top) * (room.y - top) / shade_height)
    c.paint((stand | base) & f.lamp, "lamp_stand")
    c.paint(shade & f.lamp, "lamp_shade")


def _paint_bed(c: _Canvas, room: _Room, d: _Draw, f: _FloorLayout) -> None:
    """Bed box against the back wall: headboard, visible side, top (sheet, pillows, blanket), front."""
    u_h, u_split, u_head, u_pillow, u_two, u_blanket = d.cols(_S.BED_BOX, 9)[3:]
    height = 0.13 + 0.09 * u_h  # mattress top, fraction of the room's height
    split = height * (0.3 + 0.25 * u_split)  # below: wooden base; above: blanket hanging down
    s_front = 1 / (1 - f.bed_length)
    dx = room.x - room.vx  # (N, 1, S)
    dy = room.y - room.vy  # (N, S, 1)
    x0, x1 = room.floor_x(f.bed_a0, 1.0) - room.vx, room.floor_x(f.bed_a1, 1.0) - room.vx
    y_top, y_split, y_floor = (room.floor_y(h, 1.0) - room.vy for h in (height, split, torch.zeros_like(height)))

    head_top = room.floor_y(height + 0.1 + 0.14 * u_head, 1.0)
    headboard = (dx >= x0) & (dx < x1) & (room.y >= head_top) & (room.y < room.by1)

    # The side facing the view centre is visible when the bed lies wholly to one side of it.
    x_side = torch.where(x0 > 0, x0, torch.where(x1 < 0, x1, torch.zeros_like(x0)))
    s_side = dx / torch.where(x_side == 0, 1.0, x_side)
    side_cols = (x_side != 0) & (s_side >= 1) & (s_side < s_front)
    side = side_cols & (dy >= s_side * y_top) & (dy < s_side * y_floor)
    side_blanket = side & (dy < s_side * y_split)

    # Top face: each row is one depth; its lateral extent scales with it.
    s_top = dy / y_top  # (N, S, 1)
    top = (s_top >= 1) & (s_top < s_front) & (dx >= s_top * x0) & (dx < s_top * x1)
    bed_width = x1 - x0
    margin = 0.06 * bed_width
    two = u_two < 0.65
    mid = torch.where(two, x0 + bed_width / 2, x1 - margin)
    s_pillow = 1 / (1 - f.bed_length * (0.12 + 0.08 * u_pillow))
    pillow_rows = (s_top >= 1 / (1 - 0.03 * f.bed_length)) & (s_top < s_pillow)
    pillow_a = (dx >= s_top * (x0 + margin)) & (dx < s_top * (mid - margin / 2))
    pillow_b = two & (dx >= s_top * (mid + margin / 2)) & (dx < s_top * (x1 - margin))
    s_blanket = 1 / (1 - f.bed_length * (0.3 + 0.2 * u_blanket))
    blanket = top & (s_top >= s_blanket)
    fold = (s_top < s_blanket * (1 + 0.06 * f.bed_length)).to(torch.uint8) * 255

    front_cols = (dx >= s_front * x0) & (dx < s_front * x1)
    front = front_cols & (dy >= s_front * y_top) & (dy < s_front * y_floor)
    front_blanket = front & (dy < s_front * y_split)

    c.paint(headboard & f.bed, "headboard")
    c.paint(side & f.bed, "bed_base_side")
    c.paint(side_blanket & f.bed, "blanket_side")
    c.paint(top & f.bed, "sheet")
    c.paint(top & pillow_rows & (pillow_a | pillow_b) & f.bed, "pillow")
    c.paint(blanket & f.bed, "blanket", fold)
    c.paint(front & f.bed, "bed_base")
    c.paint(front_blanket & f.bed, "blanket_front")


# --------------------------------------------------------------------------- colour


def _hsv(h: Tensor | float, s: Tensor | float, v: Tensor | float) -> Tensor:
    """HSV in [0, 1] (each (N,) or a float; at least one a tensor) to RGB (N, 3) in 0..255; hue wraps."""
    dev = next(x.device for x in (h, s, v) if isinstance(x, Tensor))
    h, s, v = (torch.as_tensor(x, dtype=torch.float32, device=dev)[..., None] for x in (h, s, v))
    k = _frac(h + torch.tensor([5.0, 3.0, 1.0], device=dev) / 6) * 6
    return 255 * v * (1 - s * torch.clamp(torch.minimum(k, 4 - k), 0, 1))


def _pick(choice: Tensor, *options: Tensor) -> Tensor:
    """Row-wise select among colours (N, 3) by integer ``choice`` (N,)."""
    out = options[-1]
    for k in range(len(options) - 2, -1, -1):
        out = torch.where((choice == k)[:, None], options[k], out)
    return out


def _palette(d: _Draw) -> Tensor:
    """Per-image material colours (N, M, 6): colour A, then B - A, in 0..255 units."""
    a: dict[str, Tensor] = {}
    b: dict[str, Tensor] = {}

    def put(name: str, colour: Tensor, other: Tensor | None = None) -> None:
        a[name], b[name] = colour, colour if other is None else other

    u = d.u(_S.WALL_COLOUR, 8).T
    wall = _hsv(u[0], 0.04 + 0.3 * u[1], 0.55 + 0.35 * u[2])
    stripe = _hsv(u[0] + 0.3 * (u[3] - 0.5), 0.04 + 0.35 * u[4], (0.55 + 0.35 * u[2]) * (0.78 + 0.14 * u[5]))
    put("back_wall", wall, stripe)
    for name, k in (("left_wall", 6), ("right_wall", 7)):
        dim = (0.74 + 0.18 * u[k])[:, None]
        put(name, wall * dim, stripe * dim)
    put("ceiling", 0.35 * wall + 0.65 * 240)

    u = d.u(_S.FLOOR_COLOUR, 4).T
    kind = _floor_kind(d).reshape(-1)
    wood = _hsv(0.04 + 0.06 * u[0], 0.35 + 0.4 * u[1], 0.3 + 0.4 * u[2])
    tile = _hsv(u[0], 0.03 + 0.2 * u[1], 0.55 + 0.4 * u[2])
    carpet = _hsv(u[0], 0.15 + 0.45 * u[1], 0.3 + 0.4 * u[2])
    floor = _pick(kind, wood, tile, carpet)
    put("floor", floor, floor * (0.5 + 0.2 * u[3])[:, None])

    u = d.u(_S.SKY, 7).T
    sky = (u[0] > 0.75).long() + (u[0] > 0.92).long()  # day, dusk, night
    sky_top = _pick(
        sky,
        _hsv(0.56 + 0.06 * u[1], 0.5 + 0.35 * u[2], 0.78 + 0.22 * u[3]),
        _hsv(0.62 + 0.12 * u[1], 0.35 + 0.3 * u[2], 0.45 + 0.25 * u[3]),
        _hsv(0.62 + 0.05 * u[1], 0.6 + 0.3 * u[2], 0.08 + 0.12 * u[3]),
    )
    horizon = _pick(
        sky,
        _hsv(0.53 + 0.06 * u[4], 0.15 + 0.25 * u[5], 0.9 + 0.1 * u[6]),
        _hsv(0.02 + 0.1 * u[4], 0.45 + 0.4 * u[5], 0.85 + 0.15 * u[6]),
        _hsv(0.6 + 0.05 * u[4], 0.4 + 0.3 * u[5], 0.22 + 0.15 * u[6]),
    )
    view_dim = _pick(sky, *(torch.full_like(u[:3].T, v) for v in (1.0, 0.7, 0.35)))
    views = _view_kind(d)
    u = d.u(_S.WINDOW_COLOUR, 18).T
    for i in range(3):
        w = u[6 * i : 6 * i + 6]
        frame_kind = (w[0] > 0.6).long() + (w[0] > 0.85).long()  # white, wood, dark
        frame = _pick(
            frame_kind,
            _hsv(0.1 * w[1], 0.02 + 0.06 * w[2], 0.88 + 0.12 * w[3]),
            _hsv(0.05 + 0.05 * w[1], 0.4 + 0.3 * w[2], 0.3 + 0.3 * w[3]),
            _hsv(w[1], 0.05 * w[2], 0.15 + 0.15 * w[3]),
        )
        trees = _hsv(0.22 + 0.14 * w[4], 0.4 + 0.4 * w[5], 0.3 + 0.3 * w[3])
        buildings = _hsv(0.55 + 0.1 * w[4], 0.03 + 0.12 * w[5], 0.45 + 0.35 * w[3])
        view = _pick(views[:, i] - 1, trees, buildings) * view_dim
        put(f"window{i}_frame", frame)
        put(f"window{i}_sky", sky_top, horizon)
        put(f"window{i}_view", view, view * 0.6)

    u = d.u(_S.DOOR_COLOUR, 5).T
    wooden = u[0] < 0.6
    wood = _hsv(0.04 + 0.06 * u[1], 0.35 + 0.4 * u[2], 0.3 + 0.35 * u[3])
    door = torch.where(wooden[:, None], wood, _hsv(u[1], 0.12 * u[2], 0.75 + 0.2 * u[3]))
    put("door", door, door * 0.8)
    put("door_trim", torch.where(wooden[:, None], door * 0.75, _hsv(0.1, 0.03, 0.9 + 0.08 * u[4])))
    put("door_knob", _pick((u[4] < 0.5).long(), _hsv(0.12, 0.6, 0.7 + 0.2 * u[4]), _hsv(0.0, 0.0, 0.55 + 0.2 * u[4])))

    u = d.u(_S.PICTURE_COLOUR, 10).T
    frame_kind = (u[0] > 0.4).long() + (u[0] > 0.7).long()
    dark = _hsv(0.07 * u[1], 0.5 * u[2], 0.1 + 0.25 * u[3])
    gold = _hsv(0.1 + 0.03 * u[1], 0.55 + 0.2 * u[2], 0.7 + 0.2 * u[3])
    put("picture_frame", _pick(frame_kind, dark, gold, _hsv(u[1], 0.04 * u[2], 0.9 + 0.1 * u[3])))
    first = _hsv(u[4], 0.3 + 0.6 * u[5], 0.45 + 0.55 * u[6])
    put("picture_canvas", first, _hsv(u[4] + 0.2 + 0.6 * u[7], 0.3 + 0.6 * u[8], 0.45 + 0.55 * u[9]))
    put("picture_blob", _hsv(u[7], 0.5 + 0.5 * u[9], 0.5 + 0.5 * u[5]))

    u = d.u(_S.RUG_COLOUR, 6).T
    rug = _hsv(u[0], 0.3 + 0.45 * u[1], 0.3 + 0.4 * u[2])
    put("rug", rug, _hsv(u[0] + 0.1 * (u[3] - 0.5), 0.3 + 0.45 * u[1], 0.22 + 0.3 * u[2]))
    put("rug_border", _hsv(u[0] + 0.3 + 0.4 * u[4], 0.3 + 0.5 * u[5], 0.25 + 0.5 * u[3]))

    u = d.u(_S.LAMP_COLOUR, 5).T
    put("lamp_stand", _hsv(0.1, 0.5 * u[0], 0.15 + 0.35 * u[1]))
    put("lamp_shade", _hsv(0.08 + 0.07 * u[2], 0.1 + 0.35 * u[3], 0.92 + 0.08 * u[4]))

    u = d.u(_S.BED_COLOUR, 10).T
    wood = _hsv(0.04 + 0.06 * u[1], 0.3 + 0.4 * u[2], 0.25 + 0.35 * u[3])
    headboard = torch.where((u[0] < 0.55)[:, None], wood, _hsv(u[1], 0.1 + 0.3 * u[2], 0.35 + 0.4 * u[3]))
    sheet = _hsv(u[4], 0.1 * u[5], 0.8 + 0.1 * u[6])
    blanket = _hsv(u[7], 0.25 + 0.5 * u[8], 0.35 + 0.45 * u[9])
    put("headboard", headboard)
    put("bed_base", headboard * 0.8)
    put("bed_base_side", headboard * 0.62)
    put("sheet", sheet)
    put("pillow", _hsv(u[4], 0.08 * u[5], 0.92 + 0.08 * u[6]))
    put("blanket", blanket, sheet)
    put("blanket_front", blanket * 0.8)
    put("blanket_side", blanket * 0.66)

    colour_a = torch.stack([a[name] for name, _, _ in _MATERIALS], 1).clamp(0, 255)
    colour_b = torch.stack([b[name] for name, _, _ in _MATERIALS], 1).clamp(0, 255)
    return torch.cat([colour_a, colour_b - colour_a], 2)


def _shade(c: _Canvas, room: _Room, palette: Tensor, d: _Draw) -> Tensor:
    """Look up material colours, blend by ``t`` and apply the light gradient: uint8 (N, S, S, 3)."""
    u_x, u_y, u_level = d.cols(_S.LIGHT, 3)
    level = 0.78 + 0.3 * u_level
    light = level * (1 + (u_x - 0.5) * 0.7 * (room.x - 0.5)) + level * (u_y - 0.5) * 0.5 * (room.y - 0.5)
    light = torch.where(c.mat >= _FIRST_EMISSIVE, 1.0, light).reshape(-1, 1)
    n, size = c.mat.shape[:2]
    offset = torch.arange(n, device=c.mat.device, dtype=torch.int32).reshape(-1, 1, 1) * len(_MATERIALS)
    index = (c.mat.int() + offset).reshape(-1)
    rgb = (palette[..., 3:] / 255).reshape(-1, 3).index_select(0, index)
    rgb.mul_(c.t.reshape(-1, 1)).add_(palette[..., :3].reshape(-1, 3).index_select(0, index)).mul_(light)
    return rgb.clamp_(0, 255).round_().to(torch.uint8).reshape(n, size, size, 3)


# --------------------------------------------------------------------------- ground truth


def _instance_boxes(slots: Tensor) -> Tensor:
    """Tight pixel boxes of each instance slot in ``slots`` int64 (N, S, S) (0 = none).

    Returns float32 (N, MAX_OBJECTS, 5) rows (class_id, x0, y0, x1, y1), visible ones first.
    """
    n, size, _ = slots.shape
    k = MAX_OBJECTS + 1
    # in_col[n, k, x]: slot k has a pixel in column x (scatter over rows); in_row likewise.
    empty = torch.zeros(n, k, size, dtype=torch.uint8, device=slots.device)
    in_col = empty.clone().scatter_(1, slots, 1)[:, 1:]
    in_row = empty.scatter_(1, slots.transpose(1, 2), 1)[:, 1:]
    visible = in_col.amax(2) > 0
    x0, x1 = in_col.argmax(2), size - in_col.flip(2).argmax(2)
    y0, y1 = in_row.argmax(2), size - in_row.flip(2).argmax(2)
    classes = torch.tensor([ROOM_CLASSES.index(c) for c in _SLOT_CLASSES], device=slots.device).expand(n, -1)
    boxes = torch.stack([classes, x0, y0, x1, y1], 2).to(torch.float32)
    boxes = torch.where(visible[..., None], boxes, torch.tensor([-1.0, 0, 0, 0, 0], device=slots.device))
    order = torch.argsort((~visible).to(torch.uint8), dim=1, stable=True)
    return boxes.gather(1, order[..., None].expand(-1, -1, 5))
