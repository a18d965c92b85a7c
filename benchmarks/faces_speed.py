"""Throughput of the synthetic faces renderer: images/s for 100,000 64x64 faces rendered in chunks.

Checks the goal "100k faces in under 2 minutes on a 2-core CPU" and, when CUDA is available,
reports GPU throughput too. Other processes on the machine slow the CPU figure (the load
average is printed); with shared cores try ``--threads 1`` or ``OMP_WAIT_POLICY=PASSIVE``.

    python benchmarks/faces_speed.py [--count 100000] [--chunk 2000] [--size 64] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from dcgan_viz.data.faces import render_faces

GOAL_IMAGES, GOAL_SECONDS = 100_000, 120.0


def measure(device: str, count: int, chunk: int, size: int) -> float:
    """Images per second rendering ``count`` faces in chunks of ``chunk`` on ``device``."""
    render_faces(0, chunk, size=size, device=device)  # warm up (allocator, kernels, caches)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for first in range(0, count, chunk):
        index = torch.arange(first, min(first + chunk, count), device=device)
        render_faces(0, index, size=size, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=GOAL_IMAGES)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"cpu: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} (other processes slow the figure down)")
    rate = measure("cpu", args.count, args.chunk, args.size)
    seconds = GOAL_IMAGES / rate
    verdict = "holds" if seconds < GOAL_SECONDS else "does NOT hold"
    print(f"cpu : {rate:8.0f} img/s  ({args.size}px, chunks of {args.chunk}) -> 100k in {seconds:.0f} s: "
          f"goal '100k in under 2 minutes' {verdict}")
    if torch.cuda.is_available():
        chunk = max(args.chunk, 10_000)
        rate = measure("cuda", args.count, chunk, args.size)
        print(f"cuda: {rate:8.0f} img/s  ({args.size}px, chunks of {chunk}, {torch.cuda.get_device_name()}) "
              f"-> 100k in {GOAL_IMAGES / rate:.1f} s")


if __name__ == "__main__":
    main()
