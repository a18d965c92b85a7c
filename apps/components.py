"""Controls and helpers shared by the dashboard pages (no state here)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
from dash import dcc, html

from dcgan_viz.checkpoint import META_FILE, RUN_CHECKPOINTS, resolve_checkpoint, run_checkpoints
from dcgan_viz.images import png_bytes


# Styles shared by the pages: a wrapping row of controls, a grey caption, an upscaled image grid.
ROW_STYLE = {"display": "flex", "gap": "1.5em", "alignItems": "center", "flexWrap": "wrap", "margin": "0.5em 0"}
CAPTION_STYLE = {"color": "#666", "fontSize": "0.9em"}
PIXELATED_STYLE = {"imageRendering": "pixelated", "maxWidth": "100%"}

def find_checkpoints(dirs: list[Path] | list[str]) -> list[Path]:
    """Every checkpoint directory (one holding ``checkpoint.json``) under ``dirs``, including the
    dirs themselves; hidden and temporary directories are skipped. Sorted, without duplicates."""
    found: dict[Path, Path] = {}
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            continue
        metas = [root / META_FILE] if (root / META_FILE).is_file() else []
        metas += sorted(root.rglob(META_FILE))
        for meta in metas:
            ckpt = meta.parent
            rel = ckpt.relative_to(root).parts
            if any(part.startswith(".") for part in rel) or not meta.is_file():
                continue
            found.setdefault(ckpt.resolve(), ckpt)
    return sorted(found.values(), key=str)


def find_runs(dirs: list[Path] | list[str]) -> list[Path]:
    """Training run directories (holding ``checkpoints/step-*/`` checkpoints) under ``dirs``, including
    the dirs themselves; never one above a dir. Sorted, without duplicates."""
    found: dict[Path, Path] = {}
    for root in map(Path, dirs):
        for ckpt in find_checkpoints([root]):
            run = ckpt.parent.parent
            if ckpt.parent.name == RUN_CHECKPOINTS and ckpt.name.startswith("step-") and \
                    (run == root or root in run.parents):
                found.setdefault(run.resolve(), run)
    return sorted(found.values(), key=str)


def checkpoint_options(dirs: list[Path] | list[str]) -> list[dict[str, str]]:
    """Dropdown options: every training run (its newest checkpoint, so a shared link follows the next
    save), then every checkpoint; the value is the path as found (what goes in the URL)."""
    runs = [{"label": f"{p} (run: newest checkpoint, now {run_checkpoints(p)[-1].name})", "value": str(p)}
            for p in find_runs(dirs) if run_checkpoints(p)]
    return runs + [{"label": str(p), "value": str(p)} for p in find_checkpoints(dirs)]


def checkpoint_dropdown(id: str, dirs: list[Path] | list[str], value: str | None = None) -> dcc.Dropdown:
    options = checkpoint_options(dirs)
    return dcc.Dropdown(id=id, options=options, value=value, clearable=False,
                        placeholder="choose a checkpoint" if options else f"no checkpoints under {', '.join(map(str, dirs))}",
                        style={"minWidth": "24em"})


def seed_input(id: str, value: int | str | None = 0) -> html.Label:
    return html.Label(["seed ", dcc.Input(id=id, type="number", min=0, step=1, value=value, debounce=True,
                                          style={"width": "7em"})])


def parse_seed(value) -> int:
    """A seed from an input or a URL: a non-negative integer, else ValueError with a clear message."""
    try:
        number = float(value)
        seed = int(number)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"seed must be a whole number ≥ 0, got {value!r}") from None
    if seed != number or seed < 0:
        raise ValueError(f"seed must be a whole number ≥ 0, got {value!r}")
    if seed >= 2**62:
        raise ValueError(f"seed must be below 2**62, got {seed}")
    return seed


def one_line(exc: Exception) -> str:
    """The first line of an exception's message (its type name when empty): what a page shows."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parse_int(value, what: str, minimum: int, maximum: int) -> int:
    """A whole number in minimum..maximum from an input or a URL, else ValueError with a clear message."""
    try:
        number = float(value)
        count = int(number)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} must be a whole number in {minimum}..{maximum}, got {value!r}") from None
    if count != number or not minimum <= count <= maximum:
        raise ValueError(f"{what} must be a whole number in {minimum}..{maximum}, got {value!r}")
    return count


PNG_LEVEL = 1  # zlib level of images sent to the browser: 3-6x faster to encode than PIL's default 6, ~10-30% larger


def image_src(image: np.ndarray, scale: int = 1) -> str:
    """uint8 (H, W, C) -> ``data:image/png;base64,...`` for ``html.Img(src=...)`` (lossless, fast zlib level)."""
    data = png_bytes(np.asarray(image), scale, compress_level=PNG_LEVEL)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def upscaled_style(image: np.ndarray, scale: int) -> dict:
    """Style that shows a uint8 (H, W, C) image ``scale`` times larger, pixelated (the browser upscales;
    sending the image at scale 1 is ``scale``² fewer pixels to encode and transfer)."""
    return {**PIXELATED_STYLE, "width": f"{int(np.asarray(image).shape[1]) * scale}px"}


def error_box(message: str | None):
    """A visible one-line error in the page (None: nothing)."""
    if not message:
        return None
    return html.Div(message, role="alert", className="dcgan-error",
                    style={"color": "#8a1f11", "background": "#fdecea", "padding": "0.5em 0.8em",
                           "border": "1px solid #f5c2bd", "borderRadius": "4px"})


def checked_checkpoint(checkpoint: str | None) -> Path:
    """The chosen checkpoint if it is one of those the app lists, or the newest complete checkpoint
    of a listed training run directory (so ``?checkpoint=RUN`` survives the next save); ValueError
    with a clear message otherwise (so a path typed into the URL can never open an arbitrary directory)."""
    from apps.app import app_state  # the app module imports this one

    dirs, _ = app_state()
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise ValueError(f"checkpoint must be a path chosen from the list, got {type(checkpoint).__name__}")
    if not checkpoint:
        raise ValueError(f"no checkpoint chosen (none found under {', '.join(map(str, dirs))})")
    if checkpoint in {str(p) for p in find_checkpoints(dirs)}:
        return Path(checkpoint)
    if checkpoint in {str(p) for p in find_runs(dirs)}:
        return resolve_checkpoint(checkpoint)  # a run: its newest complete checkpoint, now
    raise ValueError(f"unknown checkpoint {checkpoint!r}: choose one of the checkpoints or runs listed")
