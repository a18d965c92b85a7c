"""`dcgan-viz arithmetic` (section 6.3 concept arithmetic and turn vector, measured with an
attribute classifier, against same-norm random controls), `dcgan-viz walk` (section 6.1
latent walks with a per-step smoothness measure) and `dcgan-viz invert` (latents for your images)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dcgan_viz.fsutil import atomic_write, atomic_write_bytes, atomic_write_json


def register(app: typer.Typer) -> None:
    @app.command()
    def arithmetic(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory) of a faces model."),
        classifier: Path = typer.Option(Path("checkpoints/faces-attributes"), help="Attribute classifier checkpoint."),
        trials: int = typer.Option(1000, help="Trials per setting."),
        k: List[int] = typer.Option([1, 3], "--k", help="Exemplars per concept (repeatable)."),
        expression: str = typer.Option("a_pos - a_neg + b_neg",
                                       help="Concepts a_pos, a_neg, b_neg, b_pos joined by + and -."),
        attribute: str = typer.Option("smile", help="Target attribute (continuous)."),
        keep: str = typer.Option("beard", help="Off-target attribute (binary) that must be b's value."),
        pool: int = typer.Option(4000, help="Pool latents (seed, 0..pool-1) the exemplars are drawn from."),
        turn_k: int = typer.Option(4, help="Faces per side of the turn vector (0 = skip)."),
        seed: int = typer.Option(0, help="Latent seed of the pool and trial seed."),
        out: Path = typer.Option(Path("arithmetic"), help="Output directory (arithmetic.json, arithmetic.md)."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Measure concept arithmetic (k exemplars vs random control) and the turn vector."""
        from dcgan_viz.cli import _run

        def go() -> None:
            from dcgan_viz.analysis.latent import (
                arithmetic_trials,
                attribute_pool,
                parse_expression,
                results_markdown,
                turn_trials,
            )
            from dcgan_viz.checkpoint import load_checkpoint
            from dcgan_viz.evaluation import load_evaluator

            parse_expression(expression)
            if trials < 1 or pool < 1 or any(x < 1 for x in k) or turn_k < 0:
                raise ValueError("--trials, --pool and --k must be at least 1, --turn-k at least 0")
            bundle = load_checkpoint(checkpoint, device=device)
            model, _ = load_evaluator(classifier, device=bundle.device, kind="attributes")
            p = attribute_pool(bundle, model, seed, pool)
            arith = [arithmetic_trials(bundle, model, trials, kk, attribute, seed, keep=keep, expression=expression,
                                       pool=p) for kk in k]
            turn = turn_trials(bundle, model, trials, turn_k, seed, pool=p) if turn_k else None
            table = results_markdown(arith, turn)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / "arithmetic.json", {
                "checkpoint": str(checkpoint), "classifier": str(classifier), "arithmetic": [a.to_dict() for a in arith],
                "turn": turn.to_dict() if turn else None})
            atomic_write(out / "arithmetic.md", lambda path: path.write_text(table))
            typer.echo(table)
            typer.echo(f"wrote {out}/arithmetic.json, {out}/arithmetic.md")
        _run(go)

    @app.command()
    def walk(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory)."),
        seed: int = typer.Option(0, help="Anchors are latents (seed, 0..points-1)."),
        points: int = typer.Option(9, help="Anchor latents."),
        steps: int = typer.Option(8, help="Intermediate points between consecutive anchors."),
        method: str = typer.Option("slerp", help="slerp or lerp."),
        out: Path = typer.Option(Path("walk.png"), help="PNG grid (one row per segment); numbers go to OUT.json."),
        scale: int = typer.Option(2, help="Upscale factor of the PNG."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Walk the latent space through anchor latents; write an image grid and smoothness numbers."""
        from dcgan_viz.cli import _run

        def go() -> None:
            from dcgan_viz.analysis.latent import interpolate, walk_smoothness
            from dcgan_viz.checkpoint import load_checkpoint
            from dcgan_viz.images import grid, save_png
            from dcgan_viz.latents import latents

            if points < 2 or points > 256 or steps < 0 or steps > 256:
                raise ValueError("--points must be 2..256 and --steps 0..256")
            if method not in ("slerp", "lerp"):
                raise ValueError(f"--method must be slerp or lerp, got {method!r}")
            bundle = load_checkpoint(checkpoint, device=device)
            zs = interpolate(latents(bundle.config, seed, points, device=bundle.device), steps, method)
            result = walk_smoothness(bundle.G, zs)
            save_png(out, grid(result.images, nrow=steps + 1), scale=scale)
            summary = {"checkpoint": str(checkpoint), "seed": seed, "points": points, "steps": steps, "method": method,
                       **result.summary(), "step_change": [float(x) for x in result.step_change]}
            atomic_write_json(out.with_suffix(".json"), summary)
            typer.echo(f"wrote {out} and {out.with_suffix('.json')}: {summary['n_images']} images, mean step change "
                       f"{summary['mean_step_change']:.4f}, max {summary['max_step_change']:.4f} at step "
                       f"{summary['max_step']}, spike ratio {summary['spike_ratio']:.2f}")
        _run(go)

    @app.command()
    def invert(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory)."),
        images: List[Path] = typer.Argument(..., help="Image files to invert (centre-cropped and resized)."),
        out: Path = typer.Option(Path("inversion"), help="Output directory (grid PNG, latents.npy, inversion.json)."),
        steps: int = typer.Option(500, help="Adam steps on z."),
        restarts: int = typer.Option(4, help="Random starts per image; the best is kept."),
        lr: float = typer.Option(0.05, help="Adam learning rate."),
        seed: int = typer.Option(0, help="Seed of the random starts."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Find latents that reproduce your images; write originals above reconstructions and the errors."""
        from dcgan_viz.cli import _run

        def go() -> None:
            import io

            import numpy as np
            import torch
            from PIL import Image, UnidentifiedImageError

            from dcgan_viz.analysis.inversion import invert as invert_images
            from dcgan_viz.checkpoint import load_checkpoint
            from dcgan_viz.data.preprocess import preprocess_image
            from dcgan_viz.images import grid, save_png, to_uint8
            from dcgan_viz.sampling import generate_from_z

            bundle = load_checkpoint(checkpoint, device=device)
            cfg = bundle.config
            loaded = []
            for path in images:
                try:
                    with Image.open(path) as im:
                        loaded.append(preprocess_image(im, cfg.image_size, cfg.nc))
                except (OSError, UnidentifiedImageError):
                    raise ValueError(f"{path}: not a readable image") from None
            target = np.stack(loaded)
            result = invert_images(bundle.G, target, cfg.z_dist, steps, lr, restarts, seed)
            recon = to_uint8(generate_from_z(bundle.G, torch.as_tensor(result.z, device=bundle.device))).numpy()
            out.mkdir(parents=True, exist_ok=True)
            save_png(out / "inversion.png", grid(np.concatenate([target, recon]), nrow=len(target)), scale=2)
            buf = io.BytesIO()
            np.save(buf, result.z, allow_pickle=False)  # np.save on a path would append ".npy" to the temp name
            atomic_write_bytes(out / "latents.npy", buf.getvalue())
            atomic_write_json(out / "inversion.json", {
                "checkpoint": str(checkpoint), "images": [str(p) for p in images], "steps": steps, "restarts": restarts,
                "mse": [float(e) for e in result.errors]})
            typer.echo(f"wrote {out}: mean reconstruction MSE {float(result.errors.mean()):.4f} "
                       f"(pixels in [-1, 1]); latents in latents.npy")
        _run(go)

