"""Exact k-nearest-neighbour search of training images, in three feature spaces.

Feature spaces (each maps uint8 images (N, H, W, C) to float32 vectors (N, d)):

* ``pixel``: the image area-downsampled to ``size`` x ``size``, in [0, 1] (d = size * size * C);
* ``d``: the discriminator's hidden layers, each max-pooled over space, concatenated
  (d = sum of D.feature_layers' channels), as in the paper's D-feature classifier;
* ``classifier``: the evaluation classifier's penultimate features (Fashion-MNIST, d = 128).

Search backends return the same neighbours: ``faiss`` (IndexFlatL2, or IndexIVFFlat with
``ivf_lists`` > 0 for large sets, approximate unless ``nprobe`` = ``ivf_lists``) and ``torch``
(chunked matmul, CPU or GPU). Both fetch a few extra candidates and re-rank them with exact
float64 distances, ties broken by the lower training index, so they agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dcgan_viz.cache import cache_key, cached

SPACES = ("pixel", "d", "classifier")
RERANK_EXTRA = 8
FEATURE_BATCH = 1024


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Features:
    """Feature vectors float32 (N, d) of a set of images, cached on disk by ``cached_features``."""

    vectors: np.ndarray


@dataclass
class Neighbours:
    """``indices`` int64 (Q, k) into the training set and L2 ``distances`` float32 (Q, k), nearest first."""

    indices: np.ndarray
    distances: np.ndarray


# ---------------------------------------------------------------- feature spaces


def _chunks(images: np.ndarray | torch.Tensor, batch: int = FEATURE_BATCH):
    for start in range(0, len(images), batch):
        yield torch.as_tensor(np.array(images[start : start + batch]))


def pixel_features(images: np.ndarray | torch.Tensor, size: int = 16) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, size*size*C) in [0, 1], area-downsampled (chunked, memmap-friendly)."""
    out = []
    for chunk in _chunks(images):
        x = chunk.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != size:
            x = torch.nn.functional.adaptive_avg_pool2d(x, size)
        out.append(x.reshape(len(x), -1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


@torch.no_grad()
def d_features(D: torch.nn.Module, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, sum of channels): each D hidden layer max-pooled over space."""
    device = next(D.parameters()).device
    out = []
    for chunk in _chunks(images, 256):
        x = chunk.to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        feats = D.features(x, D.feature_layers)
        out.append(torch.cat([f.amax(dim=(2, 3)) for f in feats.values()], dim=1).float().cpu().numpy())
    return np.concatenate(out)


def classifier_features(model: torch.nn.Module, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, feature_dim): the evaluation classifier's penultimate features."""
    from dcgan_viz.evaluation.classifier import extract_features

    return np.concatenate([extract_features(model, chunk).cpu().numpy() for chunk in _chunks(images)])


def cached_features(cache_dir: str | Path | None, name: str, compute: Callable[[], np.ndarray], **parts) -> np.ndarray:
    """``compute()`` -> float32 (N, d), stored under ``cache_key(name, **parts)`` in ``cache_dir``."""
    key = cache_key(name, **parts)
    return cached(cache_dir, key, Features, lambda: Features(np.ascontiguousarray(compute(), np.float32))).vectors


# ---------------------------------------------------------------- search


def _rerank(base: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int) -> Neighbours:
    """Exact float64 distances of each query (Q, d) to its candidate rows (Q, m); k nearest, ties -> lower index."""
    candidates = np.where(candidates < 0, candidates.max(axis=1, keepdims=True), candidates)  # faiss pads with -1
    candidates = np.sort(candidates, axis=1)
    diff = base[candidates].astype(np.float64) - queries[:, None, :].astype(np.float64)
    dist = np.sqrt(np.einsum("qcd,qcd->qc", diff, diff))
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]  # stable on sorted candidates: ties -> lower index
    return Neighbours(np.take_along_axis(candidates, order, 1), np.take_along_axis(dist, order, 1).astype(np.float32))


def _torch_candidates(base: torch.Tensor, queries: torch.Tensor, m: int, chunk: int) -> np.ndarray:
    """int64 (Q, m): the m nearest rows of ``base`` (N, d) by matmul distances, scanning N in chunks."""
    q_norm = (queries * queries).sum(1, keepdim=True)
    best_d = torch.full((len(queries), 0), float("inf"), device=queries.device)
    best_i = torch.zeros((len(queries), 0), dtype=torch.int64, device=queries.device)
    for start in range(0, len(base), chunk):
        part = base[start : start + chunk]
        d2 = q_norm - 2.0 * queries @ part.T + (part * part).sum(1)[None, :]
        idx = torch.arange(start, start + len(part), device=queries.device).expand(len(queries), -1)
        best_d, pos = torch.cat([best_d, d2], 1).topk(min(m, best_d.shape[1] + len(part)), dim=1, largest=False)
        best_i = torch.cat([best_i, idx], 1).gather(1, pos)
    return best_i.cpu().numpy()


class NearestIndex:
    """Exact L2 k-NN over ``base`` float32 (N, d).

    backend: "faiss", "torch" or "auto" (faiss when importable). ivf_lists > 0: a FAISS IVF index
    with that many lists, searched with ``nprobe`` lists (exact when nprobe == ivf_lists).
    """

    def __init__(self, base: np.ndarray, backend: str = "auto", device: str | torch.device = "cpu",
                 ivf_lists: int = 0, nprobe: int = 8, seed: int = 0, faiss_index=None) -> None:
        if backend == "auto":
            backend = "faiss" if faiss_available() else "torch"
        if backend not in ("faiss", "torch"):
            raise ValueError(f"unknown search backend {backend!r}; choose faiss, torch or auto")
        if backend == "faiss" and not faiss_available():
            raise ValueError("backend faiss needs faiss-cpu: pip install 'dcgan-viz[faiss]'")
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        self.backend, self.device, self.nprobe = backend, torch.device(device), nprobe
        self.faiss_index = faiss_index
        if backend == "faiss" and faiss_index is None:
            self.faiss_index = _build_faiss(self.base, ivf_lists, seed)
        self._torch_base = torch.from_numpy(self.base).to(self.device) if backend == "torch" else None

    def __len__(self) -> int:
        return len(self.base)

    def candidates(self, queries: np.ndarray, m: int, chunk: int = 65536) -> np.ndarray:
        """int64 (Q, m) candidate rows before the exact re-rank (-1 = none found, IVF only)."""
        if self.backend == "faiss":
            if hasattr(self.faiss_index, "nprobe"):
                self.faiss_index.nprobe = self.nprobe
            return self.faiss_index.search(queries, m)[1]
        q = torch.from_numpy(queries).to(self.device)
        return _torch_candidates(self._torch_base, q, m, chunk)

    def search(self, queries: np.ndarray, k: int, batch: int = 1024) -> Neighbours:
        """k nearest rows for each query float32 (Q, d) -> Neighbours (Q, k), exact distances."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.base.shape[1]:
            raise ValueError(f"queries must be (Q, {self.base.shape[1]}), got {queries.shape}")
        k = min(k, len(self.base))
        m = min(k + RERANK_EXTRA, len(self.base))
        parts = [_rerank(self.base, q, self.candidates(q, m), k)
                 for q in (queries[s : s + batch] for s in range(0, len(queries), batch))]
        if not parts:
            return Neighbours(np.zeros((0, k), np.int64), np.zeros((0, k), np.float32))
        return Neighbours(np.concatenate([p.indices for p in parts]), np.concatenate([p.distances for p in parts]))

    def nbytes(self) -> int:
        """Approximate memory held by the index (vectors + FAISS structure)."""
        extra = 0
        if self.faiss_index is not None:
            import faiss

            extra = int(faiss.serialize_index(self.faiss_index).nbytes)
        return int(self.base.nbytes) + extra


def _build_faiss(base: np.ndarray, ivf_lists: int, seed: int):
    import faiss

    d = base.shape[1]
    if ivf_lists <= 0:
        index = faiss.IndexFlatL2(d)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, ivf_lists)
        sample = np.random.default_rng(seed).choice(len(base), min(len(base), 64 * ivf_lists), replace=False)
        index.cp.seed = seed
        index.train(base[np.sort(sample)])
    index.add(base)
    return index


def open_index(cache_dir: str | Path | None, name: str, compute: Callable[[], np.ndarray], backend: str = "auto",
               ivf_lists: int = 0, device: str | torch.device = "cpu", **parts) -> NearestIndex:
    """A NearestIndex over cached training features; an IVF index is also stored with faiss.write_index."""
    base = cached_features(cache_dir, name, compute, **parts)
    chosen = "faiss" if backend == "auto" and faiss_available() else ("torch" if backend == "auto" else backend)
    if chosen != "faiss" or ivf_lists <= 0 or cache_dir is None:
        return NearestIndex(base, chosen, device, ivf_lists)
    import faiss

    path = Path(cache_dir) / f"{cache_key(name, **parts)}-ivf{ivf_lists}.faiss"
    if path.is_file():
        return NearestIndex(base, chosen, device, ivf_lists, faiss_index=faiss.read_index(str(path)))
    index = NearestIndex(base, chosen, device, ivf_lists)
    tmp = path.with_suffix(".tmp")
    faiss.write_index(index.faiss_index, str(tmp))
    tmp.replace(path)
    return index
