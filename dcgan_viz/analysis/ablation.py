"""Forgetting to draw an object (Radford et al. 2015, section 6.1): drop generator units and measure.

* ``ablate(G, {layer: units}, value)``: forward hooks that set those channels of the named
  blocks' outputs to ``value`` (everywhere, or inside a spatial mask for insertion); removed in
  ``finally``. Weights are never touched.
* ``fit_window_probe``: the paper's protocol — logistic regression on a layer's activations,
  positives = positions inside the class mask (mask downsampled by area > 0.5), negatives = as
  many random positions elsewhere in the same images. Masks come from the segmenter
  (``class_masks``, automatic) or from drawn boxes (``masks_from_boxes``).
* Rankings of a layer's units: ``probe`` (weight, descending), ``optimized`` (GAN Dissection's
  learned ablation mask: ``optimize_ablation``), ``dissection`` (IoU of the unit's top-quantile
  map with the class mask, Network Dissection) and ``random`` (control).
* ``removal_curve``: for each ranking and count, the same latents with and without the top
  units -> ACE (fraction of the class's pixels removed), the relative change of every other
  class's pixel count, and the mean absolute pixel change outside the original class mask.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from ..latents import latents

if TYPE_CHECKING:
    from ..checkpoint import Bundle

ROOM_CLASSES = ("wall", "floor", "ceiling", "window", "bed", "door", "lamp", "picture", "rug")
QUANTILE = 0.005
MIN_SHARE = 0.005  # other classes below this share of all pixels are left out of "max other change"
BATCH = 250


def hidden_layers(G) -> tuple[str, ...]:
    """Layers whose units can be dropped: every block but the image output."""
    return tuple(G.layer_names[:-1])


def check_layer(G, layer: str) -> str:
    if layer not in hidden_layers(G):
        raise ValueError(f"unknown layer {layer!r}; hidden layers are {list(hidden_layers(G))}")
    return layer


def downsample_mask(masks: torch.Tensor, size: int) -> torch.Tensor:
    """bool (N, S, S) or (S, S) -> bool (N, size, size): a cell is in when > 0.5 of its area is."""
    m = torch.as_tensor(masks)
    squeeze = m.dim() == 2
    m = m[None] if squeeze else m
    if m.shape[-1] == size:
        out = m.bool()
    else:
        out = F.adaptive_avg_pool2d(m[:, None].float(), size)[:, 0] > 0.5
    return out[0] if squeeze else out


@contextmanager
def ablate(G, units: Mapping[str, Sequence[int]], value: float | Sequence[float] = 0.0,
           mask: torch.Tensor | np.ndarray | None = None) -> Iterator[Any]:
    """Within the block, the named layers' ``units`` output ``value`` (a float, or one per unit).

    ``mask``: optional bool (S, S) or (B, S, S) at any resolution (downsampled to each layer by
    area > 0.5); the units are set only there (insertion). The hooks are removed on exit, also
    after an exception; the model's weights are never changed.
    """
    prepared = []
    for layer, idx in units.items():
        check_layer(G, layer)
        idx = [int(i) for i in idx]
        n_units = G.layer_channels()[layer]
        bad = [i for i in idx if not 0 <= i < n_units]
        if bad:
            raise ValueError(f"unit(s) {bad[:5]} out of range for {layer} ({n_units} units)")
        prepared.append((layer, idx))
    handles = []
    try:
        for layer, idx in prepared:
            if not idx:
                continue
            handles.append(getattr(G, layer).register_forward_hook(_make_hook(idx, value, mask)))
        yield G
    finally:
        for h in handles:
            h.remove()


def _make_hook(idx: list[int], value, mask):
    def hook(module, inputs, out):
        out = out.clone()
        sel = torch.as_tensor(idx, device=out.device)
        val = torch.as_tensor(value, dtype=out.dtype, device=out.device)
        if val.dim() == 1:
            val = val[None, :, None, None]
        if mask is None:
            out[:, sel] = val.expand_as(out[:, sel]) if val.dim() else val
        else:
            m = downsample_mask(torch.as_tensor(mask).to(out.device), out.shape[-1])
            m = m[:, None] if m.dim() == 3 else m[None, None]
            out[:, sel] = torch.where(m, val.expand_as(out[:, sel]) if val.dim() else val, out[:, sel])
        return out
    return hook


# ---------------------------------------------------------------------------------------------
# Masks: drawn boxes or automatic (segmenter) labels


def masks_from_boxes(entries: Any, size: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """``[{seed, index, boxes: [[x0, y0, x1, y1], ...]}, ...]`` -> ([(seed, index)], bool (N, S, S)).

    Pixel coordinates, x1/y1 exclusive, 0 <= x0 < x1 <= size. Raises a one-line ValueError
    naming the bad entry.
    """
    if not isinstance(entries, list) or not entries:
        raise ValueError("boxes: expected a non-empty JSON list of {seed, index, boxes} entries")
    keys, masks = [], np.zeros((len(entries), size, size), dtype=bool)
    for n, e in enumerate(entries):
        where = f"boxes entry {n}"
        if not isinstance(e, dict):
            raise ValueError(f"{where}: expected an object with seed, index, boxes")
        for k in ("seed", "index"):
            v = e.get(k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{where}: {k} must be a non-negative integer, got {v!r}")
        boxes = e.get("boxes")
        if not isinstance(boxes, list) or not boxes:
            raise ValueError(f"{where}: boxes must be a non-empty list of [x0, y0, x1, y1]")
        for b in boxes:
            if (not isinstance(b, (list, tuple)) or len(b) != 4
                    or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in b)):
                raise ValueError(f"{where}: box {b!r} is not [x0, y0, x1, y1]")
            x0, y0, x1, y1 = (int(round(c)) for c in b)
            if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
                raise ValueError(f"{where}: box {list(b)} is empty or outside the {size}x{size} image")
            masks[n, y0:y1, x0:x1] = True
        keys.append((e["seed"], e["index"]))
    return keys, masks


@torch.no_grad()
def generate_and_label(G, segmenter, z: torch.Tensor, batch_size: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float (N, C, S, S) and segmenter labels uint8 (N, S, S), on the CPU."""
    from ..evaluation import predict_masks

    imgs, labels = [], []
    for i in range(0, len(z), batch_size):
        x = G(z[i : i + batch_size])
        imgs.append(x.cpu())
        labels.append(predict_masks(segmenter, x).cpu())
    return torch.cat(imgs), torch.cat(labels)


@torch.no_grad()
def layer_features(G, z: torch.Tensor, layer: str, batch_size: int = BATCH) -> torch.Tensor:
    return torch.cat([G.features(z[i : i + batch_size], [layer])[layer].cpu() for i in range(0, len(z), batch_size)])


# ---------------------------------------------------------------------------------------------
# Probe


@dataclass
class Probe:
    """Logistic-regression probe of one layer: ``weights`` (C,) on standardized activations,
    ``units_by_weight`` (C,) descending; training accuracy and sample counts."""

    layer: str
    weights: np.ndarray
    units_by_weight: np.ndarray
    accuracy: float
    n_positive: int
    n_negative: int


def fit_probe_features(feats: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray, layer: str = "",
                       seed: int = 0, max_positives: int = 20000, C: float = 1.0) -> Probe:
    """Probe from activations (N, C, h, w) and class masks (N, S, S) (any S; downsampled by area).

    Positives: every masked position (up to ``max_positives``, subsampled); negatives: as many
    random unmasked positions of the images that contain positives.
    """
    from sklearn.linear_model import LogisticRegression

    f = torch.as_tensor(feats).float()
    n, c, h, w = f.shape
    m = downsample_mask(torch.as_tensor(masks), h).reshape(n, h * w).numpy()
    x = f.reshape(n, c, h * w).permute(0, 2, 1).reshape(n * h * w, c).numpy()
    flat = m.reshape(-1)
    has = np.repeat(m.any(axis=1), h * w)
    pos = np.flatnonzero(flat)
    neg_pool = np.flatnonzero(~flat & has)
    if len(pos) == 0:
        raise ValueError("no positive positions: the class mask is empty at this layer's resolution")
    if len(neg_pool) == 0:
        raise ValueError("no negative positions: the class mask covers every image entirely")
    rng = np.random.default_rng(seed)
    if len(pos) > max_positives:
        pos = rng.choice(pos, max_positives, replace=False)
    neg = rng.choice(neg_pool, min(len(pos), len(neg_pool)), replace=False)
    X = np.concatenate([x[pos], x[neg]])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-6
    Xs = (X - mu) / sd
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(Xs, y)
    wts = clf.coef_[0].astype(np.float32)
    return Probe(layer=layer, weights=wts, units_by_weight=np.argsort(-wts, kind="stable"),
                 accuracy=float(clf.score(Xs, y)), n_positive=int(len(pos)), n_negative=int(len(neg)))


def fit_window_probe(G, zs: torch.Tensor, masks_per_image, layer: str, seed: int = 0) -> Probe:
    """The paper's probe: logistic regression on ``layer``'s activations for latents ``zs``
    against bool masks (N, S, S) of the target class at image resolution."""
    check_layer(G, layer)
    feats = layer_features(G, zs, layer)
    return fit_probe_features(feats, torch.as_tensor(np.asarray(masks_per_image)), layer, seed)


# ---------------------------------------------------------------------------------------------
# Other rankings


@torch.no_grad()
def dissection_iou(G, zs: torch.Tensor, class_mask: torch.Tensor, layer: str, quantile: float = QUANTILE) -> np.ndarray:
    """Per unit of ``layer``: IoU over all images of (bilinearly upsampled map > top-``quantile``
    threshold) with the class mask (N, S, S) — Network Dissection's unit/concept score."""
    check_layer(G, layer)
    feats = layer_features(G, zs, layer)
    n, c = feats.shape[:2]
    flat = feats.permute(1, 0, 2, 3).reshape(c, -1)
    kth = max(1, min(flat.shape[1], int(round((1.0 - quantile) * flat.shape[1]))))
    thr = flat.kthvalue(kth, dim=1).values
    mask = torch.as_tensor(class_mask).bool()
    size = mask.shape[-1]
    inter = torch.zeros(c, dtype=torch.float64)
    union = torch.zeros(c, dtype=torch.float64)
    for i in range(0, n, 100):
        up = F.interpolate(feats[i : i + 100], size=size, mode="bilinear", align_corners=False) > thr[None, :, None, None]
        m = mask[i : i + 100, None]
        inter += (up & m).sum(dim=(0, 2, 3)).double()
        union += (up | m).sum(dim=(0, 2, 3)).double()
    return (inter / union.clamp_min(1)).numpy().astype(np.float32)


@dataclass
class OptimizedAblation:
    """GAN Dissection's optimised ablation of one layer: ``alpha`` (C,) in [0, 1] per unit (how much of
    it to remove), ``units_by_alpha`` (C,) descending, ``losses`` (steps,) and ``remaining`` — the
    share of the class's soft pixel mass left under the final soft mask (fitting latents)."""

    layer: str
    class_name: str
    alpha: np.ndarray
    units_by_alpha: np.ndarray
    losses: np.ndarray
    remaining: float


OPTIMIZE_DEFAULTS = {"steps": 200, "batch_size": 32, "lr": 0.1, "sparsity": 0.5, "keep_others": 1.0, "seed": 0}


def optimize_ablation(G, segmenter, z: torch.Tensor, layer: str, class_id: int, class_name: str = "",
                      steps: int = 200, batch_size: int = 32, lr: float = 0.1, sparsity: float = 0.5,
                      keep_others: float = 1.0, min_share: float = MIN_SHARE, seed: int = 0) -> OptimizedAblation:
    """Learn a soft unit mask alpha (C,) for ``layer`` (its output becomes h * (1 - alpha)) so that G
    draws as little of class ``class_id`` as the segmenter sees (Bau et al. 2019, section 3.2).

    Per batch of latents ``z`` (N, nz): loss = class mass left / before
    + ``keep_others`` * the largest |mass change| / mass before among the other classes holding
    >= ``min_share`` of the pixels + ``sparsity`` * mean(alpha). Masses are the segmenter's softmax
    probabilities summed over pixels (a differentiable pixel count). Only alpha is optimised (the
    generator and segmenter are untouched; their weights get no gradients); seeded.
    """
    from ..evaluation._inputs import model_device, to_model_input

    check_layer(G, layer)
    n_units = G.layer_channels()[layer]
    device = model_device(G)
    gen = torch.Generator().manual_seed(seed)
    theta = torch.full((n_units,), -3.0, device=device, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)

    def masses(x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) in [-1, 1] -> (K,) soft pixel counts
        return segmenter(to_model_input(x)).softmax(dim=1).sum(dim=(0, 2, 3))

    masked = [False]  # the hook scales only while True: the same forward pass gives before and after

    def hook(module, inputs, out):
        return out * (1 - torch.sigmoid(theta))[None, :, None, None] if masked[0] else out

    was_training = (G.training, segmenter.training)
    G.eval()
    segmenter.eval()
    losses = []
    remaining = float("nan")
    handle = getattr(G, layer).register_forward_hook(hook)
    try:
        for _ in range(steps):
            idx = torch.randint(0, len(z), (min(batch_size, len(z)),), generator=gen)
            zb = z[idx.to(z.device)]
            masked[0] = False
            with torch.no_grad():
                before = masses(G(zb))
            masked[0] = True
            after = masses(G(zb))
            others = [j for j in range(len(before)) if j != class_id and before[j] >= min_share * before.sum()]
            left = after[class_id] / before[class_id].clamp_min(1.0)
            change = ((after[others] - before[others]).abs() / before[others]).max() if others else after.sum() * 0
            loss = left + keep_others * change + sparsity * torch.sigmoid(theta).mean()
            (grad,) = torch.autograd.grad(loss, [theta])
            theta.grad = grad
            opt.step()
            losses.append(float(loss.detach()))
            remaining = float(left.detach())
    finally:
        handle.remove()
        G.train(was_training[0])
        segmenter.train(was_training[1])
    alpha = torch.sigmoid(theta).detach().cpu().numpy().astype(np.float32)
    return OptimizedAblation(layer=layer, class_name=class_name, alpha=alpha,
                             units_by_alpha=np.argsort(-alpha, kind="stable"), losses=np.asarray(losses, np.float32),
                             remaining=remaining)


@dataclass
class GreedyAblation:
    """Greedy forward selection of units to drop from one layer. ``units`` (k,) in the order chosen;
    after each addition, on the fitting latents: ``removed`` (k,) the share of the class's pixels
    gone and ``other_change`` (k,) the largest relative pixel-count change of another class;
    ``candidates`` the units considered, in the order ties are broken."""

    layer: str
    class_name: str
    units: np.ndarray
    removed: np.ndarray
    other_change: np.ndarray
    candidates: np.ndarray

    def ranking(self, rest: Sequence[int] | None = None) -> np.ndarray:
        """The chosen units, then those of ``rest`` (default: the candidates) not chosen, in order."""
        chosen = self.units.tolist()
        tail = [int(u) for u in (self.candidates if rest is None else rest) if int(u) not in set(chosen)]
        return np.asarray(chosen + tail, dtype=np.int64)


GREEDY_DEFAULTS = {"budget": 0.1, "pool_factor": 3, "n_latents": 150, "keep_others": 1.0}


def greedy_plan(n_units: int, budget: float = 0.1, pool_factor: int = 3) -> tuple[int, int]:
    """(units chosen greedily, candidates) for a layer of ``n_units``: ``budget`` of the layer
    (at least 1), from the top ``pool_factor`` times as many units of another ranking."""
    k = max(1, round(budget * n_units))
    return k, min(n_units, pool_factor * k)


@torch.no_grad()
def greedy_ablation(G, segmenter, z: torch.Tensor, layer: str, class_id: int, class_name: str = "",
                    max_units: int = 13, candidates: Sequence[int] | None = None, keep_others: float = 1.0,
                    min_share: float = MIN_SHARE, batch_size: int = BATCH) -> GreedyAblation:
    """Choose up to ``max_units`` units of ``layer`` one at a time, each time the candidate whose
    zeroing (with the units already chosen) maximises

        removed share of class ``class_id`` - ``keep_others`` * largest relative change of another class

    counted with the segmenter's hard labels on the images of latents z (N, nz); classes below
    ``min_share`` of all pixels are left out of the max, as in ``removal_curve``. Unlike the soft
    mask of ``optimize_ablation``, every step measures the actual hard ablation, so the trade-off
    between removing the class and disturbing the others is met at each count. The layer's
    activations are computed once; each trial runs only the blocks after it (``forward_from``).
    Cost: about len(candidates) * max_units passes of those blocks and the segmenter over z.
    """
    check_layer(G, layer)
    n_units = G.layer_channels()[layer]
    cands = list(range(n_units)) if candidates is None else [int(u) for u in candidates]
    if not cands or len(set(cands)) != len(cands) or not all(0 <= u < n_units for u in cands):
        raise ValueError(f"candidates must be distinct units in 0..{n_units - 1}")
    if not 1 <= max_units <= len(cands):
        raise ValueError(f"max_units must be in 1..{len(cands)} (the number of candidates), got {max_units}")
    from ..evaluation._inputs import to_model_input

    h = layer_features(G, z, layer, batch_size)

    def pixel_counts(drop: list[int]) -> np.ndarray:
        out = 0
        for i in range(0, len(h), batch_size):
            hb = h[i : i + batch_size].to(z.device)
            if drop:
                hb = hb.clone()
                hb[:, drop] = 0
            logits = segmenter(to_model_input(G.forward_from(layer, hb)))
            labels = logits.argmax(dim=1).reshape(-1).cpu().numpy()
            out = out + np.bincount(labels, minlength=logits.shape[1])
        return np.asarray(out, dtype=np.float64)

    base = pixel_counts([])
    n_classes = len(base)
    if not 0 <= class_id < n_classes or base[class_id] == 0:
        raise ValueError(f"the segmenter labels no pixels of class {class_id} in these samples")
    others = [j for j in range(n_classes) if j != class_id and base[j] >= min_share * base.sum()]
    chosen: list[int] = []
    removed, other_change = [], []
    for _ in range(max_units):
        best = None
        for u in cands:
            if u in chosen:
                continue
            c = pixel_counts(chosen + [u])
            rem = 1.0 - c[class_id] / base[class_id]
            oc = float(np.abs(c[others] / base[others] - 1.0).max()) if others else 0.0
            score = rem - keep_others * oc
            if best is None or score > best[0]:
                best = (score, u, rem, oc)
        chosen.append(best[1])
        removed.append(best[2])
        other_change.append(best[3])
    return GreedyAblation(layer=layer, class_name=class_name, units=np.asarray(chosen, dtype=np.int64),
                          removed=np.asarray(removed, np.float32), other_change=np.asarray(other_change, np.float32),
                          candidates=np.asarray(cands, dtype=np.int64))


def random_ranking(n_units: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n_units)


# ---------------------------------------------------------------------------------------------
# Measurement


@dataclass
class RemovalResult:
    checkpoint: str
    class_name: str
    layer: str
    n_units: int
    n_latents: int
    seed: int
    classes: list[str]
    baseline_pixels: dict[str, int]
    rows: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        lines = [f"Removal of **{self.class_name}** by dropping {self.layer} units ({self.n_units} units), "
                 f"{self.n_latents} latents (seed {self.seed}); baseline {self.class_name} pixels: "
                 f"{self.baseline_pixels[self.class_name]}.", "",
                 "| ranking | units dropped | % of layer | ACE (class pixels removed) | max abs other-class change "
                 "| outside-mask abs pixel change |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r['ranking']} | {r['count']} | {100 * r['count'] / self.n_units:.1f}% | {r['ace']:.3f} | "
                         f"{r['max_other_change']:.3f} ({r['max_other_class']}) | {r['outside_change']:.4f} |")
        lines += ["", f"Other-class change: relative change of each class's pixel count; the max is over classes "
                  f"with >= {MIN_SHARE:.1%} of all pixels (all classes in removal.json). Pixels in [-1, 1]."]
        return "\n".join(lines) + "\n"


@torch.no_grad()
def removal_curve(bundle: "Bundle", segmenter, class_name: str, layer: str, rankings: Mapping[str, Sequence[int]],
                  counts: Sequence[int], n_latents: int = 1000, seed: int = 0,
                  classes: Sequence[str] = ROOM_CLASSES, batch_size: int = BATCH,
                  on_ranking: Callable[[str], None] | None = None) -> RemovalResult:
    """Drop the top ``count`` units of each ranking; latents (seed, 0..n_latents-1) with and without.
    ``on_ranking(name)`` is called after each ranking is measured (progress reports)."""
    from ..evaluation import predict_masks

    G = bundle.G
    check_layer(G, layer)
    classes = list(classes)
    if class_name not in classes:
        raise ValueError(f"unknown class {class_name!r}; classes are {classes}")
    cid, k = classes.index(class_name), len(classes)
    n_units = G.layer_channels()[layer]
    bad = [c for c in counts if not 0 < int(c) <= n_units]
    if bad:
        raise ValueError(f"counts {bad} out of range 1..{n_units} for {layer}")
    z = latents(bundle.config, seed, n_latents, device=bundle.device)
    base_imgs, base_labels = generate_and_label(G, segmenter, z, batch_size)
    base_counts = np.bincount(base_labels.reshape(-1).numpy(), minlength=k)[:k]
    total = base_labels.numel()
    result = RemovalResult(checkpoint=str(getattr(bundle, "path", "")), class_name=class_name, layer=layer,
                           n_units=n_units, n_latents=n_latents, seed=seed, classes=classes,
                           baseline_pixels={c: int(v) for c, v in zip(classes, base_counts)})
    outside = (base_labels != cid)[:, None]  # (N, 1, S, S)
    for name, ranking in rankings.items():
        for count in counts:
            units = [int(u) for u in list(ranking)[: int(count)]]
            after_counts = np.zeros(k, dtype=np.int64)
            diff_sum, n_out = 0.0, 0
            with ablate(G, {layer: units}):
                for i in range(0, n_latents, batch_size):
                    x = G(z[i : i + batch_size])
                    lab = predict_masks(segmenter, x).cpu()
                    after_counts += np.bincount(lab.reshape(-1).numpy(), minlength=k)[:k]
                    o = outside[i : i + batch_size].expand(-1, x.shape[1], -1, -1)
                    diff_sum += float((x.cpu() - base_imgs[i : i + batch_size]).abs()[o].sum())
                    n_out += int(o.sum())
            rel = {c: (float(after_counts[j] / base_counts[j] - 1.0) if base_counts[j] else None)
                   for j, c in enumerate(classes)}
            others = [(abs(rel[c]), c) for j, c in enumerate(classes)
                      if j != cid and base_counts[j] >= MIN_SHARE * total]
            mx, mc = max(others) if others else (0.0, "")
            ace = float(1.0 - after_counts[cid] / base_counts[cid]) if base_counts[cid] else float("nan")
            result.rows.append({"ranking": name, "count": int(count), "units": units, "ace": ace,
                                "other_change": rel, "max_other_change": mx, "max_other_class": mc,
                                "outside_change": diff_sum / max(n_out, 1),
                                "pixels_after": {c: int(v) for c, v in zip(classes, after_counts)}})
        if on_ranking is not None:
            on_ranking(name)
    return result


def unit_percentiles(G, z: torch.Tensor, layer: str, units: Sequence[int], q: float = 0.99) -> list[float]:
    """Each unit's ``q``-quantile activation over all positions of latents z (N, nz): the "high"
    value insertion sets the units to."""
    f = layer_features(G, z, layer)[:, list(units)]
    return torch.quantile(f.permute(1, 0, 2, 3).reshape(len(units), -1).float(), q, dim=1).tolist()


@torch.no_grad()
def insertion_rate(bundle: "Bundle", segmenter, class_name: str, layer: str, units: Sequence[int],
                   box: Sequence[int], n_latents: int = 200, seed: int = 0, value: float | None = None,
                   classes: Sequence[str] = ROOM_CLASSES, min_cover: float = 0.25) -> dict:
    """Set ``units`` high inside ``box`` = [x0, y0, x1, y1]; the fraction of samples where the
    segmenter then labels >= ``min_cover`` of the box as the class (vs. before). ``value``
    default: each unit's 99th-percentile activation over these latents."""
    G = bundle.G
    check_layer(G, layer)
    cid = list(classes).index(class_name)
    size = bundle.config.image_size
    _, mask = masks_from_boxes([{"seed": 0, "index": 0, "boxes": [list(box)]}], size)
    mask_t = torch.as_tensor(mask[0])
    z = latents(bundle.config, seed, n_latents, device=bundle.device)
    if value is None:
        value = unit_percentiles(G, z, layer, units)
    _, before = generate_and_label(G, segmenter, z)
    with ablate(G, {layer: list(units)}, value=value, mask=mask_t):
        _, after = generate_and_label(G, segmenter, z)

    def hit(lab):
        return ((lab == cid) & mask_t).sum(dim=(1, 2)).float() / mask_t.sum() >= min_cover

    return {"box": list(box), "units": [int(u) for u in units], "before": float(hit(before).float().mean()),
            "after": float(hit(after).float().mean()), "n_latents": n_latents}
