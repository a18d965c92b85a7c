"""Memorization (closest pairs, C_T, latent recovery; the normal and the overfit checkpoint), the
dedup control on planted duplicates, and the representation table (L2-SVM) with its UMAP."""

from __future__ import annotations

import numpy as np

from .context import FigureContext
from .report import Section

FASHION, OVERFIT, CLASSIFIER = "fashion32", "fashion-overfit", "fashion-classifier"


def memorization_section(ctx: FigureContext) -> Section:
    """Data-copying test (C_T), NN-distance ratio, near-copy fraction and latent recovery for
    the normal and the overfit Fashion-MNIST checkpoints, with each one's closest pairs."""
    from ..analysis.memorization import measure_checkpoint
    from ..plots.memorization import closest_pairs_figure, ct_cells_figure

    c = ctx.config
    s = Section("memorization", "Memorization — do the models copy their training set?",
                "Radford et al. argue their models do not memorise (and de-duplicated the training set); Meehan et "
                "al. 2020 (C_T) and Webster et al. 2019 (latent recovery) later made this measurable.")
    names = [n for n in (FASHION, OVERFIT) if ctx.path(n) is not None]
    if not names:
        s.skipped = f"no {FASHION} or {OVERFIT} checkpoint under {ctx.checkpoints}"
        return s
    rows = ["| checkpoint | verdict | pixel C_T | min cell z | NN ratio gen/held-out | near-copy fraction "
            "| latent recovery KS (p) | train / held-out MSE |", "|---|---|---|---|---|---|---|---|"]
    for name in names:
        bundle = ctx.bundle(name)
        clf, key = None, ""
        if ctx.path(CLASSIFIER) is not None:
            clf, meta = ctx.evaluator(CLASSIFIER, "classifier", bundle.device)
            key = str(meta.get("weights_sha256", CLASSIFIER))
        report, gen, train = measure_checkpoint(bundle, c.memorization_n, c.seed, c.memorization_test, clf, key,
                                                "auto", ctx.cache_dir, recovery_n=c.recovery_n,
                                                recovery_steps=c.recovery_steps, train_limit=c.memorization_train_limit)
        summary = report.summary()
        px = summary["spaces"]["pixel"]
        lr = summary.get("latent_recovery")
        rec = f"{lr['ks_statistic']:.3f} ({lr['ks_pvalue']:.2g})" if lr else "—"
        mse = f"{lr['mean_train_error']:.4f} / {lr['mean_test_error']:.4f}" if lr else "—"
        rows.append(f"| {name} | {report.verdict} | {px['ct']:.2f} | {px['min_cell_z']:.2f} | {px['nn_ratio']:.3f} | "
                    f"{px['near_copy_fraction']:.4f} | {rec} | {mse} |")
        what = (f"{name}: the closest generated/train pairs in pixel space (generated row above its nearest "
                f"training image), of {c.memorization_n} samples")
        caption = (f"{what}. Measured: verdict {report.verdict}, pixel C_T {px['ct']:.2f} (< -3: copying), NN ratio "
                   f"generated/held-out {px['nn_ratio']:.3f}, near-copy fraction {px['near_copy_fraction']:.4f}.")
        s.images.append((ctx.png(f"memorization_{name}_closest.png",
                                 closest_pairs_figure(report.closest, gen, train, caption)), what))
        s.plots.append((f"memorization_{name}_cells.html", f"{name}: per-cell z-scores of the C_T test",
                        ct_cells_figure(report.spaces["pixel"].copying, f"C_T cells, {name} (pixel space)")))
        s.numbers[name] = summary
    limit = "" if c.memorization_train_limit is None else f" Only the first {c.memorization_train_limit} training images."
    rows += ["", f"{c.memorization_n} generated samples (latents seed {c.seed}) vs {c.memorization_test} held-out "
             "(test split) images; C_T < -3 means samples sit closer to the training set than held-out data "
             "(copying); NN ratio < 1 likewise. Spaces other than pixels are in results.json." + limit]
    s.tables.append("\n".join(rows))
    s.measured = "; ".join(f"{n}: {s.numbers[n]['verdict']}, pixel C_T {s.numbers[n]['spaces']['pixel']['ct']:.2f}"
                           for n in names) + "."
    s.headline = s.measured
    copying = {n: bool(s.numbers[n]["copying"] or s.numbers[n]["local_copying"]) for n in names}
    s.judge(None if FASHION not in copying or OVERFIT not in copying else (not copying[FASHION] and copying[OVERFIT]),
            f"holds if {FASHION} is not found copying (globally or locally) while the deliberately overfit "
            f"{OVERFIT} control is")
    return s


def dedup_section(ctx: FigureContext) -> Section:
    """Precision/recall of the two hashes on planted altered copies in the Fashion-MNIST training set."""
    from ..analysis.dedup import find_duplicates, pair_scores, plant_duplicates
    from ..data.loading import load_imageset
    from ..data.spec import DataSpec
    from ..plots.memorization import dedup_groups_figure

    c = ctx.config
    s = Section("dedup", "De-duplication — semantic hashing vs a perceptual hash",
                "The paper removed ~275,000 near duplicates from 3M images with a semantic hash (an autoencoder's "
                "binarised code); hash collisions had an estimated false-positive rate under 1 in 100.")
    try:
        images = load_imageset(DataSpec.parse(f"fashion-mnist:count={c.dedup_images}", size=32)).images
    except (FileNotFoundError, ValueError) as exc:
        s.skipped = f"Fashion-MNIST is not available offline ({str(exc).splitlines()[0]})"
        return s
    planted, truth, _ = plant_duplicates(np.asarray(images), c.dedup_plant, c.seed)
    rows = ["| hash | planted copies | predicted pairs | precision | precision (copies only) | recall |",
            "|---|---|---|---|---|---|"]
    for method in ("phash", "semantic"):
        result = find_duplicates(planted, method, seed=c.seed)
        score = pair_scores(result, truth)
        s.numbers[method] = score
        rows.append(f"| {method} | {score['planted_pairs']} | {score['predicted_pairs']} | {score['precision']:.4f} | "
                    f"{score['precision_planted']:.4f} | {score['recall']:.4f} |")
        if method == "semantic":
            what = "largest near-duplicate groups found by the semantic hash (one row per group)"
            picture = dedup_groups_figure(result, planted, f"{what}, among {len(planted)} Fashion-MNIST images with "
                                          f"{c.dedup_plant} planted copies. Measured: precision "
                                          f"{score['precision_planted']:.3f} on pairs with a planted copy, recall "
                                          f"{score['recall']:.3f}.")
            if picture is not None:
                s.images.append((ctx.png("dedup_groups.png", picture), what))
    rows += ["", f"{c.dedup_plant} altered copies (1-2 px shifts, JPEG quality 50-90, recolouring) planted among the "
             f"first {len(images)} Fashion-MNIST training images; Hamming radius 4 of 64 bits (phash) and 8 of 128 "
             "(semantic, autoencoder trained 3000 steps), shift probes ±2 px, pixel verification "
             "0.08. Precision counts every merged pair, including natural near duplicates of the data set (the same product "
             "photographed twice or in another colour: they pass the same pixel check); precision (copies only) leaves "
             "out pairs of two original images, which the planted control cannot judge."]
    s.tables.append("\n".join(rows))
    s.measured = "; ".join(f"{m}: precision {v['precision_planted']:.3f} on pairs with a planted copy, recall "
                           f"{v['recall']:.3f} ({v['original_pairs']} natural near-duplicate pairs among the originals; "
                           f"precision counting them as errors {v['precision']:.3f})" for m, v in s.numbers.items())
    sem = s.numbers.get("semantic")
    if sem is not None:
        s.headline = f"semantic hash: precision {sem['precision_planted']:.3f}, recall {sem['recall']:.3f}"
        s.judge(sem["precision_planted"] >= 0.99, "holds if fewer than 1 in 100 pairs the semantic hash reports "
                "(with a planted copy) are false")
    return s


def representation_section(ctx: FigureContext) -> Section:
    """The L2-SVM table (trained D vs random D vs pixels; all labels and few labels) and the UMAP."""
    from ..analysis.representation import evaluate_representations, umap_embedding
    from ..data.loading import load_imageset
    from ..data.spec import DataSpec
    from ..plots.representation import accuracy_figure, umap_figure

    c = ctx.config
    s = Section("representation", "Tables 1-2 — discriminator features as a representation",
                "A linear L2-SVM on the trained discriminator's max-pooled (4x4) features from all layers is a strong "
                "classifier (CIFAR-10 82.8%; SVHN 22.5% error with 1,000 labels), better than the baselines.")
    s.skipped = ctx.missing(FASHION)
    if s.skipped:
        return s
    bundle = ctx.bundle(FASHION)
    if bundle.D is None:
        s.skipped = f"needs a discriminator; the {FASHION} checkpoint has none (imported without --netD)"
        return s
    spec = DataSpec.parse("fashion-mnist", size=bundle.config.image_size, channels=bundle.config.nc)
    try:
        train = load_imageset(DataSpec.from_dict(spec.to_dict() | {"count": c.svm_train, "split": "train"}))
        test = load_imageset(DataSpec.from_dict(spec.to_dict() | {"count": c.svm_test, "split": "test"}))
    except (FileNotFoundError, ValueError) as exc:
        s.skipped = f"Fashion-MNIST is not available offline ({str(exc).splitlines()[0]})"
        return s
    result = evaluate_representations(bundle, train, test, (None, c.svm_labels), c.seed, c.seed, ctx.cache_dir)
    s.tables.append(result.markdown())
    s.plots.append(("representation_accuracy.html", "test accuracy per feature set", accuracy_figure(result)))
    if c.umap_real > 0:
        emb = umap_embedding(bundle, test, c.umap_real, c.umap_generated, c.seed, c.seed, cache_dir=ctx.cache_dir)
        s.plots.append(("representation_umap.html", f"UMAP of D features: {c.umap_real} test images by label, "
                        f"{c.umap_generated} generated in grey", umap_figure(emb)))
    s.numbers = {"scores": result.scores}
    by = {(r["features"], r["n_train"]): r["accuracy"] for r in result.scores}
    parts = []
    for n in sorted({r["n_train"] for r in result.scores}, reverse=True):
        parts.append(f"{n} labels: " + ", ".join(f"{f} {100 * by[(f, n)]:.1f}%" for f in ("trained D", "random D", "pixels")
                                                  if (f, n) in by))
    s.measured = "Fashion-MNIST test accuracy — " + "; ".join(parts) + " (Zalando's linear-SVM pixel reference: 83.6%)."
    s.headline = parts[0] if parts else s.measured
    full = max(r["n_train"] for r in result.scores)
    if all((f, full) in by for f in ("trained D", "random D", "pixels")):
        s.judge(by[("trained D", full)] > max(by[("random D", full)], by[("pixels", full)]),
                "holds if the trained D's features beat both baselines (random-init D, pixels) with all labels")
    return s
