"""Fig. 5 (guided backprop of D's filters, trained vs random, with the dissection detector table)
and Fig. 6 (forgetting windows by dropping G's units, with the ACE table and curve)."""

from __future__ import annotations


from .context import FigureContext
from .report import Section

ROOMS, SEGMENTER = "rooms64", "rooms-segmenter"


def filters_section(ctx: FigureContext) -> Section:
    """Fig. 5 for the first ``filters`` units of D's last hidden layer, and network dissection of
    every D layer on ``filter_images`` training images (trained vs random init)."""
    from ..analysis.dissection import detector_markdown, detector_table, dissect_checkpoint
    from ..analysis.filters import filter_responses, probe_set, random_discriminator
    from ..plots.filters import detector_figure, fig5_figure

    c = ctx.config
    s = Section("filters", "Fig. 5 — what the discriminator's filters respond to",
                "Guided backpropagation shows that a trained discriminator's last-layer filters activate on "
                "parts of bedrooms such as beds and windows; random filters show no such structure.")
    s.skipped = ctx.missing(ROOMS)
    if s.skipped:
        return s
    bundle = ctx.bundle(ROOMS)
    if bundle.D is None:
        s.skipped = f"needs a discriminator; the {ROOMS} checkpoint has none (imported without --netD)"
        return s
    layer = bundle.D.feature_layers[-1]
    units = list(range(c.filters))
    probe = probe_set(bundle.data, c.filter_images)
    random_d = random_discriminator(bundle.config, c.seed).to(bundle.device)
    responses = [filter_responses(bundle.D, probe.images, layer, units, c.filter_top, "trained"),
                 filter_responses(random_d, probe.images, layer, units, c.filter_top, "random")]
    picture = (f"D {layer}, filters 0..{c.filters - 1}: for each filter its {c.filter_top} top-activating "
               f"training images (of {c.filter_images}) above their guided-backprop maps; left trained D, "
               "right the same architecture at random initialisation")
    if probe.masks is None:
        s.measured = f"no dissection: data {bundle.data.source!r} has no class masks."
    else:
        results = dissect_checkpoint(bundle, c.filter_images, c.seed, ctx.cache_dir)
        s.tables.append(detector_markdown(results))
        s.plots.append(("fig5_detectors.html", "detector units per class, trained vs random D",
                        detector_figure(results)))
        rows = detector_table(results)
        names = results[0].class_names
        totals = {r.label: sum(row[cn] for row in rows if row["net"] == r.label for cn in names) for r in results}
        per_class = {r.label: {cn: sum(row[cn] for row in rows if row["net"] == r.label) for cn in names}
                     for r in results}
        s.numbers = {"detectors": totals, "per_class": per_class, "iou_threshold": results[0].iou_threshold,
                     "quantile": results[0].quantile, "n_images": c.filter_images, "rows": rows}
        s.measured = (f"detector units (IoU > {results[0].iou_threshold:g} with a ground-truth class, all D layers, "
                      f"top-{100 * results[0].quantile:g}% activation threshold, {c.filter_images} images): trained "
                      f"{totals.get('trained', 0)} vs random {totals.get('random', 0)}; window detectors trained "
                      + str(per_class.get("trained", {}).get("window", 0))
                      + " vs random " + str(per_class.get("random", {}).get("window", 0)) + ".")
        trained_windows = per_class.get("trained", {}).get("window", 0)
        s.headline = (f"detectors trained {totals.get('trained', 0)} vs random {totals.get('random', 0)}; "
                      f"window detectors {trained_windows} vs {per_class.get('random', {}).get('window', 0)}")
        s.judge(totals.get("trained", 0) > totals.get("random", 0) and trained_windows > 0,
                "holds if the trained D has more detector units than the random-init D and at least one window "
                "detector")
    s.images.append((ctx.png("fig5_guided.png", fig5_figure(responses, f"Fig. 5: {picture}. Measured: {s.measured}")),
                     picture))
    return s


def removal_section(ctx: FigureContext) -> Section:
    """Fig. 6: drop the units of G's second-highest layer that the probe picks for windows; the
    ACE table and curve over ``removal_n`` latents for probe, optimized, greedy, dissection and random rankings."""
    from ..analysis import ablation as A
    from ..analysis.forgetting import forget_experiment, illustrate_removal
    from ..plots.ablation import removal_figure, with_without_figure

    c = ctx.config
    s = Section("removal", "Fig. 6 — forgetting to draw windows",
                "Dropping the generator feature maps that a logistic-regression probe associates with windows "
                "(200 maps) makes windows vanish or turn into other objects (doors, mirrors) — shown as pictures only.")
    s.skipped = ctx.missing(ROOMS, SEGMENTER)
    if s.skipped:
        return s
    bundle = ctx.bundle(ROOMS)
    seg, meta = ctx.evaluator(SEGMENTER, "segmenter", bundle.device)
    classes = list(meta.get("classes") or A.ROOM_CLASSES)
    layer = c.removal_layer or A.hidden_layers(bundle.G)[-2]
    n_units = bundle.G.layer_channels()[layer]
    counts = sorted({min(k, n_units) for k in c.removal_counts})
    exp = forget_experiment(bundle, seg, classes, c.removal_class, layer, counts, c.removal_n, c.removal_fit,
                            c.seed, c.seed + 1, None, str(meta.get("weights_sha256", SEGMENTER)), ctx.cache_dir)
    k_show = max(1, int(0.1 * n_units))  # at most 10% of the layer
    shown = illustrate_removal(bundle, seg, classes.index(c.removal_class), layer, exp.probe.units_by_weight[:k_show],
                               c.seed, c.removal_show, c.removal_scan)
    picture = (f"top row: the first {len(shown.indices)} of latents ({c.seed}, 0..{shown.scanned - 1}) in which the "
               f"segmenter finds {c.removal_class}s (>= {shown.min_share:.0%} of the pixels; {shown.with_class} of "
               f"{shown.scanned} do); bottom row: the same latents with the top {k_show} probe units of {layer} "
               f"({k_show / n_units:.0%} of its {n_units}) dropped")
    s.tables.append(exp.removal.markdown())
    s.plots.append(("fig6_ace_curve.html", "ACE and other-class change vs units dropped, per ranking",
                    removal_figure(exp.removal)))
    r = exp.removal
    best = {}
    for name in exp.rankings:
        rows = [row for row in r.rows if row["ranking"] == name and row["count"] <= 0.1 * n_units]
        if rows:
            top = max(rows, key=lambda row: row["count"])
            best[name] = {"count": top["count"], "ace": top["ace"], "max_other_change": top["max_other_change"],
                          "outside_change": top["outside_change"]}
    s.numbers = {"layer": layer, "n_units": n_units, "n_latents": r.n_latents, "probe_positive_units":
                 int((exp.probe.weights > 0).sum()), "at_most_10_percent": best, "rows": r.rows}
    parts = [f"{name} {v['ace']:.1%} (other classes ≤ {v['max_other_change']:.1%})" for name, v in best.items()]
    s.measured = (f"{c.removal_class} pixels removed with {best[next(iter(best))]['count'] if best else '?'} of "
                  f"{n_units} {layer} units (≤ 10%) over {r.n_latents} latents: " + ", ".join(parts)
                  + f"; the probe gives {int((exp.probe.weights > 0).sum())} units a positive weight.")
    probe, rand = best.get("probe"), best.get("random")
    if probe is not None and rand is not None:
        s.headline = (f"probe units remove {probe['ace']:.0%} of window pixels (random units "
                      f"{rand['ace']:.0%}), other classes <= {probe['max_other_change']:.0%}")
        s.judge(probe["ace"] >= 0.5 and probe["ace"] > rand["ace"], "holds if the probe's units (at most 10% of "
                "the layer) remove at least half the window pixels (windows 'vanish') and more than random units; "
                "partly if more than random but less than half", partly=probe["ace"] > rand["ace"])
    removed_here = 1 - shown.share_after.sum() / max(shown.share_before.sum(), 1e-12)
    s.numbers["illustration"] = {"indices": shown.indices.tolist(), "scanned": shown.scanned,
                                 "with_class": shown.with_class, "removed_share_shown": float(removed_here)}
    caption = (f"Fig. 6: {picture}. In these {len(shown.indices)} images {removed_here:.0%} of the "
               f"{c.removal_class} pixels go. Measured: {s.measured}")
    s.images.insert(0, (ctx.png("fig6_with_without.png", with_without_figure(
        shown.before, shown.after, shown.removed, [f"({c.seed}, {i})" for i in shown.indices],
        f"without {k_show} {layer} units", caption)), picture))
    return s
