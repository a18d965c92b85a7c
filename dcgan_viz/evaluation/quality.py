"""Sample quality of a generator, measured with the toolkit's own evaluation helpers.

- Fréchet distance between generated samples and held-out real images in an evaluator's
  feature space (FID-like; Inception weights cannot be fetched offline). Reported next to the
  same distance between a real *training* subset and the held-out set (the floor at that N).
- Diversity: mean per-image standard deviation and mean pairwise L2 distance, generated vs real
  (a collapsed generator has a much smaller pairwise distance).
- Rooms: fraction of images in which the segmenter finds a window (>= ``min_fraction`` of the
  pixels), generated vs held-out.
- Faces: attribute distribution of generated faces (read by the attribute classifier) vs the
  ground-truth distribution of held-out faces; per attribute a distance (Wasserstein-1 for
  continuous ones, total variation for categorical ones).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..checkpoint import Bundle
from ..latents import latents
from .frechet import frechet_distance

QUALITY_SEED = 1000  # generated samples are latents (1000, 0..n-1)


@dataclass
class QualityReport:
    """Numbers for a model card. Distances are in the named evaluator's feature space."""

    n: int
    feature_space: str
    frechet_generated: float
    frechet_real_floor: float
    diversity: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def generate_float(bundle: Bundle, n: int, seed: int = QUALITY_SEED, batch_size: int = 500) -> torch.Tensor:
    """Generated images (n, C, H, W) in [-1, 1] on the CPU for latents (seed, 0..n-1)."""
    out = []
    for start in range(0, n, batch_size):
        z = latents(bundle.config, seed, range(start, min(n, start + batch_size)), device=bundle.device)
        out.append(bundle.G(z).float().cpu())
    return torch.cat(out)


def _as_float(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) or float (N, C, H, W) in [-1, 1] -> float (N, C, H, W) in [-1, 1]."""
    t = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if t.dtype == torch.uint8:
        return t.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return t.float()


def diversity(images: torch.Tensor, pairs: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean per-image pixel std and mean L2 distance of random pairs (per pixel, in [-1, 1] units)."""
    x = _as_float(images).flatten(1)
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, len(x), (pairs,), generator=g)
    j = torch.randint(0, len(x), (pairs,), generator=g)
    keep = i != j
    d = (x[i[keep]] - x[j[keep]]).pow(2).mean(1).sqrt()
    return {"per_image_std": float(x.std(1).mean()), "pairwise_rms": float(d.mean())}


def _device_of(fn: Callable) -> torch.device:
    """The device of the module a bound ``features`` method belongs to (CPU for plain functions)."""
    owner = getattr(fn, "__self__", None)
    params = list(owner.parameters()) if isinstance(owner, torch.nn.Module) else []
    return params[0].device if params else torch.device("cpu")


def _features(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, F) features on the CPU; batches go to the feature model's device."""
    device = _device_of(fn)
    with torch.no_grad():
        return torch.cat([fn(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)])


def quality_report(bundle: Bundle, feature_fn: Callable[[torch.Tensor], torch.Tensor], feature_space: str,
                   real_test: torch.Tensor | np.ndarray, real_train: torch.Tensor | np.ndarray,
                   n: int = 10_000, generated: torch.Tensor | None = None) -> QualityReport:
    """Fréchet distances and diversity for ``n`` samples; ``feature_fn`` maps float (B, C, H, W)
    in [-1, 1] to (B, F). ``real_test`` / ``real_train`` are uint8 (N, H, W, C) (at least n each)."""
    gen = generated if generated is not None else generate_float(bundle, n)
    test = _as_float(real_test[:n])
    train = _as_float(real_train[:n])
    f_gen, f_test, f_train = (_features(feature_fn, x) for x in (gen, test, train))
    return QualityReport(
        n=len(gen), feature_space=feature_space,
        frechet_generated=frechet_distance(f_gen, f_test), frechet_real_floor=frechet_distance(f_train, f_test),
        diversity={"generated_" + k: v for k, v in diversity(gen).items()} | {"real_" + k: v for k, v in diversity(test).items()},
    )


def window_fraction(masks: torch.Tensor | np.ndarray, window_class: int, min_fraction: float = 0.005) -> float:
    """Fraction of images (masks uint8 (N, H, W)) with >= min_fraction of their pixels labelled window."""
    m = torch.as_tensor(np.asarray(masks)) if not isinstance(masks, torch.Tensor) else masks
    share = (m == window_class).float().mean(dim=(1, 2))
    return float((share >= min_fraction).float().mean())


def attribute_distribution(values: np.ndarray, kinds: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per attribute: mean/std (continuous) or category frequencies (categorical:K). values (N, A)."""
    out: dict[str, dict[str, Any]] = {}
    for col, (name, kind) in enumerate(kinds.items()):
        v = np.asarray(values[:, col], dtype=np.float64)
        if kind.startswith("categorical"):
            k = int(kind.split(":")[1])
            freq = np.bincount(np.clip(np.rint(v).astype(int), 0, k - 1), minlength=k) / max(len(v), 1)
            out[name] = {"kind": kind, "freq": [round(float(f), 4) for f in freq]}
        else:
            out[name] = {"kind": kind, "mean": round(float(v.mean()), 4), "std": round(float(v.std()), 4)}
    return out


def attribute_distances(generated: np.ndarray, reference: np.ndarray, kinds: dict[str, str]) -> dict[str, float]:
    """Per attribute: Wasserstein-1 (continuous, via quantiles) or total variation (categorical)."""
    gd, rd = attribute_distribution(generated, kinds), attribute_distribution(reference, kinds)
    q = np.linspace(0.005, 0.995, 199)
    out = {}
    for col, (name, kind) in enumerate(kinds.items()):
        if kind.startswith("categorical"):
            out[name] = round(0.5 * float(np.abs(np.array(gd[name]["freq"]) - np.array(rd[name]["freq"])).sum()), 4)
        else:
            a = np.quantile(np.asarray(generated[:, col], np.float64), q)
            b = np.quantile(np.asarray(reference[:, col], np.float64), q)
            out[name] = round(float(np.abs(a - b).mean()), 4)
    return out


def frechet_by_checkpoint(checkpoints: list, feature_fn: Callable[[torch.Tensor], torch.Tensor],
                          real_test: torch.Tensor | np.ndarray, n: int = 2000) -> list[dict[str, Any]]:
    """Fréchet distance to held-out images for each checkpoint path of a run (model selection:
    long DCGAN runs can collapse late, so the shipped epoch is chosen by this measure)."""
    from ..checkpoint import load_checkpoint

    f_test = _features(feature_fn, _as_float(real_test[:n]))
    rows = []
    for path in checkpoints:
        bundle = load_checkpoint(path, device=_device_of(feature_fn))
        gen = generate_float(bundle, n)
        rows.append({"path": str(path), "step": bundle.meta["step"], "epoch": bundle.meta["epoch"],
                     "frechet": frechet_distance(_features(feature_fn, gen), f_test),
                     "pairwise_rms": diversity(gen)["pairwise_rms"]})
    return rows
