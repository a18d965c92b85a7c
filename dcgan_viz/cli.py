"""`dcgan-viz <verb>`: the command line only wires options to library calls.

Option defaults come from the config dataclasses (ModelConfig, TrainConfig), so the CLI,
the library and the dashboard cannot disagree.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer

from .models import ModelConfig
from .outputs import image_file, prepared_dir, run_dir
from .train import TrainConfig

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Train DCGANs and measure what they learned (Radford et al. 2015, section 6).")

_M = ModelConfig()
_T = TrainConfig()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _user_errors():
    """Exceptions that are the user's input problem: print one line, exit 2."""
    from .checkpoint import CheckpointError

    errors: list[type[BaseException]] = [CheckpointError, ValueError, FileNotFoundError, KeyError]
    try:
        from .data.sources import DataError

        errors.append(DataError)
    except ImportError:  # pragma: no cover - data layer always present in a full install
        pass
    return tuple(errors)


def _os_error_line(exc: OSError) -> str:
    """``path: reason`` for an OSError (PermissionError, IsADirectoryError, FileExistsError, a full disk ...)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    return f"{where}: {reason}" if where is not None else reason


def _run(fn):
    """Run a verb; the user's input problems become one line ``error: ...`` and exit 2. The causes are
    checked up front (outputs, checkpoint_schema, devices); this is the last line of defence."""
    from .train import TrainingStopped

    try:
        return fn()
    except TrainingStopped as exc:
        _fail(str(exc))
    except _user_errors() as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(msg.strip("'\""))
    except OSError as exc:  # PermissionError, IsADirectoryError, FileExistsError, NotADirectoryError, ENOSPC
        _fail(_os_error_line(exc))
    except RecursionError:
        _fail("input nested too deeply (RecursionError)")
    except MemoryError:
        _fail("out of memory: the requested sizes are too large for this machine")


@app.command()
def train(
    ctx: typer.Context,
    data: str = typer.Option("rooms", help="Data spec: rooms, faces, fashion-mnist, mnist:DIR, folder:DIR, lsun:DIR, celeba:DIR, cifar10:DIR, prepared:DIR; options as rooms:count=5000,seed=1"),
    out: Path = typer.Option(Path("runs/default"), help="Run directory (log.jsonl, samples/, checkpoints/)."),
    image_size: int = typer.Option(_M.image_size, help="32, 64 or 128."),
    channels: Optional[int] = typer.Option(None, help="1 or 3 (default: the data's own)."),
    nz: int = typer.Option(_M.nz, help="Latent size."),
    ngf: int = typer.Option(_M.ngf, help="Generator width."),
    ndf: int = typer.Option(_M.ndf, help="Discriminator width."),
    z_dist: str = typer.Option(_M.z_dist, help="uniform (paper) or normal."),
    epochs: int = typer.Option(_T.epochs),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many steps (overrides epochs)."),
    batch_size: int = typer.Option(_T.batch_size, help="Per process."),
    lr: float = typer.Option(_T.lr),
    beta1: float = typer.Option(_T.beta1),
    seed: int = typer.Option(_T.seed),
    device: str = typer.Option(_T.device, help="auto, cpu, cuda, cuda:1 ..."),
    amp: str = typer.Option(_T.amp, help="auto (bf16 on CUDA), bf16, off."),
    cuda_graph: str = typer.Option(_T.cuda_graph, help="auto, on, off."),
    channels_last: str = typer.Option(_T.channels_last, help="auto (on CUDA), on, off."),
    keep_checkpoints: int = typer.Option(_T.keep_checkpoints, help="How many step checkpoints to keep."),
    max_seconds: Optional[float] = typer.Option(None, help="Stop (with a checkpoint) after this much wall time."),
    grid_every: int = typer.Option(_T.grid_every, help="Epochs between sample grids (epochs 1 and 5 always get one)."),
    checkpoint_every: int = typer.Option(_T.checkpoint_every, help="Steps between checkpoints."),
    collapse_steps: int = typer.Option(_T.collapse_steps, help="Stop after this many steps with D(G(z)) ~ 0 (0 = never)."),
    lr_d: Optional[float] = typer.Option(None, help="Remedy: D's own learning rate (TTUR); default: --lr."),
    label_smoothing: float = typer.Option(_T.label_smoothing, help="Remedy: one-sided label smoothing (D's real target 1 - s)."),
    instance_noise: float = typer.Option(_T.instance_noise, help="Remedy: std of noise on D's inputs, annealed to 0."),
    instance_noise_steps: int = typer.Option(_T.instance_noise_steps, help="Steps over which instance noise anneals to 0."),
    dequantize: float = typer.Option(_T.dequantize, help="Remedy: uniform noise of this many uint8 levels on real images."),
    augment: str = typer.Option(_T.augment, help="Remedy: DiffAugment on D's inputs, e.g. translation,cutout,color."),
    health_every: int = typer.Option(_T.health_every, help="Steps between health checks (diversity vs real; 0 = never)."),
    health_warmup: int = typer.Option(_T.health_warmup, help="Steps before low sample diversity counts as collapse."),
    evaluator: Optional[str] = typer.Option(None, help="Evaluation helper (e.g. checkpoints/rooms-segmenter): Fréchet "
                                            "distance each epoch in its feature space; the best epoch is kept in "
                                            "checkpoints/best."),
    cache_dir: Optional[Path] = typer.Option(None, help="Prepared-cache directory for the data."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT exactly where it stopped, with "
                                "its own settings (run.json); --epochs, --max-steps, --device ... may change."),
    fork_from: Optional[Path] = typer.Option(None, help="Start a NEW run in OUT from this checkpoint (or run's newest): "
                                             "its weights and optimiser state, its settings except the options given "
                                             "here (e.g. remedies after a collapse); lineage goes into run.json."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Train a DCGAN with the paper's defaults; writes a log, per-epoch sample grids and checkpoints."""
    def go() -> None:
        from .data.loading import load_imageset
        from .data.spec import DataSpec
        from .train import Trainer, fork_configs, resume_configs

        given = {name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}
        model_opts = {"image_size": image_size, "nz": nz, "ngf": ngf, "ndf": ndf, "nc": channels, "z_dist": z_dist}
        train_opts = {"epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "lr": lr, "beta1": beta1,
                      "seed": seed, "device": device, "amp": amp, "cuda_graph": cuda_graph,
                      "channels_last": channels_last, "checkpoint_every": checkpoint_every,
                      "keep_checkpoints": keep_checkpoints, "max_seconds": max_seconds, "grid_every": grid_every,
                      "collapse_steps": collapse_steps, "progress": not no_progress, "lr_d": lr_d,
                      "label_smoothing": label_smoothing, "instance_noise": instance_noise,
                      "instance_noise_steps": instance_noise_steps, "dequantize": dequantize, "augment": augment,
                      "health_every": health_every, "health_warmup": health_warmup,
                      "evaluator": evaluator}
        option_of = {"nc": "channels", "progress": "no_progress"}
        run_dir(out, resume=resume)  # the output-path policy, before any data is loaded
        if resume:
            model, cfg, spec = resume_configs(
                out, {k: v for k, v in model_opts.items() if option_of.get(k, k) in given},
                {k: v for k, v in train_opts.items() if option_of.get(k, k) in given} | {"progress": not no_progress},
                data if "data" in given else None)
            images = load_imageset(spec, cache_dir=cache_dir, progress=cfg.progress)
        elif fork_from is not None:
            model, cfg, spec, _ = fork_configs(
                fork_from, {k: v for k, v in model_opts.items() if option_of.get(k, k) in given},
                {k: v for k, v in train_opts.items() if option_of.get(k, k) in given} | {"progress": not no_progress},
                data if "data" in given else None)
            images = load_imageset(spec, cache_dir=cache_dir, progress=cfg.progress)
        else:
            ModelConfig(**{**model_opts, "nc": channels or 3})  # validate early, before loading data
            TrainConfig(**train_opts)
            spec = DataSpec.parse(data, size=image_size, **({"channels": channels} if channels else {}))
            images = load_imageset(spec, cache_dir=cache_dir, progress=not no_progress)
            model = ModelConfig(**{**model_opts, "nc": int(images.images.shape[-1])})
            cfg = TrainConfig(**train_opts)
        trainer = Trainer(model, cfg, images.spec, images.images, out, resume=resume, fork_from=fork_from)
        final = trainer.run()
        if final is not None:
            typer.echo(f"checkpoint: {final}")
            typer.echo(f"samples: {out / 'samples'}")
    _run(go)


@app.command()
def prepare(
    source: str = typer.Argument(..., help="Data spec, e.g. fashion-mnist, folder:/photos, rooms:count=5000, celeba:/data/celeba"),
    out: Path = typer.Option(..., help="Directory of the prepared cache (images.u8 + manifest.json)."),
    size: int = typer.Option(_M.image_size, help="Square side after centre crop + resize."),
    channels: Optional[int] = typer.Option(None, help="1 or 3 (default: the source's own)."),
    split: str = typer.Option("train", help="train or test (held out)."),
    no_progress: bool = typer.Option(False, "--no-progress"),
) -> None:
    """Prepare a source into a memory-mapped uint8 cache that training and analyses read at full speed.

    A train-split prepare also stores the source's held-out split in OUT/test (for memorization)."""
    def go() -> None:
        from .data.prepare import held_out_dir, open_prepared
        from .data.prepare import prepare as prepare_cache
        from .data.sources import DataError
        from .data.spec import DataSpec

        spec = DataSpec.parse(source, size=size, split=split, **({"channels": channels} if channels else {}))
        prepared_dir(out)  # the output-path policy, before any image is read
        result = prepare_cache(spec, out, progress=not no_progress)
        n, h, w, c = result.images.shape
        typer.echo(f"prepared {n} {spec.split} images {h}x{w}x{c} in {out} (skipped {result.skipped} unreadable files)")
        try:
            held = open_prepared(held_out_dir(out))
            typer.echo(f"held-out: {len(held)} images of the source's test split in {held_out_dir(out)} "
                       f"(skipped {held.skipped}); memorization compares with them")
        except DataError as exc:
            typer.echo(f"held-out: none ({exc})")
        typer.echo(f"train with: dcgan-viz train --data prepared:{out} --image-size {h}")
    _run(go)


@app.command()
def sample(
    checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory)."),
    out: Path = typer.Option(Path("samples.png"), help="PNG file to write."),
    seed: int = typer.Option(0, help="Latent seed: sample i is latent (seed, i)."),
    n: int = typer.Option(64, help="Number of samples."),
    start: int = typer.Option(0, help="First latent index."),
    scale: int = typer.Option(2, help="Upscale factor of the PNG."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
) -> None:
    """Write a grid of samples: latents (seed, start .. start+n-1)."""
    def go() -> None:
        from .checkpoint import load_checkpoint
        from .images import check_png_size, grid, save_png
        from .sampling import generate

        if n < 1 or n > 4096:
            raise ValueError(f"n must be between 1 and 4096, got {n}")
        if scale < 1:
            raise ValueError(f"--scale must be a positive integer, got {scale}")
        image_file(out)  # the output-path policy, before the model is loaded
        bundle = load_checkpoint(checkpoint, device=device)
        side, nrow = bundle.config.image_size, max(1, math.ceil(math.sqrt(n)))
        check_png_size(math.ceil(n / nrow) * (side + 2) + 2, nrow * (side + 2) + 2, bundle.config.nc, scale)
        images = generate(bundle, seed, range(start, start + n))
        save_png(out, grid(images), scale=scale)
        typer.echo(f"wrote {out} ({n} samples, seed {seed}, indices {start}..{start + n - 1})")
    _run(go)


@app.command()
def info(
    checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory)."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON."),
) -> None:
    """Print a checkpoint's model config, data spec, training config and metrics."""
    def go() -> None:
        from .checkpoint import check_weights, model_config, read_meta, resolve_checkpoint

        path = resolve_checkpoint(checkpoint)
        meta = read_meta(path)
        check_weights(path, meta, model_config(path, meta))  # a card is only shown for usable weights
        if as_json:
            typer.echo(json.dumps(meta, indent=2, sort_keys=True))
            return
        typer.echo(f"checkpoint: {path}")
        typer.echo(f"step {meta.get('step')}  epoch {meta.get('epoch')}  weights {meta.get('weights_dtype')}  "
                   f"dcgan-viz {meta.get('package_version')}")
        for section in ("model", "data", "train", "metrics"):
            values = meta.get(section) or {}
            typer.echo(f"{section}:")
            for k in sorted(values):
                typer.echo(f"  {k}: {values[k]}")
    _run(go)


def _register_commands() -> None:
    """Analysis verbs live in dcgan_viz/commands/<name>.py, each with ``register(app)``."""
    import importlib
    import pkgutil

    from . import commands

    for mod in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        importlib.import_module(f"{commands.__name__}.{mod}").register(app)


_register_commands()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
