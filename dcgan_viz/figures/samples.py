"""Fig. 2/3 (samples after one and five epochs) and Fig. 4 (latent walks with a smoothness measure)."""

from __future__ import annotations

import json
import shutil

import numpy as np

from .context import FigureContext
from .report import Section

ROOMS = "rooms64"
SMOOTH_WALK = 3.5  # median spike ratio of a smooth latent space (the rooms model card's goal)


def _retrain_small(ctx: FigureContext) -> tuple[str, str, str]:
    """Train a small rooms model for ``retrain_epochs`` epochs (no shipped grids to show); returns
    the epoch-1 and epoch-5 grid files and a description."""
    from ..data.loading import load_imageset
    from ..data.spec import DataSpec
    from ..models import ModelConfig
    from ..train import SAMPLES_DIR, Trainer, TrainConfig

    c = ctx.config
    spec = DataSpec.parse(f"rooms:count={c.retrain_count},test_count=16,seed={c.seed}", size=c.retrain_size)
    images = load_imageset(spec)
    model = ModelConfig(image_size=c.retrain_size, ngf=c.retrain_width, ndf=c.retrain_width, nc=3)
    run_dir = ctx.out / "retrained-rooms"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = TrainConfig(epochs=c.retrain_epochs, batch_size=64, seed=c.seed, device=ctx.device or "auto",
                      progress=False, grid_every=max(c.retrain_epochs, 1), checkpoint_every=10**9)
    Trainer(model, cfg, images.spec, images.images, run_dir).run()
    last = min(5, c.retrain_epochs)
    files = []
    for epoch in (1, last):
        name = f"fig{2 if epoch == 1 else 3}_epoch{epoch}.png"
        shutil.copyfile(run_dir / SAMPLES_DIR / f"epoch_{epoch:03d}.png", ctx.out / name)
        files.append(name)
    return files[0], files[1], (f"a small model retrained now ({c.retrain_size} px, width {c.retrain_width}, "
                                f"{c.retrain_count} rooms, {c.retrain_epochs} epochs; the checkpoint has no epoch grids)")


def samples_section(ctx: FigureContext) -> Section:
    """Fig. 2/3 from the rooms checkpoint's epoch grids (or a small model retrained now), its
    training curves and its card's quality numbers."""
    from ..plots.training import loss_figure
    from ..runlog import find_log, read_log

    s = Section("samples", "Fig. 2/3 — samples after one and five epochs",
                "Generated bedrooms after one training pass already look plausible (Fig. 2); after five epochs "
                "they are better, with signs of under-fitting in repeated noise textures (Fig. 3). Memorisation "
                "after one epoch is argued to be unlikely (small learning rate, minibatch SGD).")
    ck = ctx.path(ROOMS)
    if ck is not None and (ck / "epoch_001.png").is_file() and (ck / "epoch_005.png").is_file():
        shutil.copyfile(ck / "epoch_001.png", ctx.out / "fig2_epoch1.png")
        shutil.copyfile(ck / "epoch_005.png", ctx.out / "fig3_epoch5.png")
        first, fifth, source = "fig2_epoch1.png", "fig3_epoch5.png", f"the {ROOMS} training run's grids"
        last = 5
    else:
        first, fifth, source = _retrain_small(ctx)
        last = min(5, ctx.config.retrain_epochs)
    captions = {first: f"after 1 epoch ({source})", fifth: f"after {last} epochs ({source})"}
    if ck is not None:
        log = find_log(ck)
        if log is not None:
            s.plots.append(("fig23_training_curves.html", f"{ROOMS} losses and D outputs per step",
                            loss_figure(read_log(log), title=f"{ROOMS} training")))
        ev = ck / "evaluation.json"
        if ev.is_file():
            e = json.loads(ev.read_text())
            s.numbers = {"frechet_generated": e["frechet_generated"], "frechet_real_floor": e["frechet_real_floor"],
                         **{k: v for k, v in e.get("extra", {}).items() if k.startswith("window_fraction")}}
            s.measured = (f"{ROOMS} final: Fréchet distance {e['frechet_generated']:.1f} in the segmenter's feature "
                          f"space (real-vs-real floor {e['frechet_real_floor']:.2f}, n = {e['n']}); "
                          f"samples with a window {e['extra'].get('window_fraction_generated', float('nan')):.1%} vs "
                          f"held-out {e['extra'].get('window_fraction_heldout_truth', float('nan')):.1%} "
                          f"(from the checkpoint card's evaluation.json).")
    if not s.measured:
        s.measured = f"grids shown from {source}; no evaluation.json to quote."
    per_epoch = _frechet_by_epoch(ck) if ck is not None else {}
    if 1 in per_epoch and last in per_epoch:
        s.numbers["frechet_by_epoch"] = per_epoch
        s.headline = f"Fréchet epoch 1 {per_epoch[1]:.1f} -> epoch {last} {per_epoch[last]:.1f}"
        s.judge(per_epoch[last] < per_epoch[1], f"holds if the Fréchet distance after epoch {last} is below epoch 1's")
    else:
        s.headline = s.measured.split(" (from")[0]
        s.judge(None, "needs per-epoch Fréchet distances in the run log (runs trained with --evaluator have them)")
    for name, caption in captions.items():  # each PNG says what it is and the number measured for it
        _caption_png(ctx, name, f"Fig. {2 if name == first else 3}: samples {caption}.", s.measured)
        s.images.append((name, caption))
    return s


def _frechet_by_epoch(checkpoint) -> dict[int, float]:
    """{epoch: Fréchet distance} from the run log's per-epoch health records, when it has them."""
    from ..runlog import find_log, read_log

    log = find_log(checkpoint)
    if log is None:
        return {}
    cols = read_log(log)
    if "frechet" not in cols or "epoch" not in cols:
        return {}
    out: dict[int, float] = {}
    for epoch, value in zip(cols["epoch"], cols["frechet"]):
        if np.isfinite(value) and np.isfinite(epoch):
            out[int(epoch)] = float(value)
    return out


def _caption_png(ctx: FigureContext, name: str, title: str, caption: str) -> None:
    """Rewrite ``out/name`` (a samples grid) with a title above and the measured caption below."""
    from PIL import Image

    from ..plots.style import caption_strip, title_strip

    with Image.open(ctx.out / name) as im:
        image = np.asarray(im.convert("RGB"))
    ctx.png(name, caption_strip(title_strip(image, title), caption))


def walk_section(ctx: FigureContext) -> Section:
    """Fig. 4: a slerp walk through ``walk_points`` random latents, and the spike ratio (max /
    median per-step image change) over ``walk_trials`` walks, slerp vs lerp; for the fashion
    models also the overfit control."""
    import torch

    from ..analysis.latent import interpolate, walk_smoothness
    from ..latents import latents
    from ..plots.latent import spike_ratio_figure, step_figure, walk_figure

    c = ctx.config
    s = Section("walk", "Fig. 4 — walking the latent space",
                "Interpolating between random points gives smooth transitions (rooms gain windows, TVs turn "
                "into windows); no sharp transitions, which would be a sign of memorisation.")
    s.skipped = ctx.missing(ROOMS)
    if s.skipped:
        return s
    bundle = ctx.bundle(ROOMS)
    anchors = latents(bundle.config, c.seed, c.walk_points, device=bundle.device)
    first = walk_smoothness(bundle.G, interpolate(anchors, c.walk_steps, "slerp"))
    picture = f"slerp through latents (seed {c.seed}, 0..{c.walk_points - 1}), {c.walk_steps} steps between anchors; one row per segment"
    s.plots.append(("fig4_step_change.html", "mean |pixel change| per step of the walk above",
                    step_figure(first.step_change, c.walk_steps)))

    def ratios(name: str, method: str) -> np.ndarray:
        b = ctx.bundle(name)
        out = []
        for t in range(c.walk_trials):
            z = latents(b.config, c.seed + 1 + t, c.walk_points, device=b.device)
            with torch.no_grad():
                out.append(walk_smoothness(b.G, interpolate(z, c.walk_steps, method)).spike_ratio)
        return np.asarray(out)

    series = {f"{ROOMS} slerp": ratios(ROOMS, "slerp"), f"{ROOMS} lerp": ratios(ROOMS, "lerp")}
    for name in ("fashion32", "fashion-overfit"):
        if ctx.path(name) is not None:
            series[f"{name} slerp"] = ratios(name, "slerp")
    rows = ["| walks | n | median spike ratio | 90th percentile | max |", "|---|---|---|---|---|"]
    for name, r in series.items():
        rows.append(f"| {name} | {len(r)} | {np.median(r):.2f} | {np.percentile(r, 90):.2f} | {r.max():.2f} |")
    rows.append("")
    rows.append(f"Spike ratio = max / median per-step mean |pixel change| along a walk of {c.walk_points} points "
                f"with {c.walk_steps} steps between (latent seeds {c.seed + 1}..{c.seed + c.walk_trials}); about "
                "1-3 for a smooth walk, large when the image jumps.")
    s.tables.append("\n".join(rows))
    s.plots.append(("fig4_spike_ratios.html", "spike ratio per walk", spike_ratio_figure(series)))
    s.numbers = {name: {"median": float(np.median(r)), "p90": float(np.percentile(r, 90)), "max": float(r.max()),
                        "n": int(len(r))} for name, r in series.items()}
    med = {k: float(np.median(v)) for k, v in series.items()}
    s.measured = ("median spike ratio " + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
                  + f" over {c.walk_trials} walks each.")
    slerp = med[f"{ROOMS} slerp"]
    s.headline = f"median spike ratio {slerp:.2f} (slerp, {c.walk_trials} walks)"
    s.judge(slerp <= SMOOTH_WALK, f"holds if the median slerp spike ratio is at most {SMOOTH_WALK:g} "
            "(the model card's smoothness goal)")
    caption = (f"Fig. 4: {picture}. Bars: mean |pixel change| per step (one scale). Spike ratio (max / median "
               f"step change) of this walk {first.spike_ratio:.2f}; median over {c.walk_trials} other walks "
               f"{med[f'{ROOMS} slerp']:.2f} (slerp), {med[f'{ROOMS} lerp']:.2f} (lerp); ~1-3 is smooth.")
    s.images.insert(0, (ctx.png("fig4_walk.png", walk_figure(first.images.numpy(), c.walk_points, c.walk_steps,
                                                             first.step_change, caption)), picture))
    return s
