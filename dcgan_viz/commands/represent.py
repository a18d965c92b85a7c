"""`dcgan-viz represent`: D features as a representation — linear L2-SVM accuracy of trained-D
features vs random-init D vs raw pixels (all labels and few labels), and a UMAP of D features."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from dcgan_viz.fsutil import atomic_write, atomic_write_json
from dcgan_viz.outputs import results_dir


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def register(app: typer.Typer) -> None:
    @app.command()
    def represent(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory)."),
        data: str = typer.Option("fashion-mnist", help="Labelled data spec (its train and test splits), "
                                 "resized to the checkpoint's image size and channels."),
        out: Path = typer.Option(Path("represent"), help="Output directory (accuracy JSON/Markdown/HTML, UMAP HTML)."),
        train_count: Optional[int] = typer.Option(None, help="First N training images for the all-label rows "
                                                  "(default: the whole train split; 60,000 Fashion-MNIST images "
                                                  "need about 15 GB of memory for the SVM)."),
        test_count: int = typer.Option(10000, help="First N test-split images scored."),
        labels: int = typer.Option(1000, help="Few-label rows: class-balanced labelled subset (the paper's SVHN protocol)."),
        umap_real: int = typer.Option(1000, help="Real test images in the UMAP (0 = no UMAP)."),
        umap_generated: int = typer.Option(500, help="Generated images in the UMAP: latents (seed, 0..n-1)."),
        seed: int = typer.Option(0, help="Seed of label subsets, CV folds, SVM, UMAP and latents."),
        random_seed: int = typer.Option(0, help="Seed of the random-init D (the control)."),
        cache_dir: Optional[Path] = typer.Option(Path("cache/analysis"), help="Cache of SVM and UMAP results."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Linear-SVM accuracy of D features (trained vs random init vs pixels) and their UMAP."""
        from dcgan_viz.cli import _run

        def go() -> None:
            results_dir(out)  # the output-path policy, before any expensive work
            from dcgan_viz.analysis.representation import evaluate_representations, umap_embedding
            from dcgan_viz.checkpoint import load_checkpoint, require_D
            from dcgan_viz.data.loading import load_imageset
            from dcgan_viz.data.spec import DataSpec
            from dcgan_viz.plots.representation import accuracy_figure, umap_figure

            if min(train_count or 10, test_count, labels) < 10:
                raise ValueError("--train-count, --test-count and --labels must be at least 10")
            bundle = load_checkpoint(checkpoint, device=device)
            require_D(bundle, "represent (D features as a representation)")
            spec = DataSpec.parse(data, size=bundle.config.image_size, channels=bundle.config.nc)
            train = load_imageset(DataSpec.from_dict(spec.to_dict() | {"count": train_count, "split": "train"}))
            test = load_imageset(DataSpec.from_dict(spec.to_dict() | {"count": test_count, "split": "test"}))
            result = evaluate_representations(bundle, train, test, (None, labels), random_seed, seed, cache_dir)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out / "accuracy.json", asdict(result) | {"checkpoint": str(bundle.path)})
            _write_text(out / "accuracy.md", result.markdown())
            _write_text(out / "accuracy.html", accuracy_figure(result).to_html(include_plotlyjs=True))
            typer.echo(result.markdown())
            if umap_real > 0:
                emb = umap_embedding(bundle, test, umap_real, umap_generated, seed, seed, cache_dir=cache_dir)
                _write_text(out / "umap.html", umap_figure(emb).to_html(include_plotlyjs=True))
                typer.echo(f"wrote {out}/umap.html ({int((~emb.generated).sum())} real, {int(emb.generated.sum())} generated)")
        _run(go)
