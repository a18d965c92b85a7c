"""Near-duplicate detection: the paper's semantic hashing, a DCT perceptual hash, linear-time grouping.

Semantic hash (Radford et al. 2015, section 4.1.1): a de-noising, dropout-regularised ReLU
autoencoder (32*32*C - 128 - 32*32*C) on 32x32 downsampled centre crops; its code layer,
thresholded per unit at the unit's median over the set (balanced bits), is a 128-bit hash.
Perceptual hash: 8x8 lowest DCT frequencies of the 32x32 grayscale image, above their median.

Grouping is multi-index hashing: codes within Hamming ``radius`` share at least one of
``radius + 1`` disjoint substrings exactly (pigeonhole), so items are bucketed by each substring,
only bucket mates are compared, and pairs within ``radius`` are joined into groups (connected
components). Expected time is linear in the set size; a bucket larger than ``max_bucket`` is
only compared to its ``max_bucket`` sorted neighbours (``truncated_buckets`` counts them).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

HASH_SIZE = 32
CHUNK = 4096
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass
class DedupResult:
    """Near-duplicate groups of N images.

    codes: packed uint8 (N, bits/8). pairs: int64 (P, 2) i < j within ``radius``. labels: int64 (N,)
    group id per image (lowest member's index). keep: int64 (K,) first image of each group.
    """

    method: str
    radius: int
    codes: np.ndarray
    pairs: np.ndarray
    labels: np.ndarray
    keep: np.ndarray
    truncated_buckets: int

    def groups(self, min_size: int = 2) -> list[np.ndarray]:
        """Groups with at least ``min_size`` members, as int64 index arrays, largest first."""
        order = np.argsort(self.labels, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(self.labels[order]) != 0])
        parts = [p for p in np.split(order, starts[1:]) if len(p) >= min_size]
        return sorted(parts, key=len, reverse=True)


# ---------------------------------------------------------------- inputs and hashes


def _small(images: np.ndarray, gray: bool) -> torch.Tensor:
    """uint8 (n, H, W, C) -> float (n, C', 32, 32) in [0, 1]: centre crop to square, area-downsample."""
    x = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if gray and x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return nn.functional.adaptive_avg_pool2d(x, HASH_SIZE) if s != HASH_SIZE else x


def _centred(x: torch.Tensor) -> torch.Tensor:
    """(n, S, S) -> (n, S, S) shifted (sub-pixel, circularly, via the Fourier shift theorem) so that the
    centroid of its gradient energy sits at the centre: a 1-2 px shift of the content is undone."""
    s = x.shape[-1]
    gy = nn.functional.pad((x[:, 1:, :] - x[:, :-1, :]).abs(), (0, 0, 0, 1))
    gx = nn.functional.pad((x[:, :, 1:] - x[:, :, :-1]).abs(), (0, 1, 0, 0))
    w = gy + gx + 1e-6
    pos = torch.arange(s, dtype=x.dtype) + 0.5
    cy = (w.sum(2) * pos).sum(1) / w.sum((1, 2))
    cx = (w.sum(1) * pos).sum(1) / w.sum((1, 2))
    freq = torch.fft.fftfreq(s, dtype=torch.float64)
    ramp_y = torch.exp(2j * torch.pi * freq[None, :] * (cy[:, None].double() - s / 2))
    ramp_x = torch.exp(2j * torch.pi * freq[None, :] * (cx[:, None].double() - s / 2))
    spec = torch.fft.fft2(x.double()) * ramp_y[:, :, None] * ramp_x[:, None, :]
    return torch.fft.ifft2(spec).real.to(x.dtype)


def _dct_matrix(n: int) -> torch.Tensor:
    k, i = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    m = torch.cos(torch.pi * (2 * i + 1) * k / (2 * n)) * (2.0 / n) ** 0.5
    m[0] /= 2**0.5
    return m.float()


def phash(images: np.ndarray, low: int = 8) -> np.ndarray:
    """uint8 (N, H, W, C) -> packed uint8 (N, low*low/8): DCT low frequencies above their median (DC excluded)."""
    dct = _dct_matrix(HASH_SIZE)[:low]
    out = []
    for start in range(0, len(images), CHUNK):
        x = _centred(_small(images[start : start + CHUNK], gray=True)[:, 0])
        coef = (dct @ x @ dct.T).reshape(len(x), -1)
        bits = coef > coef[:, 1:].median(dim=1, keepdim=True).values
        out.append(np.packbits(bits.numpy(), axis=1))
    return np.concatenate(out)


def fourier_hash(images: np.ndarray, low: int = 8) -> np.ndarray:
    """uint8 (N, H, W, C) -> packed uint8 (N, 2*low*low/8): low-frequency Fourier magnitudes above their median.

    Magnitudes ignore where the content sits (a 1-2 px shift on a flat background leaves them
    nearly unchanged), gain cancels in the median and an offset only moves the excluded DC term.
    """
    out = []
    for start in range(0, len(images), CHUNK):
        x = _small(images[start : start + CHUNK], gray=True)[:, 0]
        mag = torch.fft.fft2(x).abs()
        block = torch.cat([mag[:, 1 : low + 1, :low], mag[:, 1 : low + 1, -low:]], dim=2).flatten(1)
        out.append(np.packbits((block > block.median(dim=1, keepdim=True).values).numpy(), axis=1))
    return np.concatenate(out)


class HashAutoencoder(nn.Module):
    """(B, D) in [0, 1] -> (B, D): input dropout (de-noising), ReLU code (B, bits), sigmoid reconstruction."""

    def __init__(self, dim: int, bits: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Linear(dim, bits)
        self.decoder = nn.Linear(bits, dim)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.code(self.drop(x))))


@dataclass
class SemanticHasher:
    """A trained HashAutoencoder plus per-unit thresholds (bits,) that binarise its code."""

    model: HashAutoencoder
    thresholds: torch.Tensor

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> packed uint8 (N, bits/8)."""
        return np.concatenate([np.packbits((c > self.thresholds).numpy(), axis=1) for c in self._codes(images)])

    @torch.no_grad()
    def _codes(self, images: np.ndarray):
        self.model.eval()
        for start in range(0, len(images), CHUNK):
            yield self.model.code(_small(images[start : start + CHUNK], gray=False).flatten(1))


def _corrupt(x: torch.Tensor, noise: float, gen: torch.Generator) -> torch.Tensor:
    """De-noising corruption of (B, C, S, S) in [0, 1]: a random shift of up to 2 px, gain/offset, noise."""
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = 1 + 0.1 * (2 * torch.rand(len(x), 1, 1, 1, generator=gen) - 1)
    offset = 0.03 * (2 * torch.rand(len(x), 1, 1, 1, generator=gen) - 1)
    return (x * gain + offset + noise * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def train_semantic_hasher(images: np.ndarray, bits: int = 128, epochs: int = 5, max_train: int = 50_000,
                          noise: float = 0.05, seed: int = 0, batch_size: int = 256) -> SemanticHasher:
    """Fit the de-noising autoencoder on up to ``max_train`` of uint8 (N, H, W, C) ``images``; seeded.

    The corruption (shift <= 2 px, gain/offset, Gaussian noise, input dropout) is what makes the
    code insensitive to the near-duplicate edits it should ignore.
    """
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(images), generator=gen)[:max_train].sort().values.numpy()
    x = _small(np.asarray(images[pick]), gray=False)
    torch.manual_seed(seed)  # dropout masks and weight init draw from the global generator
    model = HashAutoencoder(x[0].numel(), bits)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            clean = x[idx]
            loss = nn.functional.binary_cross_entropy(model(_corrupt(clean, noise, gen).flatten(1)), clean.flatten(1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        thresholds = model.code(x.flatten(1)).median(dim=0).values
    return SemanticHasher(model, thresholds)


# ---------------------------------------------------------------- grouping


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between rows of packed codes a (P, B) and b (P, B) -> int64 (P,)."""
    return _POPCOUNT[np.bitwise_xor(a, b)].sum(axis=1, dtype=np.int64)


def _substring_keys(codes: np.ndarray, tables: int) -> list[np.ndarray]:
    """Split each code (N, B packed) into ``tables`` disjoint bit ranges -> int64 keys (N,) per table."""
    bits = np.unpackbits(codes, axis=1)
    bounds = np.linspace(0, bits.shape[1], tables + 1).round().astype(int)
    weights = [1 << np.arange(hi - lo, dtype=np.int64) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return [bits[:, lo:hi].astype(np.int64) @ w for (lo, hi), w in zip(zip(bounds[:-1], bounds[1:]), weights)]


def _bucket_pairs(keys: np.ndarray, max_bucket: int) -> tuple[np.ndarray, int]:
    """Pairs (P, 2) of items with equal keys (within max_bucket sorted positions), and #buckets truncated."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    out = []
    for d in range(1, max_bucket + 1):
        same = np.flatnonzero(sk[d:] == sk[:-d])
        if len(same) == 0:
            return (np.concatenate(out) if out else np.zeros((0, 2), np.int64)), 0
        out.append(np.stack([order[same], order[same + d]], axis=1))
    same = np.flatnonzero(sk[max_bucket:] == sk[:-max_bucket])
    truncated = len(np.unique(sk[same])) if len(same) else 0
    return np.concatenate(out), truncated


def near_pairs(codes: np.ndarray, radius: int, max_bucket: int = 256) -> tuple[np.ndarray, int]:
    """All pairs (i < j) of packed codes (N, B) within Hamming ``radius`` -> (int64 (P, 2), truncated buckets)."""
    nbits = codes.shape[1] * 8
    if not 0 <= radius < nbits // 4:
        raise ValueError(f"radius must be in [0, {nbits // 4}) for {nbits}-bit codes, got {radius}")
    found, truncated = [], 0
    for keys in _substring_keys(codes, radius + 1):
        pairs, t = _bucket_pairs(keys, max_bucket)
        truncated += t
        pairs = np.sort(pairs, axis=1)
        found.append(pairs[hamming(codes[pairs[:, 0]], codes[pairs[:, 1]]) <= radius])
    pairs = np.concatenate(found)
    n = np.int64(len(codes))
    uniq = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([uniq // n, uniq % n], axis=1), truncated


def group_labels(pairs: np.ndarray, n: int) -> np.ndarray:
    """Connected components of ``pairs`` (P, 2) over n items -> int64 (N,) labels = lowest member index."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    lowest = np.full(comp.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(lowest, comp, np.arange(n, dtype=np.int64))
    return lowest[comp]


def _normalised(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W, C) -> (n, 32, 32) grayscale, zero mean and unit std per image (ignores recolouring)."""
    x = _small(images, gray=True)[:, 0]
    x = x - x.mean(dim=(1, 2), keepdim=True)
    return x / x.flatten(1).std(dim=1).clamp_min(1e-3)[:, None, None]


def shift_distance(a: torch.Tensor, b: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """RMS difference of normalised images a, b (P, S, S) over their overlap, minimised over shifts of b
    by up to ``max_shift`` px -> (P,)."""
    s, m = a.shape[-1], max_shift
    best = torch.full((len(a),), float("inf"))
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            pa = a[:, m + dy : s - m + dy, m + dx : s - m + dx]
            best = torch.minimum(best, (pa - b[:, m : s - m, m : s - m]).pow(2).mean(dim=(1, 2)).sqrt())
    return best


def verify_pairs(images: np.ndarray, pairs: np.ndarray, threshold: float, chunk: int = 65536) -> np.ndarray:
    """Bool (P,): pairs whose shift-tolerant normalised distance is at most ``threshold``."""
    keep = []
    for start in range(0, len(pairs), chunk):
        p = pairs[start : start + chunk]
        keep.append(shift_distance(_normalised(images[p[:, 0]]), _normalised(images[p[:, 1]])).numpy() <= threshold)
    return np.concatenate(keep) if keep else np.zeros(0, bool)


def dedup_codes(codes: np.ndarray, method: str, radius: int, max_bucket: int = 256,
                images: np.ndarray | None = None, threshold: float | None = None) -> DedupResult:
    """Group packed codes (N, B) within ``radius`` bits; keep the first image of each group.

    With ``images`` (N, H, W, C) and ``threshold``, hash collisions are confirmed by ``verify_pairs``.
    """
    pairs, truncated = near_pairs(codes, radius, max_bucket)
    if images is not None and threshold is not None:
        pairs = pairs[verify_pairs(images, pairs, threshold)]
    labels = group_labels(pairs, len(codes))
    keep = np.flatnonzero(labels == np.arange(len(codes)))
    return DedupResult(method, radius, codes, pairs, labels, keep, truncated)


def hash_images(images: np.ndarray, method: str = "semantic", seed: int = 0, epochs: int = 5) -> np.ndarray:
    """uint8 (N, H, W, C) -> packed codes (N, B) with ``method`` "semantic" (trains a hasher) or "phash"."""
    if method == "phash":
        return phash(images)
    if method == "fourier":
        return fourier_hash(images)
    if method == "semantic":
        return train_semantic_hasher(images, epochs=epochs, seed=seed)(images)
    raise ValueError(f"unknown hash method {method!r}; choose semantic, phash or fourier")


# ---------------------------------------------------------------- planted duplicates (controls)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    arr = image[..., 0] if image.shape[-1] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    return out[..., None] if image.shape[-1] == 1 else out


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    h, w = image.shape[:2]
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)), mode="edge")
    return padded[2 - dy : 2 - dy + h, 2 - dx : 2 - dx + w]


def _recolour(image: np.ndarray, gain: np.ndarray, offset: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain + offset, 0, 255).round().astype(np.uint8)


def plant_duplicates(images: np.ndarray, n_copies: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Append ``n_copies`` altered copies of distinct random images of uint8 (N, H, W, C) ``images``.

    Each copy is, in turn, shifted by 1-2 px, JPEG re-compressed (quality 50-90) or recoloured
    (gain 0.9-1.1 per channel, offset +-8). Returns (images (N + n, ...), truth pairs int64 (n, 2)
    as (original, copy), kinds).
    """
    rng = np.random.default_rng(seed)
    sources = np.sort(rng.choice(len(images), n_copies, replace=False))
    kinds, copies = [], []
    for i, src in enumerate(sources):
        img = np.asarray(images[src])
        kind = ("shift", "jpeg", "recolour")[i % 3]
        if kind == "shift":
            dy, dx = rng.integers(1, 3, size=2) * rng.choice([-1, 1], size=2)
            copies.append(_shift(img, int(dy), int(dx)))
        elif kind == "jpeg":
            copies.append(_jpeg(img, int(rng.integers(50, 91))))
        else:
            copies.append(_recolour(img, rng.uniform(0.9, 1.1, size=img.shape[-1]), float(rng.uniform(-8, 8))))
        kinds.append(kind)
    out = np.concatenate([np.asarray(images), np.stack(copies)])
    truth = np.stack([sources, len(images) + np.arange(n_copies)], axis=1).astype(np.int64)
    return out, truth, kinds


def pair_scores(result: DedupResult, truth: np.ndarray) -> dict[str, float]:
    """Pair precision/recall of ``result``'s groups against planted (original, copy) pairs (n, 2).

    Predicted pairs are all pairs of images in the same group; a planted pair counts as found when
    both images share a group. Pairs between two original images are reported separately (they are
    either natural near-duplicates of the data set or false merges).
    """
    labels = result.labels
    sizes = np.bincount(labels, minlength=len(labels))
    predicted = int((sizes * (sizes - 1) // 2).sum())
    found = int((labels[truth[:, 0]] == labels[truth[:, 1]]).sum())
    n_orig = int(truth[:, 1].min()) if len(truth) else len(labels)
    orig_sizes = np.bincount(labels[:n_orig], minlength=len(labels))
    original_pairs = int((orig_sizes * (orig_sizes - 1) // 2).sum())
    return {
        "precision": found / predicted if predicted else 1.0,
        "precision_planted": found / (predicted - original_pairs) if predicted > original_pairs else 1.0,
        "recall": found / len(truth) if len(truth) else 1.0,
        "predicted_pairs": predicted, "found_pairs": found, "planted_pairs": int(len(truth)),
        "original_pairs": original_pairs,
    }
