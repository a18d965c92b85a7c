"""`dcgan-viz filters`: Fig. 5 (guided backprop of D filters, trained vs random init), top
receptive-field patches, G feature maps, and a network-dissection detector table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dcgan_viz.analysis.dissection import QUANTILE
from dcgan_viz.fsutil import atomic_write, atomic_write_json
from dcgan_viz.outputs import results_dir


def parse_filters(text: str) -> list[int]:
    """``0:6`` (a range), ``3`` or ``1,4,7`` -> filter indices."""
    try:
        if ":" in text:
            start, stop = (int(p) for p in text.split(":"))
            return list(range(start, stop))
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"--filters must look like 0:6, 3 or 1,4,7, got {text!r}") from None


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def register(app: typer.Typer) -> None:
    @app.command()
    def filters(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory)."),
        layer: Optional[str] = typer.Option(None, help="D layer (default: the last hidden layer, as in Fig. 5)."),
        filters: str = typer.Option("0:6", "--filters", help="Filter indices: 0:6, 3 or 1,4,7."),
        out: Path = typer.Option(Path("filters"), help="Output directory (PNG grids, detector JSON/Markdown/HTML)."),
        top: int = typer.Option(6, help="Top-activating images per filter."),
        images: int = typer.Option(2000, help="Training images searched for top activations and dissected."),
        random_seed: int = typer.Option(0, help="Seed of the random-init D (the control)."),
        dissection: bool = typer.Option(True, "--dissect/--no-dissect", help="Network dissection when the data has masks."),
        quantile: float = typer.Option(QUANTILE, help="Dissection: fraction of each unit's activations above its "
                                       "threshold (0.01 = top 1%, Bau et al. 2020; 0.005 = NetDissect 2017)."),
        latent_seed: int = typer.Option(0, help="G feature maps: latent (seed, index)."),
        latent_index: int = typer.Option(0, help="G feature maps: latent index."),
        cache_dir: Optional[Path] = typer.Option(Path("cache/analysis"), help="Cache of dissection results."),
        data: Optional[str] = typer.Option(None, help="Real images to search (data spec, e.g. fashion-mnist); default: "
                                           "the checkpoint's training data (required for imported models)."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Visualise D filters (Fig. 5, trained vs random init) and count object detectors."""
        from dcgan_viz.cli import _run

        def go() -> None:
            results_dir(out)  # the output-path policy, before any expensive work
            from dcgan_viz.analysis.dissection import detector_markdown, detector_table, dissect_checkpoint
            from dcgan_viz.analysis.filters import (
                filter_responses,
                generator_feature_maps,
                probe_set,
                random_discriminator,
            )
            from dcgan_viz.analysis.guided import check_units
            from dcgan_viz.checkpoint import load_checkpoint, require_D, with_data
            from dcgan_viz.images import save_png
            from dcgan_viz.latents import latents
            from dcgan_viz.plots.filters import detector_figure, feature_map_grid, fig5_grid, patch_grid

            units = parse_filters(filters)
            if top < 1 or images < 1:
                raise ValueError("--top and --images must be at least 1")
            bundle = with_data(load_checkpoint(checkpoint, device=device), data)
            require_D(bundle, "filters (guided backprop of D's units)")
            name = layer or bundle.D.feature_layers[-1]
            check_units(bundle.D, name, units)
            probe = probe_set(bundle.data, images)
            random_d = random_discriminator(bundle.config, random_seed).to(bundle.device)
            responses = [filter_responses(bundle.D, probe.images, name, units, top, "trained"),
                         filter_responses(random_d, probe.images, name, units, top, "random")]
            out.mkdir(parents=True, exist_ok=True)
            save_png(out / f"fig5_{name}.png", fig5_grid(responses), scale=2)
            save_png(out / f"patches_{name}.png", patch_grid(responses), scale=2)
            z = latents(bundle.config, latent_seed, [latent_index], device=bundle.device)
            save_png(out / "generator_features.png", feature_map_grid(generator_feature_maps(bundle.G, z)), scale=2)
            typer.echo(f"wrote {out}/fig5_{name}.png (left trained, right random init; rows: images, guided maps), "
                       f"patches_{name}.png, generator_features.png")
            tops = {r.label: r.top.value.mean(axis=1) for r in responses}  # per filter: mean of its top-k maxima
            typer.echo(f"{name} filters {units[0]}..{units[-1]}, mean top-{top} activation on {len(probe)} images: "
                       + ", ".join(f"{label} " + " ".join(f"{v:.3g}" for v in values) for label, values in tops.items()))
            if not dissection:
                return
            if probe.masks is None:
                typer.echo(f"no detector table: data {bundle.data.source!r} has no class masks")
                return
            results = dissect_checkpoint(bundle, images, random_seed, cache_dir, quantile=quantile)
            atomic_write_json(out / "detectors.json", {"rows": detector_table(results), "n_images": images,
                                                       "quantile": results[0].quantile,
                                                       "iou_threshold": results[0].iou_threshold})
            table = detector_markdown(results)
            _write_text(out / "detectors.md", table)
            _write_text(out / "detectors.html", detector_figure(results).to_html(include_plotlyjs=True))
            typer.echo(table)
        _run(go)
