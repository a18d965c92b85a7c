"""Fig. 7 (vector arithmetic on faces with 3-exemplar averages and noise neighbours, and the
measured success table: 1 vs 3 exemplars vs a random direction) and Fig. 8 (the turn vector)."""

from __future__ import annotations

import numpy as np

from .context import FigureContext
from .report import Section

FACES, ATTRIBUTES = "faces64", "faces-attributes"


def _pool(ctx: FigureContext):
    from ..analysis.latent import attribute_pool

    bundle = ctx.bundle(FACES)
    model, _ = ctx.evaluator(ATTRIBUTES, "attributes", bundle.device)
    return bundle, model, attribute_pool(bundle, model, ctx.config.seed, ctx.config.arithmetic_pool)


def _percent(rate) -> str:
    """'61.2% (n=500)', or 'none (n=0)' for an empty group."""
    return f"{rate.rate:.1%} (n={rate.n})" if rate.n else "none (n=0)"


def arithmetic_section(ctx: FigureContext) -> Section:
    """Picture: smiling (no beard) - neutral (no beard) + neutral (beard), 3 exemplars each, the
    result and 8 noise neighbours; table: arithmetic_trials for k in ``arithmetic_k`` with the
    same-norm random control."""
    import torch

    from ..analysis.latent import arithmetic_trials, choose_exemplars, noise_neighbours, results_markdown
    from ..images import to_uint8
    from ..plots.latent import rate_figure
    from ..plots.style import BACKGROUND, labelled_grid
    from ..sampling import generate_from_z

    c = ctx.config
    s = Section("arithmetic", "Fig. 7 — vector arithmetic on faces",
                "Smiling woman - neutral woman + neutral man = smiling man works when each concept is the average of "
                "three exemplars' z (single exemplars were unstable); ±0.25 uniform noise gives neighbouring variations.")
    s.skipped = ctx.missing(FACES, ATTRIBUTES)
    if s.skipped:
        return s
    bundle, model, pool = _pool(ctx)
    # the exemplar rule: per concept, the first 3 of its best-read pool latents whose mean the classifier reads as it
    groups = {"smiling, no beard": choose_exemplars(bundle, model, pool, "smile", "beard", True, 0),
              "neutral, no beard": choose_exemplars(bundle, model, pool, "smile", "beard", False, 0),
              "neutral, beard": choose_exemplars(bundle, model, pool, "smile", "beard", False, 1)}
    concepts = [pool.z[g.indices].mean(0) for g in groups.values()]
    z = (concepts[0] - concepts[1] + concepts[2]).to(bundle.device)
    near = noise_neighbours(z, 8, 0.25, c.seed, (-1.0, 1.0) if bundle.config.z_dist == "uniform" else None)
    rows = [to_uint8(generate_from_z(bundle.G, torch.cat([pool.z[g.indices], pool.z[g.indices].mean(0, keepdim=True)])
                                     .to(bundle.device))).numpy() for g in groups.values()]
    result_row = to_uint8(generate_from_z(bundle.G, torch.cat([z.reshape(1, -1), near]))).numpy()
    blank = np.full_like(result_row[:1], BACKGROUND)
    rows.append(np.concatenate([blank, blank, blank, result_row]))  # the result under the means
    names = ", ".join(f"{name} = latents ({c.seed}, {sorted(int(i) for i in g.indices)})" for name, g in groups.items())
    rule = ("exemplars chosen by the written rule: per concept, the first 3 (in rank order) of its 12 best-read pool "
            "latents whose mean the attribute classifier reads as the concept; "
            + ", ".join(f"{name}: " + (f"read as meant (the {g.tried}. set in rank order)" if g.read else
                                        f"NOT read as meant (none of {g.tried} sets; the top 3 shown)")
                        for name, g in groups.items()))
    results = [arithmetic_trials(bundle, model, c.arithmetic_trials, k, "smile", c.seed, keep="beard", pool=pool)
               for k in c.arithmetic_k]
    s.tables.append(results_markdown(results))
    bars = []
    for r in results:
        for setting, label in (("arithmetic", f"k={r.k} arithmetic"), ("random", f"k={r.k} random")):
            rate = r.settings[setting]["success"]
            bars.append((label, rate.rate, rate.ci_low, rate.ci_high))
    s.plots.append(("fig7_success.html", "success rate with 95% Wilson intervals",
                    rate_figure(bars, f"smile arithmetic, {c.arithmetic_trials} trials per bar")))
    s.numbers = {f"k{r.k}": {name: {m: vars(v) for m, v in st.items()} for name, st in r.settings.items()}
                 for r in results}
    for r in results:
        s.numbers[f"k{r.k}"]["exemplar_rule"] = {name: vars(v) for name, v in r.by_means.items()}
    s.numbers["exemplars"] = {name: {"indices": g.indices.tolist(), "read": g.read, "tried": g.tried}
                              for name, g in groups.items()}
    s.measured = ("success of smiling - neutral + neutral-with-beard = smiling-with-beard over "
                  f"{c.arithmetic_trials} trials: " + "; ".join(
                      f"k={r.k}: {r.settings['arithmetic']['success'].rate:.1%} (strict, every categorical "
                      f"off-target attribute kept: {r.settings['arithmetic']['strict'].rate:.1%}) vs random direction "
                      f"{r.settings['random']['success'].rate:.1%}; trials whose concept means read as meant "
                      f"{_percent(r.by_means['chosen'])} vs the rest {_percent(r.by_means['unchosen'])}"
                      for r in results) + ".")
    by_k = {r.k: r.settings for r in results}
    if 3 in by_k:
        three, rnd = by_k[3]["arithmetic"]["success"], by_k[3]["random"]["success"]
        one = by_k[1]["arithmetic"]["success"] if 1 in by_k else None
        s.headline = (f"k=3 success {three.rate:.0%} vs random direction {rnd.rate:.0%}"
                      + (f"; k=1 {one.rate:.0%}" if one else ""))
        above = three.ci_low > rnd.ci_high
        s.judge(above and (one is None or three.rate > one.rate),
                "holds if k=3 succeeds more often than a random direction (95% intervals apart) and more often "
                "than k=1; partly if only the first", partly=above)
    caption = f"Fig. 7: {rule}. Last row: the arithmetic's result and 8 noise neighbours (±0.25). Measured: {s.measured}"
    picture = labelled_grid(rows, [*groups, "smiling - neutral + neutral with beard"],
                            ["exemplar 1", "exemplar 2", "exemplar 3", "mean / result",
                             *[f"noise {i}" for i in range(1, len(result_row))]],
                            caption)
    s.images.insert(0, (ctx.png("fig7_arithmetic.png", picture),
                        "rows 1-3: three exemplars and (4th image) their average for each concept — " + names
                        + "; last row: smiling - neutral + neutral-with-beard, then 8 noise neighbours (±0.25); " + rule))
    return s


def turn_section(ctx: FigureContext) -> Section:
    """Picture: faces moved along the turn vector (4 right-looking minus 4 left-looking); table:
    turn_trials (does the predicted yaw increase?) against a same-norm random direction."""
    import torch

    from ..analysis.latent import mean_difference_direction, results_markdown, turn_trials, walk
    from ..plots.style import labelled_grid

    c = ctx.config
    s = Section("turn", "Fig. 8 — the turn vector",
                "A 'turn' vector from four left-looking minus four right-looking faces, added to other faces, "
                "rotates them — shown as pictures only.")
    s.skipped = ctx.missing(FACES, ATTRIBUTES)
    if s.skipped:
        return s
    bundle, model, pool = _pool(ctx)
    yaw = pool.column("yaw").numpy()
    order = np.argsort(yaw, kind="stable")
    left, right = order[: c.turn_k].copy(), order[::-1][: c.turn_k].copy()
    direction = mean_difference_direction(pool.z[right], pool.z[left])
    alphas = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
    faces = torch.as_tensor([i for i in range(len(pool.z)) if i not in set(left) | set(right)][:6])
    rows = [walk(bundle.G, pool.z[int(i)].to(bundle.device), direction.to(bundle.device), alphas) for i in faces]
    picture = (f"six faces (pool latents seed {c.seed}, indices {faces.tolist()}) moved along the turn vector "
               f"(mean of the {c.turn_k} most right-looking minus the {c.turn_k} most left-looking pool faces) "
               f"by α = {', '.join(f'{a:g}' for a in alphas)}")
    result = turn_trials(bundle, model, c.arithmetic_trials, c.turn_k, c.seed, pool=pool)
    s.tables.append(results_markdown([], result))
    s.numbers = result.to_dict()
    s.measured = (f"predicted yaw increases in {result.direction.rate:.1%} of {result.direction.n} trials with the "
                  f"turn vector vs {result.control.rate:.1%} with a random direction of the same norm "
                  f"(mean Δyaw {result.mean_delta_direction:+.3f} vs {result.mean_delta_control:+.3f}).")
    s.headline = f"yaw increases in {result.direction.rate:.0%} vs {result.control.rate:.0%} (random direction)"
    s.judge(result.direction.ci_low > result.control.ci_high,
            "holds if the turn vector raises the predicted yaw more often than a random direction (95% intervals apart)")
    figure = labelled_grid([r.numpy() for r in rows], [f"face ({c.seed}, {int(i)})" for i in faces],
                           [f"α = {a:g}" for a in alphas], f"Fig. 8: {picture}. Measured: {s.measured}",
                           label_width=110)
    s.images.append((ctx.png("fig8_turn.png", figure), picture))
    return s
