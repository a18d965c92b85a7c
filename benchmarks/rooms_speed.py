"""Rooms rendering speed: images/s for many 64x64 images rendered in chunks, on CPU and CUDA.

The goal is 100,000 64x64 images in under 2 minutes on a 2-core CPU (>= ~850 images/s).
Wall time is what counts; CPU time and the load average are printed too, because on a shared
machine other processes' load slows the wall clock down.

    python benchmarks/rooms_speed.py                      # 100k on CPU, and on CUDA if present
    python benchmarks/rooms_speed.py --count 20000 --chunk 1000 --device cpu
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from dcgan_viz.data.rooms import render_rooms

GOAL_COUNT, GOAL_SECONDS = 100_000, 120.0


def measure(device: torch.device, count: int, chunk: int, size: int) -> dict:
    """Render ``count`` images in chunks; returns wall/CPU seconds and images/s."""
    render_rooms(0, chunk, size=size, device=device)  # warm-up (allocator, CUDA kernels)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, count, chunk):
        index = torch.arange(start, min(start + chunk, count), device=device)
        render_rooms(0, index, size=size, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "images_per_s": count / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=GOAL_COUNT)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    parser.add_argument("--gpu-chunk", type=int, default=20000, help="chunk size on CUDA")
    args = parser.parse_args()

    devices = []
    if args.device in ("all", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    for device in devices:
        chunk = args.chunk if device.type == "cpu" else args.gpu_chunk
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        r = measure(device, args.count, chunk, args.size)
        threads = f"cpu x{torch.get_num_threads()} threads"
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else threads
        print(
            f"{name}: {args.count} images {args.size}x{args.size} in chunks of {chunk}: "
            f"{r['wall_s']:.1f} s wall ({r['cpu_s']:.1f} s CPU), {r['images_per_s']:.0f} images/s "
            f"(load average before: {load:.1f} on {os.cpu_count()} cores)"
        )
        if device.type == "cpu" and args.size == 64:
            projected = GOAL_COUNT / r["images_per_s"]
            verdict = "holds" if projected < GOAL_SECONDS else "does NOT hold"
            print(f"  goal {GOAL_COUNT} images in < {GOAL_SECONDS:.0f} s: {projected:.0f} s projected -> {verdict}")


if __name__ == "__main__":
    main()
