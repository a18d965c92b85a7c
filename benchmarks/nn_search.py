"""Nearest-neighbour search over up to 1M training images: FAISS / torch index vs plain numpy brute force.

Training set: synthetic rooms at 32x32 (rendered in chunks into a prepared cache once), in the
pixel feature space of the memorization analysis (8x8x3 = 192 dims). Queries: held-out rooms.
Prints build time, query throughput (queries/s), index memory and the speed-up over numpy in the
same run, plus the recall@k of the approximate IVF index against the exact answer. No assertions.

    OMP_NUM_THREADS=1 python benchmarks/nn_search.py --count 1000000 --queries 1000
    python benchmarks/nn_search.py --count 20000 --queries 200        # quick look
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from dcgan_viz.analysis.nearest import NearestIndex, faiss_available, pixel_features
from dcgan_viz.data.loading import load_imageset
from dcgan_viz.data.spec import DataSpec


def numpy_brute_force(base: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65536) -> np.ndarray:
    """Plain numpy exact k-NN (chunked matmul + argpartition) -> int64 (Q, k), nearest first."""
    q_norm = (queries**2).sum(1, keepdims=True)
    best_d = np.full((len(queries), 0), np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(base), chunk):
        part = base[start : start + chunk]
        d2 = q_norm - 2.0 * queries @ part.T + (part**2).sum(1)[None, :]
        cand_d = np.concatenate([best_d, d2], 1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(part)), d2.shape)], 1)
        top = np.argpartition(cand_d, min(k, cand_d.shape[1] - 1), axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(cand_d, top, 1), np.take_along_axis(cand_i, top, 1)
    order = np.argsort(best_d, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ivf-lists", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if faiss_available():
        import faiss

        faiss.omp_set_num_threads(1)
    spec = DataSpec(source="rooms", size=32, count=args.count, test_count=args.queries)
    (train, t_load) = timed(lambda: load_imageset(spec, cache_dir=args.cache_dir, progress=True))
    test = load_imageset(spec.with_split("test"), cache_dir=args.cache_dir)
    (base, t_feat) = timed(lambda: pixel_features(train.images, 8))
    queries = pixel_features(test.images, 8)
    print(f"train {base.shape} float32 ({base.nbytes / 2**20:.0f} MiB), {len(queries)} queries, k={args.k}; "
          f"load/render {t_load:.1f}s, features {t_feat:.1f}s; 1 thread everywhere")
    exact, t_np = timed(lambda: numpy_brute_force(base, queries, args.k))
    rows = [("numpy brute force", 0.0, t_np, base.nbytes, 1.0)]
    backends = [("torch chunked matmul", "torch", 0)]
    if faiss_available():
        backends += [("faiss IndexFlatL2", "faiss", 0), (f"faiss IVF{args.ivf_lists} nprobe={args.nprobe}", "faiss", args.ivf_lists)]
    for name, backend, lists in backends:
        index, t_build = timed(lambda: NearestIndex(base, backend, ivf_lists=lists, nprobe=args.nprobe))
        found, t_query = timed(lambda: index.search(queries, args.k))
        recall = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found.indices, exact)]))
        rows.append((name, t_build, t_query, index.nbytes(), recall))
    print(f"{'method':34s} {'build s':>8s} {'query s':>8s} {'queries/s':>10s} {'x numpy':>8s} {'memory MiB':>10s} {'recall@k':>8s}")
    for name, t_build, t_query, nbytes, recall in rows:
        print(f"{name:34s} {t_build:8.1f} {t_query:8.2f} {len(queries) / t_query:10.1f} {t_np / t_query:8.2f} "
              f"{nbytes / 2**20:10.0f} {recall:8.4f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
