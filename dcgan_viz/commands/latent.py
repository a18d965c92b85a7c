"""`dcgan-viz arithmetic` (section 6.3 concept arithmetic: your own concepts from exemplar latents,
or measured with an attribute classifier against same-norm random controls, plus the turn vector),
`dcgan-viz directions` (attribute directions: mean difference and InterFaceGAN SVM normal, measured
on held-out latents), `dcgan-viz interpolate` (section 6.1 latent walks with a per-step smoothness
measure; `walk` is a hidden alias) and `dcgan-viz invert` (latents for your images)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dcgan_viz.evaluation.shipped import ATTRIBUTES, Need, load_needed
from dcgan_viz.fsutil import atomic_write, atomic_write_bytes, atomic_write_json
from dcgan_viz.outputs import image_file, results_dir

ARITHMETIC_NEEDS = Need("arithmetic (measure mode)", "--classifier", "a face-attribute classifier",
                        "to read the attributes of generated faces", "or give an EXPRESSION and --concept (user mode)")
DIRECTIONS_NEEDS = Need("directions", "--classifier", "a face-attribute classifier",
                        "to label the attributes of generated faces")


def register(app: typer.Typer) -> None:
    @app.command()
    def arithmetic(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory) of a faces model."),
        user_expression: Optional[str] = typer.Argument(
            None, metavar="[EXPRESSION]",
            help="Your concepts joined by + and -, e.g. 'smile - neutral + man' (names from --concept). "
                 "Without it: measure mode."),
        concept: List[str] = typer.Option(
            [], "--concept", help="NAME=seed:index,seed:index,... (or FILE.npy:row from `invert`), repeatable: "
                                  "the concept is the mean of its exemplar latents."),
        neighbours: int = typer.Option(8, help="User mode: noise neighbours of the result."),
        noise: float = typer.Option(0.25, help="User mode: neighbours are result + uniform(-noise, noise)."),
        rescale: bool = typer.Option(False, "--rescale", help="Rescale results to the prior's expected norm."),
        measure: bool = typer.Option(False, "--measure", help="Measure mode (the default without EXPRESSION)."),
        classifier: Path = typer.Option(ATTRIBUTES, help="Attribute classifier checkpoint."),
        trials: int = typer.Option(1000, help="Measure mode: trials per setting."),
        k: List[int] = typer.Option([1, 3], "--k", help="Measure mode: exemplars per concept (repeatable)."),
        expression: str = typer.Option("a_pos - a_neg + b_neg",
                                       help="Measure mode: concepts a_pos, a_neg, b_neg, b_pos joined by + and -."),
        attribute: List[str] = typer.Option(["smile"], "--attribute",
                                            help="Measure mode: target attribute(s) (repeatable)."),
        keep: str = typer.Option("beard", help="Measure mode: off-target attribute (binary) that must be b's value."),
        pool: int = typer.Option(4000, help="Measure mode: pool latents (seed, 0..pool-1) exemplars are drawn from."),
        turn_k: int = typer.Option(4, help="Measure mode: faces per side of the turn vector (0 = skip)."),
        seed: int = typer.Option(0, help="Latent seed of the pool and trial seed (user mode: the neighbours' seed)."),
        out: Path = typer.Option(Path("arithmetic"), help="Output directory (arithmetic.json and arithmetic.md or "
                                                            "arithmetic.png)."),
        scale: int = typer.Option(2, help="User mode: upscale factor of the PNG."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Concept arithmetic: your EXPRESSION over --concept exemplars (PNG + JSON), or, without an
        EXPRESSION, measured with the attribute classifier (k exemplars vs random control) plus the turn vector."""
        from dcgan_viz.cli import _run

        def user_mode() -> None:
            import numpy as np
            import torch

            from dcgan_viz.analysis.latent import (
                evaluate_expression,
                exemplar_latents,
                noise_neighbours,
                parse_concept,
                parse_expression,
                prior_norm,
                rescale_to_prior,
            )
            from dcgan_viz.checkpoint import load_checkpoint
            from dcgan_viz.images import grid, save_png, to_uint8
            from dcgan_viz.sampling import generate_from_z

            terms = parse_expression(user_expression)
            if not concept:
                raise ValueError("EXPRESSION needs its concepts: --concept NAME=seed:index,... for each name")
            specs: dict = {}
            for text in concept:
                name, exemplars = parse_concept(text)
                if name in specs:
                    raise ValueError(f"concept {name!r} given twice")
                specs[name] = exemplars
            missing = [name for _, name in terms if name not in specs]
            if missing:
                raise ValueError(f"unknown concept {missing[0]!r} in the expression; known: {', '.join(sorted(specs))}")
            if not 0 <= neighbours <= 64 or not noise >= 0:
                raise ValueError("--neighbours must be 0..64 and --noise >= 0")
            bundle = load_checkpoint(checkpoint, device=device)
            cfg = bundle.config
            ex = {name: exemplar_latents(cfg, exs, device=bundle.device) for name, exs in specs.items()}
            means = {name: z.mean(0) for name, z in ex.items()}
            result = evaluate_expression(terms, means)
            raw_norm = float(result.norm())
            if rescale:
                result = rescale_to_prior(result, cfg.z_dist)
            clamp = (-1.0, 1.0) if cfg.z_dist == "uniform" else None
            near = noise_neighbours(result, neighbours, noise, seed=seed, clamp=clamp) if neighbours else result[:0]
            used = [name for name in specs if any(name == t for _, t in terms)]
            ncol = max([len(ex[name]) + 1 for name in used] + [1 + neighbours])
            blank = torch.zeros(1, cfg.nc, cfg.image_size, cfg.image_size, device=bundle.device)
            rows = []
            for name in used:
                imgs = generate_from_z(bundle.G, torch.cat([ex[name], means[name][None]]))
                rows.append(torch.cat([imgs] + [blank] * (ncol - len(imgs))))
            imgs = generate_from_z(bundle.G, torch.cat([result[None], near]))
            rows.append(torch.cat([imgs] + [blank] * (ncol - len(imgs))))
            out.mkdir(parents=True, exist_ok=True)
            save_png(out / "arithmetic.png", grid(to_uint8(torch.cat(rows)).cpu(), nrow=ncol), scale=scale)
            atomic_write_json(out / "arithmetic.json", {
                "checkpoint": str(checkpoint), "expression": user_expression,
                "terms": [[sign, name] for sign, name in terms],
                "concepts": {name: {"exemplars": [[s, int(i)] for s, i in specs[name]],
                                    "mean_norm": float(means[name].norm())} for name in used},
                "layout": {"rows": used + ["result"], "columns": ncol,
                           "concept_row": "exemplars, then their mean", "result_row": "result, then noise neighbours"},
                "rescaled": bool(rescale), "result_norm_before_rescale": raw_norm,
                "prior_norm": prior_norm(cfg.nz, cfg.z_dist), "neighbours": neighbours, "noise": noise, "seed": seed,
                "result": [float(x) for x in result.cpu()],
                "neighbour_latents": np.asarray(near.cpu(), dtype=float).tolist()})
            typer.echo(f"wrote {out}/arithmetic.png ({len(used)} concept rows + result row with {neighbours} "
                       f"neighbours) and {out}/arithmetic.json; |result| {raw_norm:.2f} "
                       f"(prior {prior_norm(cfg.nz, cfg.z_dist):.2f}{', rescaled' if rescale else ''})")

        def measure_mode() -> None:
            from dcgan_viz.analysis.latent import (
                arithmetic_trials,
                attribute_pool,
                parse_expression,
                results_markdown,
                turn_trials,
            )
            from dcgan_viz.checkpoint import load_checkpoint

            parse_expression(expression)
            if concept:
                raise ValueError("--concept needs an EXPRESSION (user mode); measure mode draws its own exemplars")
            if trials < 1 or pool < 1 or any(x < 1 for x in k) or turn_k < 0:
                raise ValueError("--trials, --pool and --k must be at least 1, --turn-k at least 0")
            bundle = load_checkpoint(checkpoint, device=device)
            model, _ = load_needed(classifier, ARITHMETIC_NEEDS, "attributes", bundle.device)
            p = attribute_pool(bundle, model, seed, pool)
            arith = [arithmetic_trials(bundle, model, trials, kk, att, seed, keep=keep, expression=expression,
                                       pool=p, rescale=rescale) for att in attribute for kk in k]
            turn = turn_trials(bundle, model, trials, turn_k, seed, pool=p) if turn_k else None
            table = results_markdown(arith, turn)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / "arithmetic.json", {
                "checkpoint": str(checkpoint), "classifier": str(classifier), "arithmetic": [a.to_dict() for a in arith],
                "turn": turn.to_dict() if turn else None})
            atomic_write(out / "arithmetic.md", lambda path: path.write_text(table))
            typer.echo(table)
            typer.echo(f"wrote {out}/arithmetic.json, {out}/arithmetic.md")

        def go() -> None:
            results_dir(out)  # the output-path policy, before any expensive work
            if user_expression is not None and measure:
                raise ValueError("give either an EXPRESSION (user mode) or --measure, not both")
            (user_mode if user_expression is not None else measure_mode)()
        _run(go)

    @app.command()
    def directions(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory) of a faces model."),
        attribute: List[str] = typer.Option(["smile", "glasses"], "--attribute", help="Attribute(s) (repeatable)."),
        classifier: Path = typer.Option(ATTRIBUTES, help="Attribute classifier checkpoint."),
        pool: int = typer.Option(4000, help="Pool latents (seed, 0..pool-1): half fit the directions, half test them."),
        n_eval: int = typer.Option(1000, "--eval", help="Held-out latents the directions are tested on."),
        step: Optional[float] = typer.Option(None, help="Norm of every direction (default: |mean difference|)."),
        on: float = typer.Option(0.7, help="Label on: reading > ON (a class index for categorical attributes)."),
        off: float = typer.Option(0.2, help="Label off: reading < OFF."),
        seed: int = typer.Option(0, help="Latent seed of the pool, split and random control."),
        out: Path = typer.Option(Path("directions"), help="Output directory (directions.json, directions.md)."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Attribute directions (mean difference, SVM normal) vs a same-norm random direction, on held-out latents."""
        from dcgan_viz.cli import _run

        def go() -> None:
            results_dir(out)  # the output-path policy, before any expensive work
            from dcgan_viz.analysis.latent import attribute_pool, direction_trials, directions_markdown
            from dcgan_viz.checkpoint import load_checkpoint

            if pool < 4 or n_eval < 1 or (step is not None and not step > 0) or not off <= on:
                raise ValueError("--pool must be at least 4, --eval at least 1, --step positive and --off <= --on")
            bundle = load_checkpoint(checkpoint, device=device)
            model, _ = load_needed(classifier, DIRECTIONS_NEEDS, "attributes", bundle.device)
            for att in attribute:
                if att not in model.attribute_names:
                    raise ValueError(f"unknown attribute {att!r}; the classifier reads {', '.join(model.attribute_names)}")
            p = attribute_pool(bundle, model, seed, pool)
            results = [direction_trials(bundle, model, att, seed, pool=p, n_eval=n_eval, on_threshold=on,
                                        off_threshold=off, step=step) for att in attribute]
            table = directions_markdown(results)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / "directions.json", {"checkpoint": str(checkpoint), "classifier": str(classifier),
                                                        "directions": [r.to_dict() for r in results]})
            atomic_write(out / "directions.md", lambda path: path.write_text(table))
            typer.echo(table)
            typer.echo(f"wrote {out}/directions.json, {out}/directions.md")
        _run(go)

    def interpolate(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory)."),
        seed: int = typer.Option(0, help="Anchors are latents (seed, 0..points-1)."),
        points: int = typer.Option(9, help="Anchor latents."),
        steps: int = typer.Option(8, help="Intermediate points between consecutive anchors."),
        method: str = typer.Option("slerp", help="slerp or lerp."),
        out: Path = typer.Option(Path("interpolate.png"),
                                 help="PNG grid (one row per segment); numbers go to OUT.json."),
        scale: int = typer.Option(2, help="Upscale factor of the PNG."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Interpolate through anchor latents; write an image grid and per-step smoothness numbers."""
        from dcgan_viz.cli import _run

        def go() -> None:
            image_file(out, out.with_suffix(".json"))  # the output-path policy, before any expensive work
            from dcgan_viz.analysis.latent import interpolate as interpolate_path
            from dcgan_viz.analysis.latent import walk_smoothness
            from dcgan_viz.checkpoint import load_checkpoint
            from dcgan_viz.images import grid, save_png
            from dcgan_viz.latents import latents

            if points < 2 or points > 256 or steps < 0 or steps > 256:
                raise ValueError("--points must be 2..256 and --steps 0..256")
            if method not in ("slerp", "lerp"):
                raise ValueError(f"--method must be slerp or lerp, got {method!r}")
            bundle = load_checkpoint(checkpoint, device=device)
            zs = interpolate_path(latents(bundle.config, seed, points, device=bundle.device), steps, method)
            result = walk_smoothness(bundle.G, zs)
            save_png(out, grid(result.images, nrow=steps + 1), scale=scale)
            summary = {"checkpoint": str(checkpoint), "seed": seed, "points": points, "steps": steps, "method": method,
                       **result.summary(), "step_change": [float(x) for x in result.step_change]}
            atomic_write_json(out.with_suffix(".json"), summary)
            typer.echo(f"wrote {out} and {out.with_suffix('.json')}: {summary['n_images']} images, mean step change "
                       f"{summary['mean_step_change']:.4f}, max {summary['max_step_change']:.4f} at step "
                       f"{summary['max_step']}, spike ratio {summary['spike_ratio']:.2f}")
        _run(go)

    app.command("interpolate")(interpolate)
    app.command("walk", hidden=True, help="Alias of `interpolate`.")(interpolate)

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
            results_dir(out)  # the output-path policy, before any expensive work
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

