"""Discriminator features as a representation (the paper's section 5.1) and their UMAP.

Features: every hidden layer of D, each max-pooled to a 4x4 grid, flattened and concatenated
(``feature_length``). They are scored by a regularised linear L2-SVM (scikit-learn
``LinearSVC``, squared hinge, C chosen by stratified cross-validation for each label budget,
features standardised)
trained on labelled images and tested on a held-out split; the controls are the same
architecture at random initialisation and raw pixels.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..images import from_uint8
from ..models import ModelConfig

if TYPE_CHECKING:
    from ..checkpoint import Bundle
    from ..data.spec import ImageSet

POOL = 4
C_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
CV_FOLDS = 3
CV_MAX_LABELS = 10_000  # larger label budgets choose C on a class-balanced subset this size (see svm_table)
MAX_ITER = 1000  # liblinear iterations; a fit that reaches it is reported as not converged


def feature_length(cfg: ModelConfig) -> int:
    """Length of ``pooled_features`` for a D built from ``cfg``: sum over hidden layers of C_l * 4 * 4."""
    widths = [cfg.ndf * 2**i for i in range(cfg.n_blocks - 1)]
    return sum(widths) * POOL * POOL


@torch.no_grad()
def pooled_features(D: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, F): each hidden layer max-pooled to 4x4, concatenated.
    Written into one preallocated array (60,000 Fashion-MNIST images x 7,168 features: 1.7 GB)."""
    device = next(D.parameters()).device
    out: np.ndarray | None = None
    for i in range(0, len(images), batch_size):
        x = from_uint8(torch.as_tensor(np.array(images[i : i + batch_size]), device=device))  # a writable copy
        feats = D.features(x, D.feature_layers)
        block = torch.cat([F.adaptive_max_pool2d(f, POOL).flatten(1) for f in feats.values()], 1).cpu().numpy()
        if out is None:
            out = np.empty((len(images), block.shape[1]), np.float32)
        out[i : i + len(block)] = block
    if out is None:
        raise ValueError("no images to featurise")
    return out


def pixel_features(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, H*W*C) in [-1, 1]."""
    return (images.reshape(len(images), -1).astype(np.float32) / 127.5) - 1.0


def label_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` labelled examples, as class-balanced as possible, drawn with a seeded RNG."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    order = np.concatenate([np.stack([p[i] for p in per if i < len(p)]) for i in range(max(map(len, per)))])
    return np.sort(order[:n])


@dataclass
class SVMScore:
    """Test accuracy of a linear L2-SVM on one feature set.

    ``C``: the penalty fitted; ``C_cv``: the grid value cross-validation chose on ``cv_labels``
    labels, with ``cv_accuracy``; ``converged``: liblinear stopped before ``MAX_ITER`` iterations.
    """

    features: str
    n_train: int
    dim: int
    C: float
    cv_accuracy: float
    accuracy: float
    C_cv: float = float("nan")
    cv_labels: int = 0
    converged: bool = True


def _svm(C: float, seed: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), _linear_svc(C, seed))


def _linear_svc(C: float, seed: int):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=C, loss="squared_hinge", dual=True, tol=1e-3, max_iter=MAX_ITER, random_state=seed)


def fit_bytes(n: int, dim: int) -> int:
    """Peak memory of one ``fit_svm`` on (n, dim) features beyond the inputs: the float64
    standardised copy plus liblinear's own copy (a 16-byte (index, value) node per entry)."""
    return n * (dim + 2) * (8 + 16)


def available_bytes() -> int:
    """Memory the system can still give (MemAvailable on Linux; free pages elsewhere)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not limit


def _cv_score(x: np.ndarray, y: np.ndarray, C: float, folds: int, seed: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(cross_val_score(_svm(C, seed), x, y, cv=cv).mean())


def _threads(n_jobs: int | None) -> int:
    return max(1, n_jobs if n_jobs is not None else (os.cpu_count() or 1))


def select_c(x: np.ndarray, y: np.ndarray, Cs: tuple[float, ...] = C_GRID, folds: int = CV_FOLDS,
             seed: int = 0, n_jobs: int | None = None) -> tuple[float, float]:
    """(C, mean CV accuracy) of the best C by stratified ``folds``-fold cross-validation on (x (N, F), y (N,)).
    The Cs are scored in ``n_jobs`` threads (liblinear releases the GIL; default: one per CPU)."""
    with ThreadPoolExecutor(_threads(n_jobs)) as pool:
        scores = list(pool.map(lambda C: _cv_score(x, y, C, folds, seed), Cs))
    best = int(np.argmax(scores))
    return float(Cs[best]), scores[best]


def fit_svm(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, C: float,
            name: str = "", cv_accuracy: float = float("nan"), seed: int = 0, C_cv: float = float("nan"),
            cv_labels: int = 0) -> SVMScore:
    """Standardise, fit the L2-SVM (squared hinge, penalty C) on train (N, F), score on test (M, F).

    ``converged`` is read from the fit itself (liblinear's iteration count below ``MAX_ITER``: what
    its ConvergenceWarning says, without the process-wide warning filters, which fits in
    concurrent threads would share).

    The features are standardised in place in one float64 copy (the dtype liblinear needs), so a
    fit holds ``fit_bytes(N, F)`` beyond its inputs rather than the three copies a scaler
    pipeline would make (60,000 x 7,168 features: 10 GB instead of about 17 GB).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler

    x = np.array(train_x, dtype=np.float64, order="C")
    scaler = StandardScaler(copy=False).fit(x)
    x = scaler.transform(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # recorded per fit below, as ``converged``
        model = _linear_svc(C, seed).fit(x, train_y)
    del x
    accuracy = float(model.score(scaler.transform(np.array(test_x, dtype=np.float64, order="C")), test_y))
    return SVMScore(features=name, n_train=len(train_y), dim=int(train_x.shape[1]), C=float(C),
                    cv_accuracy=cv_accuracy, accuracy=accuracy, C_cv=float(C if np.isnan(C_cv) else C_cv),
                    cv_labels=int(cv_labels), converged=bool(np.max(model.n_iter_) < MAX_ITER))


@dataclass
class RepresentationResult:
    """SVM accuracies: ``scores`` one row per (feature set, number of labels); ``notes`` say how
    the data was subset."""

    data: str
    n_test: int
    scores: list[dict]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        head = ["features", "labels", "dim", "C", "CV labels", "CV acc.", "test acc.", "converged"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in self.scores:
            converged = "yes" if s.get("converged", True) else f"no ({MAX_ITER} iterations)"
            lines.append(f"| {s['features']} | {s['n_train']} | {s['dim']} | {s['C']:g} | {s.get('cv_labels', '')} | "
                         f"{100 * s['cv_accuracy']:.1f}% | {100 * s['accuracy']:.2f}% | {converged} |")
        return "\n".join(lines) + f"\n\n{self.data}, {self.n_test} test images. " + " ".join(self.notes) + "\n"


def cv_labels_for(train_y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of the labels C is chosen on for a budget of ``n`` labels: the budget's own
    (``label_subset(train_y, n)``) up to ``CV_MAX_LABELS``, else a class-balanced subset that size."""
    return label_subset(train_y, min(n, CV_MAX_LABELS), seed)


def svm_table(features: dict[str, tuple[np.ndarray, np.ndarray]], train_y: np.ndarray, test_y: np.ndarray,
              label_counts: tuple[int | None, ...] = (None, 1000), seed: int = 0, data: str = "",
              n_jobs: int | None = None) -> RepresentationResult:
    """Score every feature set {name: (train (N, F), test (M, F))} with all N training labels (None)
    and with class-balanced subsets of ``label_counts`` labels.

    C is chosen for each feature set and each label budget separately, from that budget's labels
    only (no test data): ``CV_FOLDS``-fold CV over ``C_GRID`` on the budget's labels when there
    are at most ``CV_MAX_LABELS``, else on a class-balanced subset of ``CV_MAX_LABELS`` of them
    (``cv_labels_for``). LinearSVC sums the loss over the rows, so the same C regularises a larger
    fit less; the fitted C is therefore rescaled to the fit's size: C = C_cv * n_cv / n_fit
    (n_cv: the labels the CV ran on; no change when the CV ran on the budget itself).
    Each row records C, C_cv, cv_labels and ``converged`` (see ``fit_svm``).
    Independent fits run in up to ``n_jobs`` threads, fewer when the largest fit's memory
    (``fit_bytes``) times the threads would exceed the memory available; the result does not
    depend on the number of threads."""
    budgets = []
    for count in label_counts:
        n = len(train_y) if count is None or count >= len(train_y) else int(count)
        budgets.append((None if n == len(train_y) else label_subset(train_y, n, seed), n))
    chosen: dict[tuple[str, int], tuple[float, float, int]] = {}
    for _, n in budgets:
        cv_idx = cv_labels_for(train_y, n, seed)
        for name, (tr, _) in features.items():
            if (name, n) not in chosen:
                room = available_bytes() // max(2 * fit_bytes(len(cv_idx), tr.shape[1]), 1)
                C_cv, cv_acc = select_c(tr[cv_idx], train_y[cv_idx], seed=seed,
                                        n_jobs=max(1, min(_threads(n_jobs), room)))
                chosen[(name, n)] = (C_cv, cv_acc, len(cv_idx))
    jobs = [(idx, n, name, tr, te) for idx, n in budgets for name, (tr, te) in features.items()]

    def fit(job) -> dict:
        idx, n, name, tr, te = job
        C_cv, cv_acc, n_cv = chosen[(name, n)]
        x, y = (tr, train_y) if idx is None else (tr[idx], train_y[idx])  # all labels: no fancy-index copy
        return vars(fit_svm(x, y, te, test_y, C_cv * n_cv / n, name, cv_acc, seed, C_cv=C_cv, cv_labels=n_cv))

    largest = max(fit_bytes(n, tr.shape[1]) for _, n, _, tr, _ in jobs)
    workers = max(1, min(_threads(n_jobs), available_bytes() // max(largest, 1)))
    with ThreadPoolExecutor(workers) as pool:
        scores = list(pool.map(fit, jobs))  # in job order
    notes = [f"C per feature set and label budget by {CV_FOLDS}-fold CV over {list(C_GRID)} on the budget's "
             f"class-balanced labels (at most {CV_MAX_LABELS}; a larger budget's C is rescaled by "
             "n_cv / n_fit);",
             "features standardised (fit on the training rows)."]
    if not all(s["converged"] for s in scores):
        notes.append(f"Some fits stopped at {MAX_ITER} liblinear iterations before converging (column 'converged').")
    return RepresentationResult(data=data, n_test=len(test_y), scores=scores, notes=notes)


def evaluate_representations(bundle: "Bundle", train: "ImageSet", test: "ImageSet", label_counts=(None, 1000),
                             random_seed: int = 0, seed: int = 0, cache_dir: str | Path | None = None
                             ) -> RepresentationResult:
    """SVM accuracy of trained-D features, random-init-D features and raw pixels on labelled sets."""
    from ..cache import cache_key, cached
    from .filters import random_discriminator

    if train.labels is None or test.labels is None:
        raise ValueError(f"data {train.spec.source!r} has no labels: the SVM needs a labelled set (e.g. fashion-mnist)")

    def compute() -> RepresentationResult:
        random_d = random_discriminator(bundle.config, random_seed).to(bundle.device)
        feats = {"trained D": (pooled_features(bundle.D, train.images), pooled_features(bundle.D, test.images)),
                 "random D": (pooled_features(random_d, train.images), pooled_features(random_d, test.images)),
                 "pixels": (pixel_features(train.images), pixel_features(test.images))}
        res = svm_table(feats, train.labels, test.labels, tuple(label_counts), seed=seed, data=_describe(train, test))
        res.notes.append(f"All-label rows use the first {len(train.labels)} training images.")
        return res

    key = cache_key("svm", weights=bundle.key, train=_identity(train), test=_identity(test),
                    labels=list(label_counts), random_seed=random_seed, seed=seed, grid=list(C_GRID),
                    cv=f"per budget, <= {CV_MAX_LABELS}, C * n_cv / n_fit", max_iter=MAX_ITER)
    return cached(cache_dir, key, RepresentationResult, compute)


def _identity(imageset: "ImageSet") -> dict:
    return imageset.spec.to_dict() | {"n": len(imageset.images)}


def _describe(train: "ImageSet", test: "ImageSet") -> str:
    return f"{train.spec.source} {train.spec.size}px: train split {len(train.images)} images, test split"


@dataclass
class UmapResult:
    """2-D UMAP of D features. Per point (N): ``coords`` float32 (N, 2), ``generated`` bool (N,),
    ``labels`` int64 (N,) (-1 for generated images), ``index`` int64 (N,): the image's index in
    the real set, or the latent index (``latent_seed``, i) of a generated image."""

    coords: np.ndarray
    generated: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    label_names: list[str]
    latent_seed: int


UMAP_MODES = ("joint", "projected")
UMAP_SEED_LIMIT = 2**32  # umap-learn's random_state must fit a uint32


@dataclass
class RealMap:
    """A UMAP fitted on the standardised D features of ``n`` real images, kept to project other
    images into it. ``coords`` float32 (n, 2); ``mean``/``scale`` float32 (F,) standardise
    features; ``unit`` float32 (n, F): the real features standardised and L2-normalised (cosine
    distance = 1 - dot product); ``reducer`` is the fitted ``umap.UMAP`` (precomputed cosine
    distances, so projecting needs only a matrix product, not a per-pair Python metric)."""

    coords: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    unit: np.ndarray
    reducer: object

    def unit_features(self, feats: np.ndarray) -> np.ndarray:
        """float32 (m, F) D features -> (m, F) standardised with the real images' statistics, L2-normalised."""
        return _unit((feats - self.mean) / self.scale)

    def project(self, feats: np.ndarray) -> np.ndarray:
        """float32 (m, F) D features -> float32 (m, 2) positions in this map (UMAP ``transform``)."""
        if len(feats) == 0:
            return np.empty((0, 2), np.float32)
        with warnings.catch_warnings():  # "transforming new data with precomputed metric": what we mean
            warnings.simplefilter("ignore", UserWarning)
            placed = self.reducer.transform(_cosine_distances(self.unit_features(feats), self.unit))
        return np.asarray(placed, np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unit rows float32 (m, F), (n, F) -> float32 (m, n) cosine distances in [0, 2]."""
    return np.clip(1.0 - a @ b.T, 0.0, 2.0, dtype=np.float32)


def _check_umap_seed(seed: int) -> int:
    if not 0 <= int(seed) < UMAP_SEED_LIMIT:
        raise ValueError(f"the UMAP seed must be in [0, 2**32), got {seed}")
    return int(seed)


def fit_real_map(features: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> RealMap:
    """UMAP (cosine, seeded) of float32 (n, F) D features of real images, standardised; the
    fitted map can ``project`` further images. Runs numba-compiled code: seconds for n = 1,000."""
    import umap

    if len(features) < 3:
        raise ValueError(f"a UMAP needs at least 3 images, got {len(features)}")
    mean = features.mean(0).astype(np.float32)
    scale = features.std(0).astype(np.float32)
    scale[scale == 0] = 1.0  # constant features (as StandardScaler does)
    unit = _unit((features - mean) / scale)
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(unit) - 1), metric="precomputed",
                        random_state=_check_umap_seed(seed), n_jobs=1,
                        init="random" if len(unit) < 50 else "spectral")
    with warnings.catch_warnings():  # "using precomputed metric; inverse_transform will be unavailable"
        warnings.simplefilter("ignore", UserWarning)
        coords = reducer.fit_transform(_cosine_distances(unit, unit)).astype(np.float32)
    return RealMap(coords=coords, mean=mean, scale=scale, unit=unit, reducer=reducer)


def umap_embedding(bundle: "Bundle", real: "ImageSet", n_real: int = 1000, n_generated: int = 500,
                   latent_seed: int = 0, seed: int = 0, n_neighbors: int = 15, mode: str = "joint",
                   cache_dir: str | Path | None = None, real_map: RealMap | None = None) -> UmapResult:
    """UMAP (cosine, seeded) of the standardised D features of the first ``n_real`` real images and
    generated images (``latent_seed``, 0 .. n_generated-1); cached by weights hash + parameters.

    ``mode`` "joint" fits one UMAP on real and generated features together (a cluster of generated
    images far from every real one shows as its own island); "projected" fits the map on the real
    images only (``fit_real_map``; pass ``real_map`` to reuse one) and places the generated images
    into it with UMAP's ``transform``: the real layout stays put when the latents change, and a new
    seed costs a projection instead of a fit."""
    from ..cache import cache_key, cached
    from ..sampling import generate

    if mode not in UMAP_MODES:
        raise ValueError(f"mode must be one of {', '.join(UMAP_MODES)}, got {mode!r}")
    _check_umap_seed(seed)

    def compute() -> UmapResult:
        images = real.images[:n_real]
        fake = generate(bundle, latent_seed, n_generated).numpy()
        fake_feats = pooled_features(bundle.D, fake) if len(fake) else np.empty((0, 0), np.float32)
        if mode == "projected":
            if real_map is not None and len(real_map.coords) != len(images):
                raise ValueError(f"the real map holds {len(real_map.coords)} images, not the {len(images)} asked for")
            fitted = real_map or fit_real_map(pooled_features(bundle.D, images), seed, n_neighbors)
            coords = np.concatenate([fitted.coords, fitted.project(fake_feats)])
        else:
            feats = pooled_features(bundle.D, images)
            coords = fit_real_map(np.concatenate([feats, fake_feats]) if len(fake) else feats, seed, n_neighbors).coords
        labels = real.labels[:n_real] if real.labels is not None else np.full(len(images), -1)
        return UmapResult(coords=coords, generated=np.r_[np.zeros(len(images), bool), np.ones(len(fake), bool)],
                          labels=np.r_[labels, np.full(len(fake), -1)].astype(np.int64),
                          index=np.r_[np.arange(len(images)), np.arange(len(fake))].astype(np.int64),
                          label_names=list(real.label_names or ()), latent_seed=latent_seed)

    key = cache_key("umap", weights=bundle.key, data=_identity(real), n_real=n_real, n_generated=n_generated,
                    latent_seed=latent_seed, seed=seed, n_neighbors=n_neighbors, mode=mode, metric="precomputed-cosine")
    return cached(cache_dir, key, UmapResult, compute)
