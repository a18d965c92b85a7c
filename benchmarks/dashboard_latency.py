"""Dashboard interaction latency: p50 / p95 wall time of each page's main callbacks over HTTP.

Starts ``dcgan-viz dashboard`` as a subprocess and drives its callback endpoint
(``POST /_dash-update-component``) the way the browser does. Callbacks are discovered from the
running app (``/_dash-dependencies``): every page in the navbar is rendered with
``?checkpoint=<checkpoint>`` and its *main* callbacks are those that draw an image (an ``src``
output) from inputs on that page, so pages added later are measured without changing this file.
Requests use the page's default values with the seed input varied per repeat (no caching helps);
warm-up requests are excluded.

Goal (the issue): regenerating an 8x8 grid of 64x64 samples (with or without an ablation)
p50 <= 300 ms on the 2-core CPU, <= 50 ms on the GPU machine. The checkpoints page's grid and the
grids of a ``/removal`` page (when it exists) are held to it; the other callbacks are reported.

The reference row is the same 64-sample generation done in this process through
``dcgan_viz.sampling`` (and with the PNG encoding the page does), so the HTTP / JSON overhead is
the ratio shown side by side.

    python benchmarks/dashboard_latency.py                        # CPU, checkpoints/rooms64
    python benchmarks/dashboard_latency.py --device cuda --repeats 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.wire_client import PAGES_CALLBACK, free_port, layout_props, post, request_body, spec_outputs, wait_http  # noqa: E402

GOAL_MS = {"cpu": 300.0, "cuda": 50.0}
GRID_PAGES = ("/", "/removal")  # pages whose image callbacks regenerate a sample grid: held to the goal


# --- the Dash client (apps/wire_client.py) ------------------------------------------------------

def get_json(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return json.loads(r.read())


def call(base: str, dep: dict, body: dict, poll_s: float = 600) -> tuple[int, bytes]:
    """POST once; a background callback (job handle answered) is polled until it has a result."""
    status, data = post(base, body)
    if not dep.get("background") or status != 200:
        return status, data
    handle = json.loads(data)
    if "response" in handle or "cacheKey" not in handle:
        return status, data
    deadline = time.time() + poll_s
    while time.time() < deadline:
        status, data = post(base, body, f"?cacheKey={handle['cacheKey']}&job={handle['job']}")
        if status != 200 or "response" in json.loads(data):
            return status, data
        time.sleep(0.02)
    raise TimeoutError(f"background callback {dep['output']} gave no result")


def page_paths(base: str, deps: list[dict]) -> list[str]:
    """The navbar's pages (hrefs of the links the app's layout holds)."""
    hrefs = []

    def walk(tree):
        if isinstance(tree, dict):
            props = tree.get("props")
            if tree.get("type") == "Link" and isinstance(props, dict) and props.get("href") not in hrefs:
                hrefs.append(props["href"])
            for v in tree.values():
                walk(v)
        elif isinstance(tree, list):
            for v in tree:
                walk(v)

    walk(get_json(base, "/_dash-layout"))
    return hrefs


def main_callbacks(base: str, deps: list[dict], path: str, checkpoint: str) -> tuple[dict, list[dict]]:
    """(default values of the page's components, its image-drawing callbacks)."""
    pages = next(d for d in deps if d["output"] == PAGES_CALLBACK)
    query = "?" + urllib.parse.urlencode({"checkpoint": checkpoint})
    status, data = post(base, request_body(pages, {"_pages_location.pathname": path, "_pages_location.search": query}))
    if status != 200:
        raise RuntimeError(f"layout of {path}: HTTP {status}")
    values = layout_props(json.loads(data)["response"], {})
    ids = {key.split(".", 1)[0] for key in values}
    chosen = [d for d in deps if not d.get("clientside_function") and d["output"] != PAGES_CALLBACK
              and all(s["id"] in ids for s in d["inputs"])
              and any(o["property"] == "src" for o in spec_outputs(d["output"]))]
    return values, chosen


# --- measuring ---------------------------------------------------------------------------------

def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def has_image(data: bytes) -> bool:
    """Whether a callback answer holds a PNG data URI (the JSON may escape "/" as "\\/")."""
    def walk(v):
        if isinstance(v, str):
            return v.startswith("data:image/png;base64,")
        if isinstance(v, dict):
            return any(walk(x) for x in v.values())
        if isinstance(v, list):
            return any(walk(x) for x in v)
        return False

    return walk(json.loads(data))


def measure_http(base: str, dep: dict, values: dict, repeats: int, warmup: int) -> tuple[list[float], int]:
    """Wall seconds per request (warm-up excluded) and the number of requests with an image."""
    seeds = [k for k in (f"{s['id']}.{s['property']}" for s in dep["inputs"]) if "seed" in k.split(".")[0]]
    times, images = [], 0
    for i in range(warmup + repeats):
        v = dict(values, **{k: 1000 + i for k in seeds})
        t = time.perf_counter()
        status, data = call(base, dep, request_body(dep, v))
        dt = time.perf_counter() - t
        if status != 200:
            raise RuntimeError(f"{dep['output']}: HTTP {status}: {data[:300]!r}")
        if i >= warmup:
            times.append(dt)
            images += has_image(data)
        if i == 0 and not has_image(data):
            print(f"  note: {dep['output'][:60]} answered without an image: {data[:300]!r}", file=sys.stderr)
    return times, images


def measure_inprocess(checkpoint: str, device: str, repeats: int, warmup: int) -> tuple[list[float], list[float]]:
    """(generate only, generate + grid + PNG data URI) seconds, as the checkpoints page does it."""
    import torch

    from apps.components import image_src
    from dcgan_viz.checkpoint import load_checkpoint
    from dcgan_viz.images import grid
    from dcgan_viz.sampling import generate

    bundle = load_checkpoint(checkpoint, device=device)
    sync = torch.cuda.synchronize if bundle.device.type == "cuda" else (lambda: None)
    gen, full = [], []
    for i in range(warmup + repeats):
        t = time.perf_counter()
        images = generate(bundle, 1000 + i, range(64)).numpy()
        sync()
        t1 = time.perf_counter()
        image_src(grid(images), scale=2)
        t2 = time.perf_counter()
        if i >= warmup:
            gen.append(t1 - t)
            full.append(t2 - t)
    return gen, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="directory the dashboard lists")
    parser.add_argument("--checkpoint", default=None, help="checkpoint the pages show (default: <checkpoints>/rooms64)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    checkpoint = args.checkpoint or str(args.checkpoints / "rooms64")
    goal = GOAL_MS[args.device]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    server = subprocess.Popen([sys.executable, "-m", "dcgan_viz.cli", "dashboard", "--checkpoints", str(args.checkpoints),
                               "--port", str(port), "--device", args.device], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows = []
    try:
        wait_http(base + "/_dash-dependencies", 120, server)
        deps = get_json(base, "/_dash-dependencies")
        for path in page_paths(base, deps):
            values, chosen = main_callbacks(base, deps, path, checkpoint)
            for dep in chosen:
                times, images = measure_http(base, dep, values, args.repeats, args.warmup)
                name = next(o for o in spec_outputs(dep["output"]) if o["property"] == "src")["id"]
                bg = " (background)" if dep.get("background") else ""
                rows.append((f"{path} {name}{bg}", *percentiles(times), goal if path in GRID_PAGES else None,
                             images, len(times)))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if server.returncode not in (0, -15, None):
            sys.stderr.write(server.stderr.read().decode(errors="replace")[-3000:])

    sys.path.insert(0, str(ROOT))
    gen, full = measure_inprocess(checkpoint, args.device, args.repeats, args.warmup)
    gen_p50, gen_p95 = percentiles(gen)
    full_p50, full_p95 = percentiles(full)

    import torch

    where = (torch.cuda.get_device_name(0) if args.device == "cuda"
             else f"cpu x{torch.get_num_threads()} threads, {os.cpu_count()} cores, load average before {load:.1f}")
    print(f"dashboard latency: {checkpoint} on {where}; {args.repeats} requests per callback after "
          f"{args.warmup} warm-up, seed varied")
    print(f"{'callback':34} {'p50 ms':>8} {'p95 ms':>8} {'goal ms':>8} {'x ref':>6}  verdict")
    verdicts = []
    for name, p50, p95, row_goal, images, n in rows:
        ratio = p50 / gen_p50 if gen_p50 else float("nan")
        verdict = "report" if row_goal is None else ("holds" if p50 * 1e3 <= row_goal else "does NOT hold")
        if images < n:
            verdict += f" ({n - images}/{n} answers without an image)"
        if row_goal is not None:
            verdicts.append(p50 * 1e3 <= row_goal and images == n)
        print(f"{name:34} {p50 * 1e3:8.1f} {p95 * 1e3:8.1f} {'-' if row_goal is None else f'{row_goal:.0f}':>8} "
              f"{ratio:6.2f}  {verdict}")
    print(f"{'in-process generate(64)':34} {gen_p50 * 1e3:8.1f} {gen_p95 * 1e3:8.1f} {'':>8} {1.0:6.2f}  reference")
    print(f"{'in-process generate+grid+PNG':34} {full_p50 * 1e3:8.1f} {full_p95 * 1e3:8.1f} {'':>8} "
          f"{full_p50 / gen_p50:6.2f}  (what the page's callback computes)")
    if not any(name.startswith("/removal") for name, *_ in rows):
        print("(no /removal page in this app: its with/without-ablation grid is not measured)")
    print(f"goal p50 <= {goal:.0f} ms for the grid callbacks: " +
          ("holds" if verdicts and all(verdicts) else "does NOT hold" if verdicts else "no grid callback found"))


if __name__ == "__main__":
    main()
