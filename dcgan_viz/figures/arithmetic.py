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


def _examples(pool, attribute: str, keep: str, want_on: bool, keep_value: int, k: int) -> np.ndarray:
    """Indices of the ``k`` pool latents read most clearly as (attribute on/off, keep == value)."""
    target, kept = pool.column(attribute).numpy(), pool.column(keep).numpy().round()
    idx = np.flatnonzero(kept == keep_value)
    order = np.argsort(-target[idx] if want_on else target[idx], kind="stable")
    return idx[order[:k]]


def arithmetic_section(ctx: FigureContext) -> Section:
    """Picture: smiling (no beard) - neutral (no beard) + neutral (beard), 3 exemplars each, the
    result and 8 noise neighbours; table: arithmetic_trials for k in ``arithmetic_k`` with the
    same-norm random control."""
    import torch

    from ..analysis.latent import arithmetic_trials, noise_neighbours, results_markdown
    from ..images import to_uint8
    from ..plots.latent import rate_figure, rows_grid
    from ..sampling import generate_from_z

    c = ctx.config
    s = Section("arithmetic", "Fig. 7 — vector arithmetic on faces",
                "Smiling woman - neutral woman + neutral man = smiling man works when each concept is the average of "
                "three exemplars' z (single exemplars were unstable); ±0.25 uniform noise gives neighbouring variations.")
    s.skipped = ctx.missing(FACES, ATTRIBUTES)
    if s.skipped:
        return s
    bundle, model, pool = _pool(ctx)
    groups = {"smiling, no beard": _examples(pool, "smile", "beard", True, 0, 3),
              "neutral, no beard": _examples(pool, "smile", "beard", False, 0, 3),
              "neutral, beard": _examples(pool, "smile", "beard", False, 1, 3)}
    concepts = [pool.z[idx].mean(0) for idx in groups.values()]
    z = (concepts[0] - concepts[1] + concepts[2]).to(bundle.device)
    near = noise_neighbours(z, 8, 0.25, c.seed, (-1.0, 1.0) if bundle.config.z_dist == "uniform" else None)
    rows = [to_uint8(generate_from_z(bundle.G, torch.cat([pool.z[idx], pool.z[idx].mean(0, keepdim=True)])
                                     .to(bundle.device))).numpy() for idx in groups.values()]
    rows.append(to_uint8(generate_from_z(bundle.G, torch.cat([z.reshape(1, -1), near]))).numpy())
    names = ", ".join(f"{name} = latents ({c.seed}, {sorted(int(i) for i in idx)})" for name, idx in groups.items())
    s.images.append((ctx.png("fig7_arithmetic.png", rows_grid(rows)),
                     "rows 1-3: three exemplars and (4th image) their average for each concept — " + names
                     + "; last row: smiling - neutral + neutral-with-beard, then 8 noise neighbours (±0.25)"))
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
    s.measured = ("success of smiling - neutral + neutral-with-beard = smiling-with-beard over "
                  f"{c.arithmetic_trials} trials: " + "; ".join(
                      f"k={r.k}: {r.settings['arithmetic']['success'].rate:.1%} (strict, every categorical "
                      f"off-target attribute kept: {r.settings['arithmetic']['strict'].rate:.1%}) vs random direction "
                      f"{r.settings['random']['success'].rate:.1%}" for r in results) + ".")
    return s


def turn_section(ctx: FigureContext) -> Section:
    """Picture: faces moved along the turn vector (4 right-looking minus 4 left-looking); table:
    turn_trials (does the predicted yaw increase?) against a same-norm random direction."""
    import torch

    from ..analysis.latent import mean_difference_direction, results_markdown, turn_trials, walk
    from ..images import grid

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
    s.images.append((ctx.png("fig8_turn.png", grid(torch.cat(rows), nrow=len(alphas))),
                     f"six faces (pool latents seed {c.seed}, indices {faces.tolist()}) moved along the turn vector "
                     f"(mean of the {c.turn_k} most right-looking minus the {c.turn_k} most left-looking pool faces) "
                     f"by α = {', '.join(f'{a:g}' for a in alphas)}"))
    result = turn_trials(bundle, model, c.arithmetic_trials, c.turn_k, c.seed, pool=pool)
    s.tables.append(results_markdown([], result))
    s.numbers = result.to_dict()
    s.measured = (f"predicted yaw increases in {result.direction.rate:.1%} of {result.direction.n} trials with the "
                  f"turn vector vs {result.control.rate:.1%} with a random direction of the same norm "
                  f"(mean Δyaw {result.mean_delta_direction:+.3f} vs {result.mean_delta_control:+.3f}).")
    return s
