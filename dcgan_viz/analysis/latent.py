"""Walking the latent space and vector arithmetic on it (Radford et al. 2015, section 6.1 and 6.3).

Pure functions returning result dataclasses; no plotting, no module state.

* Interpolation: ``lerp`` / ``slerp`` (White 2016), ``interpolate`` through K anchor points and
  ``walk_smoothness`` (per-step pixel change; a sharp transition shows up as a large
  ``spike_ratio`` = max / median step change).
* Concept arithmetic: ``parse_expression`` (a tiny ``a - b + c`` grammar, never ``eval``),
  ``evaluate_expression``, ``concept_vector`` (mean of exemplar latents named by (seed, index)),
  ``noise_neighbours``.
* Directions: ``mean_difference_direction``, ``svm_direction`` (InterFaceGAN: the unit normal of
  a linear SVM separating latents by a label) and ``walk`` along one.
* Measurement with an attribute classifier: ``attribute_pool`` (a pool of named latents and the
  classifier's reading of their images, cached for one call), ``arithmetic_trials`` (smiling
  no-beard - neutral no-beard + neutral beard = smiling beard?, vs a same-norm random direction)
  and ``turn_trials`` (does the "turn" vector raise the predicted yaw, vs a random direction).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from dcgan_viz.images import to_uint8
from dcgan_viz.latents import latents
from dcgan_viz.models import ModelConfig
from dcgan_viz.sampling import generate_from_z

METHODS = ("lerp", "slerp")


# ----------------------------------------------------------------------------- interpolation

def _t_like(t: float | Sequence[float] | torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """t as a tensor that broadcasts against (nz,) / (B, nz): a 1-D t of length T becomes (T, 1)."""
    t = torch.as_tensor(t, dtype=ref.dtype, device=ref.device)
    return t.unsqueeze(-1) if t.dim() == 1 else t


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b for a, b of shape (nz,) or (B, nz); a 1-D t of length T gives (T, nz)."""
    t = _t_like(t, a)
    return (1.0 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | Sequence[float] | torch.Tensor,
          eps: float = 1e-4) -> torch.Tensor:
    """Spherical interpolation (White 2016, "Sampling generative networks"):
    sin((1-t) w)/sin w * u + sin(t w)/sin w * v on the unit directions u, v of a, b (w the angle
    between them), scaled by the linearly interpolated norm (1-t)|a| + t|b|.

    For equal norms this is White's formula exactly; for unequal norms it keeps every point's
    norm between the endpoints' norms (White's formula applied to a, b directly dips below both
    for obtuse angles). Falls back to ``lerp`` where the vectors are nearly parallel (sin w < eps), per row.
    """
    t = _t_like(t, a)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    u, v = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    omega = torch.arccos((u * v).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    safe = so.abs() >= eps
    so_safe = torch.where(safe, so, torch.ones_like(so))
    direction = torch.sin((1.0 - t) * omega) / so_safe * u + torch.sin(t * omega) / so_safe * v
    out = direction * ((1.0 - t) * na + t * nb)
    return torch.where(safe, out, lerp(a, b, t))


def interpolate(z_points: torch.Tensor, steps_between: int, method: str = "slerp") -> torch.Tensor:
    """Path through K anchor latents (K, nz) with ``steps_between`` intermediate points per segment
    -> (M, nz), M = (K - 1) * (steps_between + 1) + 1, anchors included."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if z_points.dim() != 2 or len(z_points) < 2:
        raise ValueError(f"need at least 2 anchor latents (K, nz), got shape {tuple(z_points.shape)}")
    if steps_between < 0:
        raise ValueError(f"steps_between must be >= 0, got {steps_between}")
    fn = slerp if method == "slerp" else lerp
    ts = torch.arange(steps_between + 1, dtype=z_points.dtype, device=z_points.device) / (steps_between + 1)
    parts = [fn(z_points[i], z_points[i + 1], ts) for i in range(len(z_points) - 1)]
    return torch.cat(parts + [z_points[-1:]])


@dataclass
class WalkResult:
    """images uint8 (M, H, W, C); step_change (M-1,) mean |pixel change| per step in [0, 1];
    spike_ratio = max / median step change (about 1-3 for a smooth walk; a sharp jump is large)."""

    images: torch.Tensor
    step_change: np.ndarray
    spike_ratio: float

    def summary(self) -> dict:
        s = self.step_change
        return {"n_images": int(len(self.images)), "mean_step_change": float(s.mean()) if len(s) else 0.0,
                "median_step_change": float(np.median(s)) if len(s) else 0.0,
                "max_step_change": float(s.max()) if len(s) else 0.0,
                "max_step": int(s.argmax()) if len(s) else -1, "spike_ratio": float(self.spike_ratio)}


def walk_smoothness(G: torch.nn.Module, zs: torch.Tensor, batch_size: int = 256) -> WalkResult:
    """Generate a walk (M, nz) and measure the image change between consecutive steps."""
    images = to_uint8(generate_from_z(G, zs, batch_size))
    x = images.float() / 255.0
    step = (x[1:] - x[:-1]).abs().mean(dim=(1, 2, 3)).numpy().astype(np.float64)
    if len(step) == 0:
        return WalkResult(images, step, 0.0)
    med = float(np.median(step))
    ratio = float(step.max() / med) if med > 0 else (0.0 if step.max() == 0 else math.inf)
    return WalkResult(images, step, ratio)


# ----------------------------------------------------------------------------- concept arithmetic

_TOKEN = re.compile(r"\s*(?:(?P<op>[+-])|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))")


def parse_expression(text: str) -> list[tuple[int, str]]:
    """``"smiling_woman - neutral_woman + neutral_man"`` -> [(1, "smiling_woman"), (-1, ...), (1, ...)].

    Grammar: [+|-] name ((+|-) name)*, names are ASCII identifiers. Never evaluated as Python;
    anything else raises a one-line ``ValueError``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty expression: expected names joined by + and -, e.g. 'a - b + c'")
    terms: list[tuple[int, str]] = []
    sign: int | None = None
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing whitespace, removed above
            break
        col = m.start(m.lastgroup)
        if m.group("bad") is not None:
            raise ValueError(f"bad expression {text!r}: unexpected {m.group('bad')!r} at column {col}; "
                             "only names joined by + and - are allowed")
        if m.group("op") is not None:
            if sign is not None:
                raise ValueError(f"bad expression {text!r}: two operators in a row at column {col}")
            sign = 1 if m.group("op") == "+" else -1
        else:
            if terms and sign is None:
                raise ValueError(f"bad expression {text!r}: missing + or - before {m.group('name')!r} at column {col}")
            terms.append((sign if sign is not None else 1, m.group("name")))
            sign = None
        pos = m.end()
    if sign is not None:
        raise ValueError(f"bad expression {text!r}: ends with an operator")
    if not terms:
        raise ValueError(f"bad expression {text!r}: no names")
    return terms


def evaluate_expression(expr: str | list[tuple[int, str]], concepts: dict[str, torch.Tensor]) -> torch.Tensor:
    """Signed sum of concept vectors (nz,) named in ``expr`` (a string or a parsed term list)."""
    terms = parse_expression(expr) if isinstance(expr, str) else list(expr)
    missing = [name for _, name in terms if name not in concepts]
    if missing:
        raise ValueError(f"unknown concept {missing[0]!r}; known: {', '.join(sorted(concepts)) or '(none)'}")
    shapes = {name: tuple(concepts[name].shape) for _, name in terms}
    first = terms[0][1]
    for _, name in terms:
        if shapes[name] != shapes[first]:
            raise ValueError(f"latent size mismatch: concept {first!r} has shape {shapes[first]}, "
                             f"{name!r} has {shapes[name]}")
    out = torch.zeros_like(concepts[first])
    for sign, name in terms:
        out = out + sign * concepts[name]
    return out


def concept_vector(cfg: ModelConfig, exemplars: Sequence[tuple[int, int]],
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Mean (nz,) of the exemplar latents, each named by (seed, index)."""
    if not exemplars:
        raise ValueError("a concept needs at least one exemplar (seed, index)")
    zs = torch.cat([latents(cfg, int(s), [int(i)], device=device) for s, i in exemplars])
    return zs.mean(0)


def noise_neighbours(z: torch.Tensor, n: int, scale: float = 0.25, seed: int = 0,
                     clamp: tuple[float, float] | None = (-1.0, 1.0)) -> torch.Tensor:
    """n latents z + uniform(-scale, scale) noise (n, nz) from a seeded local generator,
    clamped to the prior's range (uniform[-1, 1] by default; ``clamp=None`` for a normal prior)."""
    z = z.reshape(-1)
    g = torch.Generator().manual_seed(int(seed))
    noise = (torch.rand(n, z.numel(), generator=g, dtype=torch.float32) * 2.0 - 1.0) * scale
    out = z.detach().float().cpu().unsqueeze(0) + noise
    if clamp is not None:
        out = out.clamp(*clamp)
    return out.to(device=z.device, dtype=z.dtype)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_concept(text: str) -> tuple[str, list[tuple[int | str, int]]]:
    """``"smile=0:12,0:40,inv/latents.npy:2"`` -> ("smile", [(0, 12), (0, 40), ("inv/latents.npy", 2)]).

    Each exemplar is ``seed:index`` (latent ``index`` of ``seed``) or ``FILE.npy:row`` (row of an
    (N, nz) array, e.g. ``latents.npy`` from ``dcgan-viz invert``). Malformed text raises a
    one-line ``ValueError``.
    """
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"bad concept {text!r}: expected NAME=seed:index,seed:index,...")
    name, _, rest = text.partition("=")
    name = name.strip()
    if not _NAME.match(name):
        raise ValueError(f"bad concept {text!r}: the name {name!r} must be letters, digits and _ "
                         "(not starting with a digit)")
    exemplars: list[tuple[int | str, int]] = []
    for part in rest.split(","):
        part = part.strip()
        head, sep, tail = part.rpartition(":")
        if not sep or not head or not tail.strip().isdigit():
            raise ValueError(f"bad exemplar {part!r} in concept {name!r}: expected seed:index or FILE.npy:row "
                             "with non-negative integers")
        head = head.strip()
        if head.lower().endswith(".npy"):
            exemplars.append((head, int(tail)))
        elif head.isdigit():
            exemplars.append((int(head), int(tail)))
        else:
            raise ValueError(f"bad exemplar {part!r} in concept {name!r}: expected seed:index or FILE.npy:row "
                             "with non-negative integers")
    return name, exemplars


def exemplar_latents(cfg: ModelConfig, exemplars: Sequence[tuple[int | str, int]],
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Latents (k, nz) of exemplars named by (seed, index) or (path to an (N, nz) .npy, row).

    A file whose latents are not ``cfg.nz`` wide, or a row out of range, raises a ``ValueError``."""
    if not exemplars:
        raise ValueError("a concept needs at least one exemplar (seed, index)")
    rows, files = [], {}
    for source, index in exemplars:
        if isinstance(source, str):
            if source not in files:
                try:
                    arr = np.load(source, allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise ValueError(f"{source}: not a readable .npy latents file ({type(exc).__name__})") from None
                if arr.ndim == 1:
                    arr = arr[None]
                if arr.ndim != 2 or arr.shape[1] != cfg.nz:
                    raise ValueError(f"latent size mismatch: {source} holds latents of shape {tuple(arr.shape)}, "
                                     f"the checkpoint needs (N, {cfg.nz})")
                files[source] = torch.as_tensor(arr, dtype=torch.float32)
            arr_t = files[source]
            if not 0 <= int(index) < len(arr_t):
                raise ValueError(f"{source}: row {index} out of range (it has {len(arr_t)} latents)")
            rows.append(arr_t[int(index)].to(device))
        else:
            rows.append(latents(cfg, int(source), [int(index)], device=device)[0])
    return torch.stack(rows)


def prior_norm(nz: int, z_dist: str = "uniform") -> float:
    """Root of E|z|^2 under the prior: sqrt(nz / 3) for uniform[-1, 1], sqrt(nz) for N(0, I).
    Samples concentrate near this norm (the 'shell'); a mean of k latents has norm ~ 1/sqrt(k) of it."""
    if z_dist == "uniform":
        return math.sqrt(nz / 3.0)
    if z_dist == "normal":
        return math.sqrt(float(nz))
    raise ValueError(f"unknown z_dist {z_dist!r}")


def rescale_to_prior(z: torch.Tensor, z_dist: str = "uniform") -> torch.Tensor:
    """Rows of z (..., nz) rescaled to the prior's expected norm ``prior_norm`` (direction kept)."""
    target = prior_norm(z.shape[-1], z_dist)
    return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12) * target


# ----------------------------------------------------------------------------- directions

def mean_difference_direction(z_pos: torch.Tensor, z_neg: torch.Tensor) -> torch.Tensor:
    """mean(z_pos) - mean(z_neg), (nz,) (not normalised: the 'turn vector' of section 6.3)."""
    return z_pos.float().mean(0) - z_neg.float().mean(0)


def svm_direction(z: torch.Tensor, labels: torch.Tensor | np.ndarray, C: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Unit normal (nz,) of a linear SVM separating latents by a binary label (InterFaceGAN,
    Shen et al. 2020), pointing towards label 1."""
    svm = _fit_svm(z, labels, C, seed)
    w = torch.as_tensor(svm.coef_[0], dtype=torch.float32)
    return (w / w.norm().clamp_min(1e-12)).to(z.device)


def _fit_svm(z: torch.Tensor, labels: torch.Tensor | np.ndarray, C: float = 1.0, seed: int = 0):
    """A fitted sklearn LinearSVC on latents (N, nz) and 0/1 labels."""
    from sklearn.svm import LinearSVC

    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(int).reshape(-1)
    if len(y) != len(z) or set(np.unique(y)) != {0, 1}:
        raise ValueError("svm_direction needs one 0/1 label per latent, with both labels present")
    svm = LinearSVC(C=C, random_state=seed, max_iter=20000)
    svm.fit(z.detach().float().cpu().numpy(), y)
    return svm


def walk(G: torch.nn.Module, z: torch.Tensor, direction: torch.Tensor, alphas: Sequence[float]) -> torch.Tensor:
    """uint8 images (len(alphas), H, W, C) of z + alpha * direction."""
    a = torch.as_tensor(list(alphas), dtype=z.dtype, device=z.device).unsqueeze(-1)
    zs = z.reshape(1, -1) + a * direction.reshape(1, -1).to(z)
    return to_uint8(generate_from_z(G, zs))


# ----------------------------------------------------------------------------- measurement

@dataclass
class Rate:
    """successes / n with a Wilson 95% interval."""

    successes: int
    n: int
    rate: float
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, hits: np.ndarray | Sequence[bool]) -> "Rate":
        hits = np.asarray(hits, dtype=bool)
        k, n = int(hits.sum()), int(hits.size)
        lo, hi = wilson_interval(k, n)
        return cls(k, n, k / n if n else float("nan"), lo, hi)

    def __str__(self) -> str:
        return f"{self.rate:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] ({self.successes}/{self.n})"


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class AttributePool:
    """Latents (seed, 0..size-1) and the classifier's reading of their images (size, A), CPU."""

    seed: int
    z: torch.Tensor
    attributes: torch.Tensor
    names: tuple[str, ...]

    def column(self, name: str) -> torch.Tensor:
        if name not in self.names:
            raise ValueError(f"unknown attribute {name!r}; the classifier reads {', '.join(self.names)}")
        return self.attributes[:, self.names.index(name)]


def _read(bundle, classifier, z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Attributes (N, A) on the CPU of the images of z, generated and classified in batches."""
    from dcgan_viz.evaluation import predict_attributes

    out = []
    for i in range(0, len(z), batch_size):
        imgs = generate_from_z(bundle.G, z[i : i + batch_size].to(bundle.device), batch_size)
        out.append(predict_attributes(classifier, imgs, batch_size).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(classifier.attribute_names))


def attribute_pool(bundle, classifier, seed: int = 0, size: int = 4000, batch_size: int = 500) -> AttributePool:
    """Generate latents (seed, 0..size-1), classify their images once; reused by the trials."""
    z = latents(bundle.config, seed, size).cpu()
    return AttributePool(seed, z, _read(bundle, classifier, z, batch_size), tuple(classifier.attribute_names))


def _random_like(d: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random directions (N, nz) with the same norms as the rows of d."""
    r = torch.randn(d.shape, generator=g)
    return r / r.norm(dim=1, keepdim=True) * d.norm(dim=1, keepdim=True)


def _pick(rng: np.random.Generator, idx: np.ndarray, k: int) -> np.ndarray:
    return rng.choice(idx, size=k, replace=False)


@dataclass
class ArithmeticResult:
    """Concept arithmetic ``expression`` over exemplar groups, k exemplars per concept.

    Groups (from the pool): a_pos = target on & keep=a_value, a_neg = target off & keep=a_value,
    b_neg = target off & keep=b_value, b_pos = target on & keep=b_value. Success = the result's
    image has the target on (> success_threshold) and the kept attribute == b_value.
    settings: "arithmetic" (expression), "random" (b_neg + random direction of the same norm as
    a_pos - a_neg) and "b_neg" (b_neg alone: the base rate); each {"success","target","kept","strict"}.
    strict: the target flips (off in the image of the trial's b_neg concept, on in the result) and
    every categorical off-target attribute (``keep`` included) keeps its class in that image: "the
    target flips, off-target attributes stay", all of them (0 for b_neg alone by construction).
    off_target_kept: per setting, per categorical off-target attribute, the fraction of trials whose
    result has the class of the b_neg image; off_target_change: per setting, per continuous one, the
    mean absolute change from the b_neg image (the classifier's units).
    rescaled: every decoded latent was rescaled to the prior's expected norm (``rescale_to_prior``);
    mean_norm: mean norm of each setting's latents before any rescaling; prior_norm: the prior's.
    """

    attribute: str
    keep: str
    expression: str
    k: int
    n_trials: int
    pool_size: int
    seed: int
    group_sizes: dict[str, int]
    thresholds: dict[str, float]
    settings: dict[str, dict[str, Rate]] = field(default_factory=dict)
    rescaled: bool = False
    mean_norm: dict[str, float] = field(default_factory=dict)
    prior_norm: float = float("nan")
    off_target_kept: dict[str, dict[str, float]] = field(default_factory=dict)
    off_target_change: dict[str, dict[str, float]] = field(default_factory=dict)
    means_read: dict[str, Rate] = field(default_factory=dict)
    by_means: dict[str, Rate] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def reads_as(attrs: np.ndarray, col_t: int, col_k: int, want_on: bool, keep_value: int,
             threshold: float) -> np.ndarray:
    """bool (N,): the classifier's readings (N, A) show the target on (> threshold) or off as
    wanted and the kept attribute's class equal to ``keep_value``."""
    on = attrs[:, col_t] > threshold
    return (on if want_on else ~on) & (attrs[:, col_k].round() == keep_value)


@dataclass
class ExemplarChoice:
    """Exemplars of one concept chosen by the rule of ``choose_exemplars``: pool ``indices`` (k,),
    whether the image of their mean latent is read as the concept (``read``), and how many
    candidate sets were decoded (``tried``) out of ``candidates`` ranked pool latents."""

    indices: np.ndarray
    read: bool
    tried: int
    candidates: int


def choose_exemplars(bundle, classifier, pool: AttributePool, attribute: str, keep: str, want_on: bool,
                     keep_value: int, k: int = 3, candidates: int = 12, threshold: float = 0.5) -> ExemplarChoice:
    """The figure's exemplar rule: rank the pool latents of the concept (``keep`` == keep_value)
    by how clearly the classifier reads ``attribute`` as on (or off); over k-subsets of the top
    ``candidates`` in lexicographic order of rank (the best-read first), take the first whose mean
    latent's image the classifier reads as the concept (``reads_as``). When none is, the top k with
    ``read`` False (and a figure must say so)."""
    from itertools import combinations

    target, kept = pool.column(attribute).numpy(), pool.column(keep).numpy().round()
    idx = np.flatnonzero(kept == keep_value)
    if len(idx) < k:
        raise ValueError(f"only {len(idx)} pool latents with {keep} == {keep_value}, need {k}; use a larger pool")
    ranked = idx[np.argsort(-target[idx] if want_on else target[idx], kind="stable")[:max(candidates, k)]]
    subsets = [np.asarray(c) for c in combinations(ranked.tolist(), k)]
    means = torch.stack([pool.z[c].mean(0) for c in subsets])
    read = reads_as(_read(bundle, classifier, means).numpy(), pool.names.index(attribute), pool.names.index(keep),
                    want_on, keep_value, threshold)
    hits = np.flatnonzero(read)
    if len(hits):
        return ExemplarChoice(subsets[hits[0]], True, int(hits[0]) + 1, len(ranked))
    return ExemplarChoice(ranked[:k].copy(), False, len(subsets), len(ranked))


def _categorical_names(classifier, names: Sequence[str]) -> set[str]:
    """The names among ``names`` the classifier reads as categorical (class indices)."""
    kinds = dict(classifier.config.attributes)
    return {n for n in names if kinds[n].startswith("categorical")}


def arithmetic_trials(bundle, classifier, n_trials: int = 1000, k_exemplars: int = 3, attribute: str = "smile",
                      seed: int = 0, *, keep: str = "beard", a_value: int = 0, b_value: int = 1,
                      on_threshold: float = 0.7, off_threshold: float = 0.2, success_threshold: float = 0.5,
                      expression: str = "a_pos - a_neg + b_neg", pool: AttributePool | None = None,
                      pool_size: int = 4000, batch_size: int = 500, rescale: bool = False) -> ArithmeticResult:
    """Measure "A_pos - A_neg + B_neg = B_pos" (section 6.3) against a same-norm random control.

    ``rescale``: decode every setting's latents rescaled to the prior's expected norm (the
    signed sum of k-exemplar means has norm ~ sqrt(3 / k) of a prior sample's)."""
    terms = parse_expression(expression)
    if n_trials < 1 or k_exemplars < 1:
        raise ValueError("n_trials and k_exemplars must be at least 1")
    pool = pool if pool is not None else attribute_pool(bundle, classifier, seed, pool_size, batch_size)
    target, kept = pool.column(attribute).numpy(), pool.column(keep).numpy().round()
    groups = {
        "a_pos": np.flatnonzero((target > on_threshold) & (kept == a_value)),
        "a_neg": np.flatnonzero((target < off_threshold) & (kept == a_value)),
        "b_neg": np.flatnonzero((target < off_threshold) & (kept == b_value)),
        "b_pos": np.flatnonzero((target > on_threshold) & (kept == b_value)),
    }
    sizes = {name: int(len(idx)) for name, idx in groups.items()}
    needed = {name for _, name in terms} | {"a_pos", "a_neg", "b_neg"}
    short = [n for n in sorted(needed) if n not in groups or sizes[n] < k_exemplars]
    if short:
        name = short[0]
        if name not in groups:
            raise ValueError(f"unknown concept {name!r}; known: {', '.join(sorted(groups))}")
        raise ValueError(f"only {sizes[name]} pool latents in group {name!r}, need {k_exemplars}; use a larger pool")
    rng = np.random.default_rng([seed, k_exemplars, 1])
    z = pool.z
    results, diffs, bases, a_pos, a_neg = [], [], [], [], []
    for _ in range(n_trials):
        concepts = {name: z[_pick(rng, idx, k_exemplars)].mean(0)
                    for name, idx in groups.items() if sizes[name] >= k_exemplars}
        results.append(evaluate_expression(terms, concepts))
        diffs.append(concepts["a_pos"] - concepts["a_neg"])
        bases.append(concepts["b_neg"])
        a_pos.append(concepts["a_pos"])
        a_neg.append(concepts["a_neg"])
    z_arith, diff, base = torch.stack(results), torch.stack(diffs), torch.stack(bases)
    g = torch.Generator().manual_seed(int(seed) * 1000 + k_exemplars)
    z_rand = base + _random_like(diff, g)
    col_t, col_k = pool.names.index(attribute), pool.names.index(keep)
    out = ArithmeticResult(attribute, keep, expression, k_exemplars, n_trials, len(z), pool.seed, sizes,
                           {"on": on_threshold, "off": off_threshold, "success": success_threshold,
                            "a_value": a_value, "b_value": b_value}, rescaled=bool(rescale),
                           prior_norm=prior_norm(z.shape[1], bundle.config.z_dist))
    decoded = {}
    for name, zz in (("arithmetic", z_arith), ("random", z_rand), ("b_neg", base)):
        out.mean_norm[name] = float(zz.norm(dim=1).mean())
        if rescale:
            zz = rescale_to_prior(zz, bundle.config.z_dist)
        decoded[name] = _read(bundle, classifier, zz, batch_size).numpy()
    categorical = _categorical_names(classifier, pool.names)
    off = [(j, n) for j, n in enumerate(pool.names) if j != col_t]
    base_attrs = decoded["b_neg"]
    base_off = base_attrs[:, col_t] <= success_threshold
    for name, attrs in decoded.items():
        on = attrs[:, col_t] > success_threshold
        kept_ok = attrs[:, col_k].round() == b_value
        same = {n: attrs[:, j].round() == base_attrs[:, j].round() for j, n in off if n in categorical}
        all_same = np.logical_and.reduce(list(same.values())) if same else np.ones(len(attrs), dtype=bool)
        out.settings[name] = {"success": Rate.of(on & kept_ok), "target": Rate.of(on), "kept": Rate.of(kept_ok),
                              "strict": Rate.of(on & base_off & all_same)}
        out.off_target_kept[name] = {n: float(v.mean()) for n, v in same.items()}
        out.off_target_change[name] = {n: float(np.abs(attrs[:, j] - base_attrs[:, j]).mean())
                                       for j, n in off if n not in categorical}
    # the exemplar rule of the figure, applied to every trial: are its concept means read as meant?
    read = {"a_pos": reads_as(_read(bundle, classifier, torch.stack(a_pos), batch_size).numpy(), col_t, col_k, True,
                              a_value, success_threshold),
            "a_neg": reads_as(_read(bundle, classifier, torch.stack(a_neg), batch_size).numpy(), col_t, col_k, False,
                              a_value, success_threshold),
            "b_neg": reads_as(base_attrs, col_t, col_k, False, b_value, success_threshold)}
    out.means_read = {name: Rate.of(hits) for name, hits in read.items()}
    chosen = read["a_pos"] & read["a_neg"] & read["b_neg"]
    success = decoded["arithmetic"][:, col_t] > success_threshold
    success &= decoded["arithmetic"][:, col_k].round() == b_value
    out.by_means = {"chosen": Rate.of(success[chosen]), "unchosen": Rate.of(success[~chosen])}
    return out


@dataclass
class TurnResult:
    """Turn vector (mean z of k faces with yaw > threshold minus mean of k with yaw < -threshold)
    added to random pool faces: success = predicted yaw increases. ``control``: a random
    direction with the same norm. mean_delta: mean change of predicted yaw."""

    attribute: str
    k: int
    n_trials: int
    pool_size: int
    seed: int
    threshold: float
    group_sizes: dict[str, int]
    direction: Rate
    control: Rate
    mean_delta_direction: float
    mean_delta_control: float

    def to_dict(self) -> dict:
        return asdict(self)


def turn_trials(bundle, classifier, n_trials: int = 1000, k: int = 4, seed: int = 0, *, attribute: str = "yaw",
                threshold: float = 0.5, pool: AttributePool | None = None, pool_size: int = 4000,
                batch_size: int = 500) -> TurnResult:
    """Section 6.3 'turn vector': does adding it to a random face turn the face to the right?"""
    pool = pool if pool is not None else attribute_pool(bundle, classifier, seed, pool_size, batch_size)
    yaw = pool.column(attribute).numpy()
    pos, neg = np.flatnonzero(yaw > threshold), np.flatnonzero(yaw < -threshold)
    if len(pos) < k or len(neg) < k:
        raise ValueError(f"only {len(pos)} / {len(neg)} pool faces with {attribute} > {threshold} / < -{threshold}, "
                         f"need {k}; use a larger pool")
    rng = np.random.default_rng([seed, k, 2])
    z = pool.z
    dirs, idx = [], rng.integers(0, len(z), size=n_trials)
    for _ in range(n_trials):
        dirs.append(mean_difference_direction(z[_pick(rng, pos, k)], z[_pick(rng, neg, k)]))
    d = torch.stack(dirs)
    g = torch.Generator().manual_seed(int(seed) * 1000 + k + 7)
    col = pool.names.index(attribute)
    before = yaw[idx]
    after_d = _read(bundle, classifier, z[idx] + d, batch_size)[:, col].numpy()
    after_r = _read(bundle, classifier, z[idx] + _random_like(d, g), batch_size)[:, col].numpy()
    return TurnResult(attribute, k, n_trials, len(z), pool.seed, threshold, {"pos": len(pos), "neg": len(neg)},
                      Rate.of(after_d > before), Rate.of(after_r > before),
                      float((after_d - before).mean()), float((after_r - before).mean()))


def _off_target_summary(r: ArithmeticResult) -> str:
    """One result's off-target rates, arithmetic / random: 'k=3: glasses kept 0.95 / 0.90, ...,
    hair_length |change| 0.04 / 0.06'."""
    kept, change = r.off_target_kept, r.off_target_change
    parts = [f"{n} kept {v:.2f} / {kept['random'][n]:.2f}" for n, v in kept["arithmetic"].items()]
    parts += [f"{n} |change| {v:.2f} / {change['random'][n]:.2f}" for n, v in change["arithmetic"].items()]
    return f"k={r.k}: " + (", ".join(parts) if parts else "none")


def results_markdown(arith: Sequence[ArithmeticResult], turn: TurnResult | None = None) -> str:
    """Markdown tables of success rates with Wilson 95% intervals (one table per attribute /
    expression / keep / rescaling group of ``arith``, in order)."""
    lines = []
    groups: dict[tuple, list[ArithmeticResult]] = {}
    for r in arith:
        groups.setdefault((r.attribute, r.keep, r.expression, r.rescaled), []).append(r)
    for group in groups.values():
        a = group[0]
        if lines:
            lines.append("")
        lines += [f"Concept arithmetic `{a.expression}`: target `{a.attribute} > {a.thresholds['success']}` and "
                  f"`{a.keep} == {a.thresholds['b_value']:g}` (pool {a.pool_size}, seed {a.seed}"
                  + (f"; latents rescaled to the prior norm {a.prior_norm:.2f})" if a.rescaled else ")"), "",
                  "| k | setting | n | success [95% CI] | target on | kept | strict [95% CI] |",
                  "|---|---|---|---|---|---|---|"]
        for r in group:
            for name, label in (("arithmetic", "a_pos - a_neg + b_neg" if r.expression == "a_pos - a_neg + b_neg"
                                 else r.expression), ("random", "b_neg + random (same norm)"), ("b_neg", "b_neg alone")):
                s = r.settings[name]
                lines.append(f"| {r.k} | {label} | {s['success'].n} | {s['success'].rate:.3f} "
                             f"[{s['success'].ci_low:.3f}, {s['success'].ci_high:.3f}] | {s['target'].rate:.3f} | "
                             f"{s['kept'].rate:.3f} | {s['strict'].rate:.3f} "
                             f"[{s['strict'].ci_low:.3f}, {s['strict'].ci_high:.3f}] |")
        lines += ["", "Trials whose three concept means the classifier reads as meant (the figure's exemplar rule) "
                  "against the rest (arithmetic success):", "",
                  "| k | means read as meant (a_pos / a_neg / b_neg) | success, all three read [95% CI] | "
                  "success, the rest [95% CI] |", "|---|---|---|---|"]
        for r in group:
            m, c, u = r.means_read, r.by_means["chosen"], r.by_means["unchosen"]
            lines.append(f"| {r.k} | {m['a_pos'].rate:.3f} / {m['a_neg'].rate:.3f} / {m['b_neg'].rate:.3f} | "
                         f"{c.rate:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}] (n={c.n}) | "
                         f"{u.rate:.3f} [{u.ci_low:.3f}, {u.ci_high:.3f}] (n={u.n}) |")
        lines += ["", "strict: the target flips (off in the b_neg image, on in the result) and every categorical "
                  "off-target attribute keeps its class in the b_neg image. Off-target attributes against the b_neg "
                  "image (arithmetic / random): " + "; ".join(_off_target_summary(r) for r in group) + "."]
    if turn is not None:
        lines += ["", f"Turn vector (k={turn.k} per side, |{turn.attribute}| > {turn.threshold}): success = predicted "
                  f"{turn.attribute} increases", "", "| setting | n | success [95% CI] | mean Δ" + turn.attribute + " |",
                  "|---|---|---|---|"]
        for label, r, dm in (("turn vector", turn.direction, turn.mean_delta_direction),
                             ("random (same norm)", turn.control, turn.mean_delta_control)):
            lines.append(f"| {label} | {r.n} | {r.rate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | {dm:+.3f} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- attribute directions

def _read_scores(bundle, classifier, z: torch.Tensor, attribute: str, success_threshold: float,
                 batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(reading, score) (N,) of one attribute for the images of z. reading: the decoded value (a
    class index for categorical attributes); score: a continuous version, the value itself for
    continuous attributes, P(class index > success_threshold) for categorical ones."""
    from dcgan_viz.evaluation._inputs import batched_apply

    kinds = dict(classifier.config.attributes)
    if attribute not in kinds:
        raise ValueError(f"unknown attribute {attribute!r}; the classifier reads {', '.join(kinds)}")
    col = list(kinds).index(attribute)
    categorical = kinds[attribute].startswith("categorical")

    def fn(x: torch.Tensor) -> torch.Tensor:
        outputs = classifier(x)
        reading = classifier.decode(outputs)[:, col]
        if categorical:
            p = torch.softmax(outputs[attribute].float(), dim=1)
            classes = torch.arange(p.shape[1], device=p.device, dtype=torch.float32)
            score = (p * (classes > success_threshold)).sum(1)
        else:
            score = reading
        return torch.stack([reading.float(), score.float()], dim=1)

    out = []
    for i in range(0, len(z), batch_size):
        imgs = generate_from_z(bundle.G, z[i : i + batch_size].to(bundle.device), batch_size)
        out.append(batched_apply(classifier, imgs, fn, batch_size).cpu())
    both = torch.cat(out).numpy() if out else np.zeros((0, 2), dtype=np.float32)
    return both[:, 0], both[:, 1]


@dataclass
class DirectionResult:
    """Attribute directions fitted on one half of a pool, evaluated on the other half.

    Labels: on = reading > on_threshold, off = reading < off_threshold (others unlabelled).
    Directions: "mean_difference" (mean z of on minus off latents), "svm" (InterFaceGAN normal) and
    "random" (an independent random direction per held-out latent), all scaled to the same norm
    ``step`` (default: the norm of the fitted mean difference). Per direction, on ``n_eval``
    held-out latents z: "both_ways" = score(z + d) > score(z) and score(z - d) < score(z)
    (score: the attribute, or P(on) for a categorical one); "raise" / "lower" each half alone;
    "flip_on" = held-out off latents whose z + d reads on (> success_threshold); "flip_off" =
    held-out on latents whose z - d reads off (< success_threshold); mean_delta_plus / _minus:
    mean score change. svm_accuracy: the SVM's held-out classification accuracy on labelled
    latents; majority_rate: the accuracy of always guessing the larger class (its control);
    svm_balanced_accuracy: the mean of the per-class held-out recalls (chance 0.5 however
    unbalanced the classes); cosine: between the mean-difference and SVM directions.
    """

    attribute: str
    pool_size: int
    seed: int
    thresholds: dict[str, float]
    n_fit: dict[str, int]
    n_eval: int
    step: float
    svm_accuracy: Rate
    majority_rate: float
    cosine: float
    svm_balanced_accuracy: float = float("nan")
    directions: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def direction_trials(bundle, classifier, attribute: str = "smile", seed: int = 0, *, pool: AttributePool | None = None,
                     pool_size: int = 4000, n_eval: int = 1000, on_threshold: float = 0.7, off_threshold: float = 0.2,
                     success_threshold: float = 0.5, step: float | None = None, C: float = 1.0,
                     batch_size: int = 500) -> DirectionResult:
    """Fit mean-difference and SVM directions for ``attribute`` on a random half of the pool and
    measure them on held-out latents against a same-norm random direction."""
    if n_eval < 1:
        raise ValueError("n_eval must be at least 1")
    pool = pool if pool is not None else attribute_pool(bundle, classifier, seed, pool_size, batch_size)
    reading = pool.column(attribute).numpy()
    n = len(pool.z)
    rng = np.random.default_rng([seed, 3])
    perm = rng.permutation(n)
    fit, held = perm[: n // 2], perm[n // 2:]
    on, off = reading > on_threshold, reading < off_threshold
    fit_on, fit_off = fit[on[fit]], fit[off[fit]]
    if len(fit_on) < 2 or len(fit_off) < 2:
        raise ValueError(f"only {len(fit_on)} on / {len(fit_off)} off latents for {attribute!r} in the fitting half "
                         f"(on > {on_threshold}, off < {off_threshold}); use a larger pool")
    z = pool.z.float()
    md = mean_difference_direction(z[fit_on], z[fit_off])
    labelled = np.concatenate([fit_on, fit_off])
    labels = np.concatenate([np.ones(len(fit_on), int), np.zeros(len(fit_off), int)])
    svm = _fit_svm(z[labelled], labels, C, seed)
    w = torch.as_tensor(svm.coef_[0], dtype=torch.float32)
    sv = w / w.norm().clamp_min(1e-12)
    step_norm = float(md.norm()) if step is None else float(step)
    if not step_norm > 0:
        raise ValueError(f"step must be positive, got {step_norm}")
    # held-out SVM classification accuracy vs always guessing the larger class
    held_lab = held[on[held] | off[held]]
    y_held = on[held_lab].astype(int)
    if len(held_lab):
        svm_hits = svm.predict(z[held_lab].numpy()) == y_held
        majority = float(max(y_held.mean(), 1 - y_held.mean()))
        balanced = float(np.mean([svm_hits[y_held == c].mean() for c in (0, 1) if (y_held == c).any()]))
    else:
        svm_hits, majority, balanced = np.zeros(0, bool), float("nan"), float("nan")
    ev = held[:n_eval]
    z_ev = z[ev]
    g = torch.Generator().manual_seed(int(seed) * 1000 + 11)
    dirs = {"mean_difference": (md / md.norm().clamp_min(1e-12) * step_norm).expand_as(z_ev),
            "svm": (sv * step_norm).expand_as(z_ev),
            "random": _random_like(torch.full_like(z_ev, step_norm / math.sqrt(z_ev.shape[1])), g)}
    r0, s0 = _read_scores(bundle, classifier, z_ev, attribute, success_threshold, batch_size)
    ev_off, ev_on = reading[ev] < off_threshold, reading[ev] > on_threshold
    out = DirectionResult(attribute, n, pool.seed,
                          {"on": on_threshold, "off": off_threshold, "success": success_threshold},
                          {"on": int(len(fit_on)), "off": int(len(fit_off))}, int(len(ev)), step_norm,
                          Rate.of(svm_hits), majority, float(md @ sv / md.norm().clamp_min(1e-12)), balanced)
    for name, d in dirs.items():
        rp, sp = _read_scores(bundle, classifier, z_ev + d, attribute, success_threshold, batch_size)
        rm, sm = _read_scores(bundle, classifier, z_ev - d, attribute, success_threshold, batch_size)
        up, down = sp > s0, sm < s0
        out.directions[name] = {
            "both_ways": Rate.of(up & down), "raise": Rate.of(up), "lower": Rate.of(down),
            "flip_on": Rate.of(rp[ev_off] > success_threshold), "flip_off": Rate.of(rm[ev_on] < success_threshold),
            "mean_delta_plus": float((sp - s0).mean()), "mean_delta_minus": float((sm - s0).mean())}
    return out


def directions_markdown(results: Sequence[DirectionResult]) -> str:
    """One markdown table of direction success rates (Wilson 95% intervals) for several attributes."""
    lines = ["| attribute | direction | n | both ways [95% CI] | raise | lower | flip off→on | flip on→off | "
             "mean Δ+ / Δ− |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for name in ("mean_difference", "svm", "random"):
            d = r.directions[name]
            b = d["both_ways"]
            lines.append(f"| {r.attribute} | {name.replace('_', ' ')}{' (control)' if name == 'random' else ''} | "
                         f"{b.n} | {b.rate:.3f} [{b.ci_low:.3f}, {b.ci_high:.3f}] | {d['raise'].rate:.3f} | "
                         f"{d['lower'].rate:.3f} | {d['flip_on'].rate:.3f} ({d['flip_on'].n}) | "
                         f"{d['flip_off'].rate:.3f} ({d['flip_off'].n}) | "
                         f"{d['mean_delta_plus']:+.3f} / {d['mean_delta_minus']:+.3f} |")
    lines += ["", "| attribute | fitted on (on / off) | step | SVM held-out accuracy [95% CI] | majority class | "
              "SVM balanced accuracy | cos(mean diff, SVM) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        a = r.svm_accuracy
        lines.append(f"| {r.attribute} | {r.n_fit['on']} / {r.n_fit['off']} | {r.step:.3f} | {a.rate:.3f} "
                     f"[{a.ci_low:.3f}, {a.ci_high:.3f}] ({a.n}) | {r.majority_rate:.3f} | {r.svm_balanced_accuracy:.3f} | "
                     f"{r.cosine:.3f} |")
    return "\n".join(lines) + "\n"
