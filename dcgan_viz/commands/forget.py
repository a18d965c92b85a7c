"""`dcgan-viz forget`: make the generator forget to draw a class (the paper's window removal,
section 6.1) by dropping the units a probe picks, and measure how much of the class goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dcgan_viz.evaluation.shipped import SEGMENTER, Need, load_needed
from dcgan_viz.fsutil import atomic_write, atomic_write_json
from dcgan_viz.outputs import results_dir

FORGET_NEEDS = Need("forget", "--segmenter", "a segmenter", "to label the --auto class (e.g. window) in generated rooms",
                    "or --segmenter none --boxes FILE")


def _parse_counts(text: str) -> list[int]:
    try:
        counts = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise ValueError(f"--counts must be comma-separated integers, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise ValueError(f"--counts must be positive integers, got {text!r}")
    return counts


def _forget_from_boxes(bundle, box_entries, layer: str, counts: list[int], show: Optional[int], seed: int,
                       out: Path) -> None:
    """No segmenter: probe from the boxes, pixel change inside / outside them (analysis/box_forget.py)."""
    import torch

    from dcgan_viz.analysis.box_forget import box_forget
    from dcgan_viz.analysis.forgetting import with_without
    from dcgan_viz.images import grid, save_png, to_uint8
    from dcgan_viz.latents import latents

    result, probe = box_forget(bundle, box_entries, layer, counts, seed)
    out.mkdir(parents=True, exist_ok=True)
    k_show = show if show is not None else max(1, round(0.1 * result.n_units))
    z_show = latents(bundle.config, seed, 8, device=bundle.device)
    before, after = with_without(bundle.G, z_show, layer, probe.units_by_weight[:k_show])
    save_png(out / "with_without.png", grid(to_uint8(torch.cat([before, after])), nrow=8), scale=2)
    atomic_write_json(out / "box_removal.json", result.to_dict() | {"checkpoint": str(bundle.path),
                                                                   "with_without_units": k_show})
    md = result.markdown()
    atomic_write(out / "box_removal.md", lambda p: p.write_text(md))
    typer.echo(md)
    typer.echo(f"wrote {out}/with_without.png (top {k_show} probe units dropped), box_removal.json, box_removal.md")


def register(app: typer.Typer) -> None:
    @app.command()
    def forget(
        checkpoint: Path = typer.Argument(..., help="Checkpoint directory (or a run directory)."),
        auto: str = typer.Option("window", "--auto", help="Class the segmenter labels in generated samples."),
        segmenter: Path = typer.Option(SEGMENTER, help="Segmenter evaluator checkpoint; "
                                       "'none' with --boxes: no segmenter (imported models), measure pixel change "
                                       "inside / outside the boxes instead."),
        layer: str = typer.Option("conv3", help="Generator layer whose units are dropped."),
        out: Path = typer.Option(Path("out/forget"), help="Output directory."),
        boxes: Optional[Path] = typer.Option(None, help="JSON list of {seed, index, boxes: [[x0,y0,x1,y1], ...]}: "
                                             "fit the probe on drawn boxes instead of segmenter labels."),
        n: int = typer.Option(1000, help="Evaluation latents (seed, 0..n-1)."),
        n_fit: int = typer.Option(500, help="Latents (fit-seed, 0..n-1) for the probe and dissection."),
        counts: str = typer.Option("4,8,12,16,24,32", help="Numbers of top units to drop."),
        show: Optional[int] = typer.Option(None, help="Units dropped in with_without.png (default 10% of the layer)."),
        seed: int = typer.Option(0, help="Seed of the evaluation latents."),
        fit_seed: int = typer.Option(1, help="Seed of the fitting latents (never the evaluation ones)."),
        insert_box: Optional[str] = typer.Option(None, help="x0,y0,x1,y1: also set the shown probe units high "
                                                 "inside this box and report how often the class appears there."),
        cache_dir: Optional[Path] = typer.Option(Path("cache/analysis"), help="Cache of removal measurements."),
        device: Optional[str] = typer.Option(None, help="cpu, cuda (default: CUDA when available)."),
    ) -> None:
        """Drop the generator units that draw a class; ACE per ranking (probe, optimized, greedy, dissection, random)."""
        from dcgan_viz.cli import _run

        def go() -> None:
            results_dir(out)  # the output-path policy, before any expensive work
            import torch

            from dcgan_viz.analysis import ablation as A
            from dcgan_viz.analysis.forgetting import forget_experiment, with_without
            from dcgan_viz.checkpoint import load_checkpoint
            from dcgan_viz.images import grid, save_png, to_uint8
            from dcgan_viz.latents import latents

            count_list = _parse_counts(counts)
            box = None
            if insert_box is not None:
                try:
                    box = [int(v) for v in insert_box.split(",")]
                except ValueError:
                    raise ValueError(f"--insert-box must be x0,y0,x1,y1 integers, got {insert_box!r}") from None
            if n < 1 or n_fit < 1:
                raise ValueError("--n and --n-fit must be positive")
            if seed == fit_seed and boxes is None:
                raise ValueError("--seed and --fit-seed must differ (no fitting on the evaluation latents)")
            box_entries = None
            if boxes is not None:
                try:
                    box_entries = json.loads(Path(boxes).read_text())
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{boxes}: not valid JSON ({exc.msg})") from None
            bundle = load_checkpoint(checkpoint, device=device)
            G = bundle.G
            A.check_layer(G, layer)
            size = bundle.config.image_size
            if str(segmenter).lower() == "none":
                if box_entries is None:
                    raise ValueError("--segmenter none needs --boxes (without a segmenter only drawn boxes say "
                                     "where the object is)")
                _forget_from_boxes(bundle, box_entries, layer, count_list, show, seed, out)
                return
            if box is not None:
                A.masks_from_boxes([{"seed": 0, "index": 0, "boxes": [box]}], size)  # validate early
            if box_entries is not None:
                A.masks_from_boxes(box_entries, size)  # validate before any work
            seg, meta = load_needed(segmenter, FORGET_NEEDS, "segmenter", bundle.device)
            classes = list(meta.get("classes") or A.ROOM_CLASSES)
            if auto not in classes:
                raise ValueError(f"unknown class {auto!r}; the segmenter's classes are {classes}")
            if box_entries is not None and any(int(e.get("seed", -1)) == seed for e in box_entries
                                               if isinstance(e, dict)):
                typer.echo(f"warning: boxes drawn on evaluation seed {seed} latents", err=True)
            seg_key = str(meta.get("weights_sha256", segmenter))
            exp = forget_experiment(bundle, seg, classes, auto, layer, count_list, n, n_fit, seed, fit_seed,
                                    box_entries, seg_key, cache_dir)
            probe, iou, rankings, result, probe_source = exp.probe, exp.iou, exp.rankings, exp.removal, exp.probe_source
            n_units = result.n_units
            out.mkdir(parents=True, exist_ok=True)
            k_show = show if show is not None else max(1, round(0.1 * n_units))
            z_show = latents(bundle.config, seed, 8, device=bundle.device)
            before, after = with_without(G, z_show, layer, probe.units_by_weight[:k_show])
            save_png(out / "with_without.png", grid(to_uint8(torch.cat([before, after])), nrow=8), scale=2)
            atomic_write_json(out / "units.json", {
                "checkpoint": str(bundle.path), "layer": layer, "class": auto, "n_units": n_units,
                "probe": {"source": probe_source, "accuracy": probe.accuracy, "n_positive": probe.n_positive,
                          "n_negative": probe.n_negative, "weights": probe.weights.tolist(),
                          "units_by_weight": probe.units_by_weight.tolist(),
                          "positive_weight_units": int((probe.weights > 0).sum())},
                "dissection": {"iou": iou.tolist(), "units_by_iou": rankings["dissection"].tolist(),
                               "quantile": A.QUANTILE},
                "optimized": {"alpha": exp.optimized.alpha.tolist(), "units_by_alpha": rankings["optimized"].tolist(),
                              "remaining_on_fit": exp.optimized.remaining, "params": A.OPTIMIZE_DEFAULTS},
                "greedy": {"units": exp.greedy.units.tolist(), "removed_on_fit": exp.greedy.removed.tolist(),
                           "other_change_on_fit": exp.greedy.other_change.tolist(),
                           "candidates": exp.greedy.candidates.tolist(), "params": A.GREEDY_DEFAULTS},
                "random": rankings["random"].tolist(), "with_without_units": k_show})
            atomic_write_json(out / "removal.json", result.to_dict() | {"fit_seed": fit_seed, "n_fit": n_fit,
                                                                         "probe_source": probe_source})
            md = result.markdown()
            if box is not None:
                ins = A.insertion_rate(bundle, seg, auto, layer, probe.units_by_weight[:k_show].tolist(), box,
                                       n_latents=min(n, 250), seed=seed, classes=classes)
                atomic_write_json(out / "insertion.json", ins)
                md += (f"\nInsertion: top {k_show} probe units set to their 99th-percentile activation inside box "
                       f"{box}: {auto} covers >= 25% of the box in {ins['after']:.1%} of {ins['n_latents']} samples "
                       f"(before: {ins['before']:.1%}).\n")
            atomic_write(out / "removal.md", lambda p: p.write_text(md))
            typer.echo(md)
            typer.echo(f"wrote {out}/with_without.png, units.json, removal.json, removal.md")
        _run(go)
