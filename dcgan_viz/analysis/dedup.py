"""Near-duplicate detection: the paper's semantic hashing, a DCT perceptual hash, linear-time grouping.

Semantic hash (Radford et al. 2015, section 4.1.1): a de-noising, dropout-regularised ReLU
autoencoder (32*32*C - 128 - 32*32*C) on 32x32 downsampled centre crops; its code layer,
thresholded per unit at the unit's median over the set (balanced bits), is a 128-bit hash. Its
input is each crop standardised per channel (zero mean, unit variance), so a global recolouring
(gain and offset per channel) leaves the code unchanged up to clipping; the de-noising corruption
(shift <= 2 px, gain/offset, noise, dropout) targets the remaining near-duplicate edits.
Perceptual hash: 8x8 lowest DCT frequencies of the 32x32 grayscale image above their median: 64 bits.

Pipeline (``find_duplicates``): (1) multi-index hashing: codes within Hamming ``radius`` share at
least one of ``radius + 1`` disjoint substrings exactly (pigeonhole), so each item only meets its
bucket mates (a sort + binary search per table: expected linear time; a bucket larger than
``max_bucket`` is cut, ``truncated_buckets`` counts the cut lookups); (2) shift probes: the codes of
each image moved by up to 2 px are looked up too (a shifted copy's own hash is far away);
(3) verification: a collision counts when the 3x3-blurred grayscale images, standardised over
the compared window, differ by at most ``threshold`` RMS at their best alignment (|shift| <= 2 px); (4) groups are the
connected components of the confirmed pairs; the first image of each group is kept.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from dcgan_viz.progress import progress

HASH_SIZE = 32
CHUNK = 4096
LOOKUP_CHUNK = 16384
DEFAULT_RADIUS = {"phash": 4, "semantic": 8}  # Hamming radius per method (same share of the bits: 1/16)
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
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if gray and x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return nn.functional.adaptive_avg_pool2d(x, HASH_SIZE) if s != HASH_SIZE else x


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
        x = _small(images[start : start + CHUNK], gray=True)[:, 0]
        coef = (dct @ x @ dct.T).reshape(len(x), -1)
        bits = coef > coef[:, 1:].median(dim=1, keepdim=True).values
        out.append(np.packbits(bits.numpy(), axis=1))
    return np.concatenate(out)


def _box3(x: torch.Tensor) -> torch.Tensor:
    """(n, C, S, S) -> the same, 3x3 box-blurred (borders average only the pixels inside)."""
    return nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _hash_input(x: torch.Tensor) -> torch.Tensor:
    """(n, C, S, S) in [0, 1] -> (n, C*S*S): 3x3-blurred, each channel of each image standardised
    (flat channels stay 0)."""
    x = _box3(x)
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return (x / x.flatten(2).std(dim=2).clamp_min(0.02)[..., None, None]).flatten(1)


class HashAutoencoder(nn.Module):
    """(B, D) standardised crops -> (B, D): input dropout (de-noising), ReLU code (B, bits), linear reconstruction."""

    def __init__(self, dim: int, bits: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Linear(dim, bits)
        self.decoder = nn.Linear(bits, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.relu(self.encoder(self.drop(x))))


@dataclass
class SemanticHasher:
    """A trained HashAutoencoder plus per-unit thresholds (bits,) that binarise its code.

    The code units' pre-activations are thresholded (ReLU(a) > t is a > t for t > 0; below 0 the
    pre-activation still carries the information a dead ReLU would lose).
    """

    model: HashAutoencoder
    thresholds: torch.Tensor

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> packed uint8 (N, bits/8)."""
        return np.concatenate([np.packbits((c > self.thresholds).numpy(), axis=1) for c in self._codes(images)])

    @torch.no_grad()
    def _codes(self, images: np.ndarray):
        self.model.eval()
        for start in range(0, len(images), CHUNK):
            yield self.model.encoder(_hash_input(_small(images[start : start + CHUNK], gray=False)))


def _corrupt(x: torch.Tensor, noise: float, gen: torch.Generator) -> torch.Tensor:
    """De-noising corruption of (B, C, S, S) in [0, 1]: a random shift of up to 2 px, gain/offset, noise."""
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = 1 + 0.1 * (2 * torch.rand(len(x), 1, 1, 1, generator=gen) - 1)
    offset = 0.03 * (2 * torch.rand(len(x), 1, 1, 1, generator=gen) - 1)
    return (x * gain + offset + noise * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def train_semantic_hasher(images: np.ndarray, bits: int = 128, steps: int = 3000, max_train: int = 50_000,
                          noise: float = 0.05, seed: int = 0, batch_size: int = 256,
                          show_progress: bool = False) -> SemanticHasher:
    """Fit the de-noising autoencoder for ``steps`` Adam steps on up to ``max_train`` of uint8 (N, H, W, C)
    ``images``; seeded.

    A fixed step budget, not epochs: a small set needs as many updates as a large one for a code
    that separates its images (5 epochs of 5,000 images, 100 steps, left 2% of all pairs colliding).
    The corruption (shift <= 2 px, gain/offset, Gaussian noise, input dropout) is what makes the
    code insensitive to the near-duplicate edits it should ignore. ``show_progress``: report the
    steps on stderr (``dcgan_viz.progress``).
    """
    if steps < 1:
        raise ValueError(f"the autoencoder needs at least one training step, got {steps}")
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(images), generator=gen)[:max_train].sort().values.numpy()
    x = _small(np.asarray(images[pick]), gray=False)
    torch.manual_seed(seed)  # dropout masks and weight init draw from the global generator
    model = HashAutoencoder(x[0].numel(), bits)
    target = _hash_input(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    done = 0
    with progress(steps, "semantic hash: training the autoencoder", "step", show_progress) as bar:
        while done < steps:
            for idx in torch.randperm(len(x), generator=gen).split(batch_size)[: steps - done]:
                loss = nn.functional.mse_loss(model(_hash_input(_corrupt(x[idx], noise, gen))), target[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                done += 1
                bar.update(1)
    model.eval()
    with torch.no_grad():
        thresholds = model.encoder(target).median(dim=0).values
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


def _lookup(sorted_keys: np.ndarray, order: np.ndarray, queries: np.ndarray, max_bucket: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows i (of the table) and j (of the queries) with equal keys -> (i (P,), j (P,), #queries truncated)."""
    lo = np.searchsorted(sorted_keys, queries, "left")
    hi = np.searchsorted(sorted_keys, queries, "right")
    counts = np.minimum(hi - lo, max_bucket)
    j = np.repeat(np.arange(len(queries), dtype=np.int64), counts)
    offsets = np.arange(len(j), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return order[np.repeat(lo, counts) + offsets], j, int((hi - lo > max_bucket).sum())


def near_pairs(codes: np.ndarray, radius: int, max_bucket: int = 256,
               probes: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, int]:
    """Pairs (i < j) of packed codes (N, B) within Hamming ``radius`` -> (int64 (P, 2), truncated lookups).

    ``probes``: extra codes (N, B) per item (e.g. of its shifted copies); a pair is also found when
    a probe of one item is within ``radius`` of the other's code.
    """
    nbits = codes.shape[1] * 8
    if not 0 <= radius < nbits // 4:
        raise ValueError(f"radius must be in [0, {nbits // 4}) for {nbits}-bit codes, got {radius}")
    tables = _substring_keys(codes, radius + 1)
    probe_tables = [_substring_keys(p, radius + 1) for p in probes]
    found, truncated = [], 0
    for t, keys in enumerate(tables):
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        for probe, probe_keys in [(codes, tables)] + list(zip(probes, probe_tables)):
            for start in range(0, len(codes), LOOKUP_CHUNK):  # bounds memory: <= chunk * max_bucket candidates
                i, j, cut = _lookup(sorted_keys, order, probe_keys[t][start : start + LOOKUP_CHUNK], max_bucket)
                j += start
                truncated += cut
                ok = (i != j) & (hamming(codes[i], probe[j]) <= radius)
                found.append(np.stack([np.minimum(i, j)[ok], np.maximum(i, j)[ok]], axis=1))
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


def _blurred(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W, C) -> (n, 32, 32) grayscale in [0, 1], 3x3-blurred (ignores compression noise)."""
    x = _small(images, gray=True)
    return _box3(x)[:, 0]


def _standardised(x: torch.Tensor) -> torch.Tensor:
    """(P, h, w) -> zero mean, unit std per image (ignores recolouring: gain and offset)."""
    x = x - x.mean(dim=(1, 2), keepdim=True)
    return x / x.flatten(1).std(dim=1).clamp_min(1e-3)[:, None, None]


def shift_distance(a: torch.Tensor, b: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """RMS difference of blurred images a, b (P, S, S), each standardised over the compared window,
    minimised over shifts of a by up to ``max_shift`` px -> (P,). The window skips a border of
    ``max_shift + 1`` px (lost or edge-replicated in a shifted copy, and touched by the blur)."""
    s, m = a.shape[-1], max_shift + 1
    core = _standardised(b[:, m : s - m, m : s - m])
    best = torch.full((len(a),), float("inf"))
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            window = _standardised(a[:, m + dy : s - m + dy, m + dx : s - m + dx])
            best = torch.minimum(best, (window - core).pow(2).mean(dim=(1, 2)).sqrt())
    return best


def verify_pairs(images: np.ndarray, pairs: np.ndarray, threshold: float, chunk: int = 65536) -> np.ndarray:
    """Bool (P,): pairs whose shift-tolerant normalised distance is at most ``threshold``."""
    keep = []
    for start in range(0, len(pairs), chunk):
        p = pairs[start : start + chunk]
        keep.append(shift_distance(_blurred(images[p[:, 0]]), _blurred(images[p[:, 1]])).numpy() <= threshold)
    return np.concatenate(keep) if keep else np.zeros(0, bool)


def dedup_codes(codes: np.ndarray, method: str, radius: int, max_bucket: int = 256,
                probes: Sequence[np.ndarray] = (), images: np.ndarray | None = None,
                threshold: float | None = None) -> DedupResult:
    """Group packed codes (N, B) within ``radius`` bits (also via ``probes``); keep the first image of each group.

    With ``images`` (N, H, W, C) and ``threshold``, hash collisions are confirmed by ``verify_pairs``.
    """
    pairs, truncated = near_pairs(codes, radius, max_bucket, probes)
    if images is not None and threshold is not None:
        pairs = pairs[verify_pairs(images, pairs, threshold)]
    labels = group_labels(pairs, len(codes))
    keep = np.flatnonzero(labels == np.arange(len(codes)))
    return DedupResult(method, radius, codes, pairs, labels, keep, truncated)


def find_duplicates(images: np.ndarray, method: str = "semantic", radius: int | None = None,
                    threshold: float | None = 0.08, max_shift: int = 2, max_bucket: int = 256, seed: int = 0,
                    steps: int = 3000, show_progress: bool = False) -> DedupResult:
    """Near-duplicate groups of uint8 (N, H, W, C) images: hash, probe with shifts, verify, group.

    ``radius`` None: the method's default (``DEFAULT_RADIUS``: 4 of phash's 64 bits, 8 of the
    semantic hash's 128); ``steps``: autoencoder training steps (semantic).
    ``max_shift`` > 0 also looks up the codes of each image moved by up to that many px (copies
    shifted by 1-2 px lose their hash otherwise); ``threshold`` None skips pixel verification.
    ``show_progress``: report training and hashing on stderr (``dcgan_viz.progress``).
    """
    fn = hasher(images, method, seed, steps, show_progress)
    radius = DEFAULT_RADIUS[method] if radius is None else radius
    codes, probes = hash_with_probes(images, fn, max_shift, show_progress=show_progress)
    return dedup_codes(codes, method, radius, max_bucket, probes, images if threshold is not None else None, threshold)


def shifted(images: np.ndarray, dy: int, dx: int, pad: int = 2) -> np.ndarray:
    """uint8 (N, H, W, C) moved by (dy, dx) px (|d| <= pad), edges replicated."""
    h, w = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    return padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w]


def hasher(images: np.ndarray, method: str = "semantic", seed: int = 0, steps: int = 3000,
           show_progress: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """A hash function uint8 (n, H, W, C) -> packed codes (n, B): "semantic" (trained on ``images``) or "phash"."""
    if method == "phash":
        return phash
    if method == "semantic":
        return train_semantic_hasher(images, steps=steps, seed=seed, show_progress=show_progress)
    raise ValueError(f"unknown hash method {method!r}; choose semantic or phash")


def hash_with_probes(images: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], max_shift: int = 2,
                     chunk: int = 65536, show_progress: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes (N, B) of ``images`` and, per shift (dy, dx) != 0 with |d| <= max_shift, codes of the shifted
    images (none when max_shift is 0). ``show_progress``: report the hashed images on stderr."""
    shifts = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)]
    parts: dict[tuple[int, int], list[np.ndarray]] = {s: [] for s in shifts}
    with progress(len(images) * len(shifts), "hashing (every shift)", "img", show_progress) as bar:
        for start in range(0, len(images), chunk):
            block = np.asarray(images[start : start + chunk])
            for dy, dx in shifts:
                parts[(dy, dx)].append(fn(shifted(block, dy, dx, max_shift) if (dy, dx) != (0, 0) else block))
                bar.update(len(block))
    codes = {s: np.concatenate(p) for s, p in parts.items()}
    return codes.pop((0, 0)), list(codes.values())


# ---------------------------------------------------------------- planted duplicates (controls)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    arr = image[..., 0] if image.shape[-1] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    return out[..., None] if image.shape[-1] == 1 else out


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
            copies.append(shifted(img[None], int(dy), int(dx))[0])
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
