"""Dashboard interaction latency: every page's main callbacks, over HTTP and in-process, side by side.

Starts ``dcgan-viz dashboard`` (waitress) as a subprocess and drives its callback endpoint
(``POST /_dash-update-component``) the way the browser does; background callbacks are polled until
their result arrives, as the browser polls. Each page's *main* callbacks are listed in ``MAIN``
below (what a user waits for after changing a control); a page of the navbar without an entry is
reported, and its image-drawing callbacks (an ``src`` output) are measured instead. Every request
changes the input that matters for that callback (the seed, or for Fig. 5 the filters), so no
result cache can answer it; warm-up requests are excluded from p50/p95, and the first request
after the server started (model load, in-memory caches empty; the disk cache under ``cache/`` as
earlier runs left it) is shown on its own.

The in-process columns are the same requests posted to a fresh app in this process through Flask's
test client: the same callback code and JSON, without the socket, HTTP and the WSGI server. The
reference rows are 64 samples generated in-process through ``dcgan_viz.sampling`` (and with the
grid + PNG encoding the ``/`` page does).

Goal (issue #20): every main callback p50 <= 300 ms on the 2-core CPU; on a GPU, p50 <= 50 ms for
the sample grid, the removal grid, the latent walk and the arithmetic.

    OMP_NUM_THREADS=1 python benchmarks/dashboard_latency.py      # CPU, checkpoints/rooms64
    python benchmarks/dashboard_latency.py --device cuda --repeats 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.wire_client import ENDPOINT, PAGES_CALLBACK, free_port, layout_props, post, request_body, spec_outputs, wait_http  # noqa: E402

GOAL_MS = {"cpu": 300.0, "cuda": 50.0}
CUDA_GOAL_OUTPUTS = ("ckpt-grid", "removal-compare", "latent-walk", "latent-arith")  # the GPU goal


def _seed(input_id: str) -> Callable[[int], dict]:
    return lambda i: {f"{input_id}.value": 1000 + i}


RUN = int(time.time()) % 10**5  # seeds RUN * 1000 + i: not in a disk cache of an earlier run


def _new_seed(input_id: str) -> Callable[[int], dict]:
    """Seeds no earlier run used (for callbacks whose results the disk cache keeps per seed)."""
    return lambda i: {f"{input_id}.value": RUN * 1000 + i}


@dataclass(frozen=True)
class Main:
    """A page's main callback: the one whose outputs include ``output`` (a component id), what it
    draws, and which inputs each request changes (repeat i -> {"id.prop": value})."""

    page: str
    output: str
    what: str
    vary: Callable[[int], dict] = field(default=lambda i: {})
    repeats: int | None = None  # fewer for slow background jobs (None: --repeats)
    option: bool = False  # a non-default setting of the page: reported, not held to the goal


MAIN = [
    Main("/", "ckpt-grid", "sample grid 8x8", _seed("ckpt-seed")),
    Main("/filters", "filters-fig5", "Fig. 5, 6 other filters each request",
         lambda i: {"filters-filters.value": f"{6 * i % 504}:{6 * i % 504 + 6}"}),
    Main("/filters", "filters-gmaps", "G feature maps", _seed("filters-seed")),
    Main("/latent", "latent-walk", "walk", _seed("latent-seed")),
    Main("/latent", "latent-arith", "arithmetic", lambda i: {"latent-concept-A.value": f"{i}:12, {i}:40, {i}:77"}),
    Main("/removal", "removal-grid", "drawing grid 4x4", _seed("removal-seed")),
    Main("/removal", "removal-compare", "8x8 with / without units", _seed("removal-seed")),
    Main("/memorization", "memo-pick", "sample picker", _seed("memo-seed")),
    Main("/memorization", "memo-neighbours", "nearest training images", _seed("memo-seed")),
    Main("/embedding", "embed-store", "UMAP, new seed projected into the real map", _new_seed("embed-seed")),
    Main("/embedding", "embed-store", "UMAP, new seed projected, 250 generated",
         lambda i: {"embed-seed.value": RUN * 1000 + 300 + i, "embed-generated.value": 250}, option=True),
    Main("/embedding", "embed-store", "UMAP refitted jointly, new seed",
         lambda i: {"embed-seed.value": RUN * 1000 + 500 + i, "embed-fit.value": "joint"}, repeats=3, option=True),
    Main("/embedding", "embed-store", "UMAP, a seed computed before", lambda i: {"embed-seed.value": RUN * 1000}),
]


# --- the Dash client (apps/wire_client.py) ------------------------------------------------------

def get_json(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=60) as r:
        return json.loads(r.read())


def page_paths(client, deps: list[dict]) -> list[str]:
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

    walk(client.get_json("/_dash-layout"))
    return hrefs


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


class Client:
    """POSTs callback requests over HTTP (``base``) or in-process (a Flask test client)."""

    def __init__(self, base: str | None = None, test_client=None):
        self.base, self.test_client = base, test_client

    def post(self, body: dict, query: str = "") -> tuple[int, bytes]:
        if self.test_client is None:
            return post(self.base, body, query, timeout=1200)
        r = self.test_client.post(ENDPOINT + query, json=body)
        return r.status_code, r.get_data()

    def get_json(self, path: str):
        if self.test_client is None:
            return get_json(self.base, path)
        return self.test_client.get(path).get_json()


def call(client: Client, dep: dict, body: dict, poll_s: float = 1800) -> tuple[int, bytes]:
    """POST once; a background callback (job handle answered) is polled until it has a result."""
    status, data = client.post(body)
    if not dep.get("background") or status != 200:
        return status, data
    handle = json.loads(data)
    if "response" in handle or "cacheKey" not in handle:
        return status, data
    deadline = time.time() + poll_s
    while time.time() < deadline:
        status, data = client.post(body, f"?cacheKey={handle['cacheKey']}&job={handle['job']}")
        if status != 200 or "response" in json.loads(data):
            return status, data
        time.sleep(0.02)
    raise TimeoutError(f"background callback {dep['output']} gave no result")


def page_values(client: Client, deps: list[dict], path: str, checkpoint: str) -> dict:
    """Default values ("id.prop" -> value) of the components of page ``path`` for ``checkpoint``."""
    pages = next(d for d in deps if d["output"] == PAGES_CALLBACK)
    query = "?" + urllib.parse.urlencode({"checkpoint": checkpoint})
    status, data = client.post(request_body(pages, {"_pages_location.pathname": path, "_pages_location.search": query}))
    if status != 200:
        raise RuntimeError(f"layout of {path}: HTTP {status}")
    return layout_props(json.loads(data)["response"], {})


def find_dep(deps: list[dict], output: str) -> dict:
    found = [d for d in deps if any(o["id"] == output for o in spec_outputs(d["output"]))
             and not d.get("clientside_function")]
    found.sort(key=lambda d: d.get("prevent_initial_call", False))  # the one that draws on page load first
    if not found:
        raise RuntimeError(f"no callback draws {output!r}: update MAIN in {Path(__file__).name}")
    return found[0]


def src_callbacks(deps: list[dict], values: dict) -> list[dict]:
    """Image-drawing callbacks whose inputs are all on a page (for pages without a MAIN entry)."""
    ids = {key.split(".", 1)[0] for key in values}
    return [d for d in deps if not d.get("clientside_function") and d["output"] != PAGES_CALLBACK
            and all(s["id"] in ids for s in d["inputs"]) and any(o["property"] == "src" for o in spec_outputs(d["output"]))]


def answered(data: bytes, dep: dict) -> bool:
    """A result without an error box; with an image where the callback draws one."""
    text = data.decode(errors="replace")
    if "dcgan-error" in text or '"response"' not in text:
        return False
    return has_image(data) if any(o["property"] == "src" for o in spec_outputs(dep["output"])) else True


def measure(client: Client, dep: dict, values: dict, vary: Callable[[int], dict], repeats: int,
            warmup: int, offset: int = 0) -> tuple[float, list[float], int]:
    """(first request s, wall seconds per request after warm-up, answers with a result); request i
    gets the inputs ``vary(offset + i)``."""
    times, ok, first = [], 0, float("nan")
    for i in range(warmup + repeats):
        body = request_body(dep, dict(values, **vary(offset + i)))
        t = time.perf_counter()
        status, data = call(client, dep, body)
        dt = time.perf_counter() - t
        if status not in (200, 204):  # 204: Dash's "no update" (counted as an answer without a result)
            raise RuntimeError(f"{dep['output']}: HTTP {status}: {data[:300]!r}")
        good = status == 200 and answered(data, dep)
        if i == 0:
            first = dt
            if not good:
                print(f"  note: {dep['output'][:60]} answered without a result: {data[:300]!r}", file=sys.stderr)
        if i >= warmup:
            times.append(dt)
            ok += good
    return first, times, ok


def run_all(client: Client, checkpoint: str, repeats: int, warmup: int, only: set[str] | None,
            offset: int = 0) -> dict:
    """{(page, output id, what): (first s, times, ok)} for every page of the navbar, in MAIN's order."""
    deps = client.get_json("/_dash-dependencies")
    paths = page_paths(client, deps)
    results = {}
    for path in paths:
        mains = [m for m in MAIN if m.page == path]
        values = page_values(client, deps, path, checkpoint)
        if not mains:
            print(f"  note: page {path} has no MAIN entry; measuring its image callbacks", file=sys.stderr)
            mains = [Main(path, next(o["id"] for o in spec_outputs(d["output"]) if o["property"] == "src"),
                          "(not in MAIN)") for d in src_callbacks(deps, values)]
        for m in mains:
            if only and m.output not in only:
                continue
            dep = find_dep(deps, m.output)
            try:
                first, times, ok = measure(client, dep, values, m.vary, m.repeats or repeats, warmup, offset)
            except (RuntimeError, TimeoutError, OSError) as exc:
                print(f"  {path} {m.output}: FAILED: {exc}", file=sys.stderr, flush=True)
                first, times, ok = float("nan"), [float("nan")], 0
            results[(m.page, m.output, m.what + (" (background)" if dep.get("background") else ""))] = first, times, ok
            print(f"  {'in-process' if client.test_client else 'HTTP'} {path} {m.output}: first {first * 1e3:.0f} ms, "
                  f"p50 {percentiles(times)[0] * 1e3:.1f} ms", file=sys.stderr, flush=True)
    return results


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
    parser.add_argument("--only", nargs="*", default=None, help="output ids of MAIN to measure (default: all)")
    parser.add_argument("--no-inprocess", action="store_true", help="skip the in-process columns")
    args = parser.parse_args()
    os.chdir(ROOT)  # the server and the in-process app list the same paths and share cache/ under ROOT
    checkpoint = args.checkpoint or str(args.checkpoints / "rooms64")
    goal = GOAL_MS[args.device]
    only = set(args.only) if args.only else None

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cached = len(list((ROOT / "cache" / "analysis").glob("*.json")))
    log = tempfile.TemporaryFile()  # the server's stderr: a file, never an unread pipe
    server = subprocess.Popen([sys.executable, "-m", "dcgan_viz.cli", "dashboard", "--checkpoints", str(args.checkpoints),
                               "--port", str(port), "--device", args.device], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_http(base + "/_dash-dependencies", 120, server)
        http = run_all(Client(base), checkpoint, args.repeats, args.warmup, only)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if server.returncode not in (0, -15, None):
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])

    import torch

    inproc = {}
    if not args.no_inprocess:
        from apps.app import create_app

        with tempfile.TemporaryDirectory() as jobs:
            web = create_app([args.checkpoints], device=args.device, job_dir=jobs)
            # other seeds / filters than the HTTP run's: the disk cache must not answer for them
            inproc = run_all(Client(test_client=web.server.test_client()), checkpoint, args.repeats, args.warmup, only,
                             offset=500)
    gen, full = measure_inprocess(checkpoint, args.device, args.repeats, args.warmup)

    where = (torch.cuda.get_device_name(0) if args.device == "cuda"
             else f"cpu x{torch.get_num_threads()} torch threads, {os.cpu_count()} cores, load average before "
                  f"{load:.1f}, after {os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f}")
    print(f"dashboard latency: {checkpoint} on {where}; waitress; {args.repeats} requests per callback after "
          f"{args.warmup} warm-up (fewer where marked), each request a new seed or new filters; "
          f"{cached} results in cache/analysis at start")
    print(f"{'page / callback':66} {'first':>7} {'p50':>7} {'p95':>7} | {'in-proc':>7} {'p50':>7} {'p95':>7} | "
          f"{'goal':>5}  verdict   (ms; in-proc first, p50, p95)")
    verdicts = []
    for key, (first, times, ok) in http.items():
        page, output, what = key
        p50, p95 = percentiles(times)
        option = what.removesuffix(" (background)") in {m.what for m in MAIN if m.option}
        row_goal = None if option else goal if args.device == "cpu" or output in CUDA_GOAL_OUTPUTS else None
        in_first, in_times, _ = inproc.get(key, (float("nan"), [float("nan")], 0))
        in_p50, in_p95 = percentiles(in_times)
        verdict = "option, no goal" if option else "report" if row_goal is None else ("holds" if p50 * 1e3 <= row_goal else "does NOT hold")
        if ok < len(times):
            verdict += f" ({len(times) - ok}/{len(times)} answers without a result)"
        if row_goal is not None:
            verdicts.append(p50 * 1e3 <= row_goal and ok == len(times))
        n = f" n={len(times)}" if len(times) != args.repeats else ""
        name = f"{page} {output}: {what}{n}"
        print(f"{name:66} {first * 1e3:7.0f} {p50 * 1e3:7.1f} {p95 * 1e3:7.1f} | {in_first * 1e3:7.0f} "
              f"{in_p50 * 1e3:7.1f} {in_p95 * 1e3:7.1f} | {'-' if row_goal is None else f'{row_goal:.0f}':>5}  {verdict}")
    gen_p50, gen_p95 = percentiles(gen)
    full_p50, full_p95 = percentiles(full)
    print(f"{'reference: in-process generate(64)':66} {'':>7} {gen_p50 * 1e3:7.1f} {gen_p95 * 1e3:7.1f} |")
    print(f"{'reference: in-process generate(64) + grid + PNG':66} {'':>7} {full_p50 * 1e3:7.1f} {full_p95 * 1e3:7.1f} |")
    print(f"goal p50 <= {goal:.0f} ms for {'every main callback' if args.device == 'cpu' else ', '.join(CUDA_GOAL_OUTPUTS)}: " +
          ("holds" if verdicts and all(verdicts) else "does NOT hold" if verdicts else "no callback measured"))


if __name__ == "__main__":
    main()
