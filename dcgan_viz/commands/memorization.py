"""`dcgan-viz memorization` (does a checkpoint copy its training set?) and `dcgan-viz dedup` (near duplicates)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from dcgan_viz.evaluation.shipped import CLASSIFIER, Need, load_needed
from dcgan_viz.fsutil import atomic_write, atomic_write_json
from dcgan_viz.outputs import prepared_dir, results_dir

MEMORIZATION_NEEDS = Need("memorization", "--classifier", "an evaluation classifier", "for the classifier feature space",
                          "or leave --classifier out (pixel and D spaces only)")


def _memorization_markdown(summary: dict, checkpoint: str, pairs: list[dict]) -> str:
    lines = [f"# Memorization: {checkpoint}", "",
             f"train {summary['counts']['train']}, held-out {summary['counts']['test']}, "
             f"generated {summary['counts']['generated']}. Verdict: **{summary['verdict']}** "
             "(rules: copying when the pixel-space C_T < -3; local copying when a pixel-space cell has z < -3).", "",
             "| space | C_T | cells used | min cell z | cells z < -3 | NN ratio gen/held-out | near-copy fraction "
             "| median gen->train | median held-out->train |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary["spaces"].items():
        lines.append(f"| {name} | {s['ct']:.2f} | {s['cells_used']}/{s['cells']} | {s['min_cell_z']:.2f} | "
                     f"{s['cells_copying']} | {s['nn_ratio']:.3f} | "
                     f"{s['near_copy_fraction']:.4f} | {s['median_gen_to_train']:.3f} | {s['median_test_to_train']:.3f} |")
    if "latent_recovery" in summary:
        lr = summary["latent_recovery"]
        lines += ["", f"Latent recovery (n = {lr['n']} per split): mean MSE train {lr['mean_train_error']:.4f}, "
                      f"held-out {lr['mean_test_error']:.4f}; KS statistic {lr['ks_statistic']:.3f}, p = {lr['ks_pvalue']:.3g}."]
    lines += ["", "Closest generated/train pairs (pixel space): `closest_pairs.png` (generated row above train row).", "",
              "| generated | train | distance |", "|---|---|---|"]
    lines += [f"| {p['generated']} | {p['train']} | {p['distance']:.4f} |" for p in pairs[:16]]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def register(app: typer.Typer) -> None:
    @app.command()
    def memorization(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory)."),
        out: Path = typer.Option(Path("memorization"), help="Output directory (JSON, Markdown, PNG, plotly JSON)."),
        n: int = typer.Option(10000, help="Generated samples: latents (seed, 0..n-1)."),
        seed: int = typer.Option(0, help="Latent seed (also k-means and latent-recovery seed)."),
        n_test: int = typer.Option(10000, help="Held-out images (the data spec's test split)."),
        classifier: Optional[Path] = typer.Option(None, help="Evaluation classifier for a third feature space "
                                                  f"(e.g. {CLASSIFIER})."),
        backend: str = typer.Option("auto", help="Nearest-neighbour backend: auto, faiss, torch."),
        cells: int = typer.Option(20, help="k-means cells of the training set for C_T."),
        min_count: int = typer.Option(20, help="Cells need this many held-out and generated samples."),
        recovery_n: int = typer.Option(64, help="Train and held-out images for latent recovery (0 = skip)."),
        recovery_steps: int = typer.Option(200, help="Adam steps of latent recovery."),
        pixel_size: int = typer.Option(16, help="Pixel space: images downsampled to this size."),
        top: int = typer.Option(32, help="Closest generated/train pairs to list and draw."),
        cache_dir: Optional[Path] = typer.Option(Path("cache/memorization"), help="Cache of training features."),
        data: Optional[str] = typer.Option(None, help="Training data spec (e.g. fashion-mnist); default: the "
                                           "checkpoint's own (required for imported models, which record none)."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Measure whether a checkpoint copies its training set: NN distances, C_T, latent recovery."""
        from dcgan_viz.cli import _run

        def go() -> None:
            results_dir(out)  # the output-path policy, before any expensive work
            from dcgan_viz.analysis.memorization import measure_checkpoint
            from dcgan_viz.checkpoint import load_checkpoint, with_data
            from dcgan_viz.images import save_png
            from dcgan_viz.plots.memorization import closest_pairs_grid, ct_cells_figure

            if n < 2 or n_test < 2:
                raise ValueError("--n and --n-test must be at least 2")
            bundle = with_data(load_checkpoint(checkpoint, device=device), data)
            if bundle.D is None:
                typer.echo("note: no discriminator in this checkpoint; the D feature space is left out", err=True)
            clf, clf_key = None, ""
            if classifier is not None:
                clf, meta = load_needed(classifier, MEMORIZATION_NEEDS, "classifier", bundle.device)
                clf_key = str(meta.get("weights_sha256", classifier))
            report, gen, train = measure_checkpoint(
                bundle, n, seed, n_test, clf, clf_key, backend, cache_dir, cells, min_count, recovery_n,
                recovery_steps, pixel_size, top)
            out.mkdir(parents=True, exist_ok=True)
            summary = report.summary()
            pairs = [{"generated": int(g), "train": int(t), "distance": float(d)} for g, t, d in
                     zip(report.closest.gen_indices, report.closest.train_indices, report.closest.distances)]
            atomic_write_json(out / "memorization.json", {"checkpoint": str(bundle.path), "seed": seed, **summary,
                                                         "closest_pairs": pairs})
            _write_text(out / "memorization.md", _memorization_markdown(summary, str(bundle.path), pairs))
            save_png(out / "closest_pairs.png", closest_pairs_grid(report.closest, gen, train), scale=2)
            for name, s in report.spaces.items():
                _write_text(out / f"ct_cells_{name}.plotly.json", ct_cells_figure(s.copying, f"C_T cells ({name})").to_json())
            ct = summary["spaces"]["pixel"]["ct"]
            typer.echo(f"{report.verdict}: pixel C_T {ct:.2f}, "
                       f"NN ratio {summary['spaces']['pixel']['nn_ratio']:.3f}; wrote {out}")
        _run(go)

    @app.command()
    def dedup(
        source: str = typer.Argument(..., help="Data spec: fashion-mnist, rooms:count=1000000, prepared:DIR, ..."),
        out: Path = typer.Option(Path("dedup"), help="Output directory: report and filtered/ prepared cache."),
        method: str = typer.Option("semantic", help="semantic (the paper's autoencoder hash) or phash (DCT)."),
        radius: Optional[int] = typer.Option(None, help="Hamming radius: codes this close collide "
                                             "(default: 4 for phash's 64 bits, 8 for semantic's 128)."),
        threshold: Optional[float] = typer.Option(0.08, help="Confirm collisions: max RMS distance of the aligned, "
                                                  "normalised images (--no-verify: hash collisions only)."),
        verify: bool = typer.Option(True, help="Confirm hash collisions with the pixel check."),
        max_shift: int = typer.Option(2, help="Also look up the hashes of each image shifted by up to this many px."),
        size: int = typer.Option(32, help="Image size the source is prepared at."),
        steps: int = typer.Option(3000, help="Autoencoder training steps (semantic)."),
        seed: int = typer.Option(0),
        plant: int = typer.Option(0, help="Control: plant this many altered copies and report precision/recall."),
        max_bucket: int = typer.Option(256, help="Compare at most this many bucket neighbours per item."),
        cache_dir: Path = typer.Option(Path("cache"), help="Where a non-prepared source is prepared."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress on stderr (a bar on a terminal, "
                                         "else a line every 10% or 30 s)."),
    ) -> None:
        """Find near-duplicate groups in a training set; write a report and a de-duplicated prepared cache."""
        from dcgan_viz.cli import _run

        def go() -> None:
            results_dir(out)  # the output-path policy, before any expensive work
            prepared_dir(out / "filtered")
            from dcgan_viz.analysis.dedup import find_duplicates, pair_scores, plant_duplicates
            from dcgan_viz.data.loading import cache_key, load_imageset
            from dcgan_viz.data.prepare import filter_prepared
            from dcgan_viz.data.spec import DataSpec
            from dcgan_viz.images import save_png
            from dcgan_viz.plots.memorization import dedup_groups_grid

            spec = DataSpec.parse(source, size=size)
            imageset = load_imageset(spec, cache_dir=cache_dir, progress=not no_progress)
            src_dir = Path(spec.path) if spec.source == "prepared" else cache_dir / cache_key(spec)
            images = np.asarray(imageset.images)
            truth = None
            if plant > 0:
                images, truth, _ = plant_duplicates(images, plant, seed)
            result = find_duplicates(images, method, radius, threshold if verify else None, max_shift, max_bucket,
                                     seed, steps, show_progress=not no_progress)
            keep = result.keep[result.keep < len(imageset)]
            filter_prepared(src_dir, keep, out / "filtered")
            groups = result.groups()
            report = {
                "source": source, "method": method, "radius": result.radius, "threshold": threshold if verify else None,
                "max_shift": max_shift, "images": len(images),
                "pairs": int(len(result.pairs)), "groups": len(groups), "largest_group": int(len(groups[0])) if groups else 1,
                "kept": int(len(keep)), "removed": int(len(imageset) - len(keep)),
                "truncated_buckets": result.truncated_buckets, "filtered_cache": str(out / "filtered"),
                "top_groups": [g.tolist() for g in groups[:50]],
            }
            if truth is not None:
                report["planted"] = pair_scores(result, truth)
            atomic_write_json(out / "dedup.json", report)
            lines = [f"# Near duplicates: {source}", "", f"{method} hash, radius {result.radius}, verification {threshold if verify else None}, shift probes {max_shift}: "
                     f"{report['pairs']} pairs, {report['groups']} groups (largest {report['largest_group']}), "
                     f"kept {report['kept']} of {len(imageset)}; filtered cache `{out / 'filtered'}`."]
            if truth is not None:
                s = report["planted"]
                lines.append(f"\nPlanted control: {s['planted_pairs']} copies, precision {s['precision']:.4f} "
                             f"(copies only {s['precision_planted']:.4f}), recall {s['recall']:.4f}.")
            _write_text(out / "dedup.md", "\n".join(lines) + "\n")
            picture = dedup_groups_grid(result, images)
            if picture is not None:
                save_png(out / "groups.png", picture, scale=2)
            typer.echo(f"{report['groups']} near-duplicate groups, kept {report['kept']} of {len(imageset)}; wrote {out}")
        _run(go)
