"""20 concurrent clients x 50 requests of the sample-grid callback against a served dashboard: 0 errors.

The dashboard runs as a real server (``dcgan-viz dashboard`` in a subprocess, a tiny checkpoint);
the grid callback is found from the running app (``/_dash-dependencies``: the callback of the
``/`` page that draws an image and takes a seed), so the test follows the page if it changes.
Every answer must be HTTP 200 with a PNG image, and each seed's image must be the same whichever
thread asked (no state leaks between concurrent requests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from apps.wire_client import PAGES_CALLBACK, free_port, layout_props, post, request_body, spec_outputs, wait_http
from fixtures_dashboard import tiny_checkpoint

pytest.importorskip("dash")
pytest.importorskip("plotly")
pytest.importorskip("captum")
pytestmark = pytest.mark.slow

CLIENTS, REQUESTS = 20, 50
SEEDS = 10  # seeds cycled through; each seed's image is compared across threads
PNG = b"data:image/png;base64,"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    ckpt, _ = tiny_checkpoint(root / "ckpts")
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # the server logs every request: a file, never an unread pipe (a full pipe would block the server)
    log = open(root / "server.log", "w+b")
    process = subprocess.Popen([sys.executable, "-m", "dcgan_viz.cli", "dashboard", "--checkpoints", str(root / "ckpts"),
                                "--port", str(port), "--device", "cpu"], cwd=root, env=env,
                               stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(base + "/_dash-dependencies", 90, process)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}: {(root / 'server.log').read_text(errors='replace')[-2000:]}")
        yield base, str(ckpt)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _grid_callback(base: str) -> tuple[dict, dict, str]:
    """(dependency, default values, seed key) of the "/" page's image callback that takes a seed."""
    with urllib.request.urlopen(base + "/_dash-dependencies", timeout=30) as r:
        deps = json.loads(r.read())
    pages = next(d for d in deps if d["output"] == PAGES_CALLBACK)
    status, data = post(base, request_body(pages, {"_pages_location.pathname": "/", "_pages_location.search": ""}), timeout=60)
    assert status == 200, data[:500]
    values = layout_props(json.loads(data)["response"], {})
    ids = {k.split(".", 1)[0] for k in values}
    for dep in deps:
        keys = [f"{s['id']}.{s['property']}" for s in dep["inputs"]]
        seeds = [k for k in keys if "seed" in k.split(".")[0]]
        if (not dep.get("clientside_function") and not dep.get("background") and seeds
                and all(s["id"] in ids for s in dep["inputs"])
                and any(o["property"] == "src" for o in spec_outputs(dep["output"]))):
            return dep, values, seeds[0]
    raise AssertionError("no image callback with a seed input on the / page")


def test_concurrent_clients_get_images_without_errors(server):
    base, ckpt = server
    dep, values, seed_key = _grid_callback(base)
    errors: list[str] = []
    images: dict[int, set[bytes]] = {}
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(k: int) -> None:
        start.wait()
        for i in range(REQUESTS):
            seed = (k + i) % SEEDS
            try:
                status, data = post(base, request_body(dep, dict(values, **{seed_key: seed})), timeout=60)
            except Exception as exc:  # noqa: BLE001 - a refused / reset connection is an error too
                with lock:
                    errors.append(f"client {k} request {i}: {type(exc).__name__}: {exc}")
                continue
            src = None
            if status == 200:
                response = json.loads(data)["response"]
                src = next((v.get("src") for v in response.values() if isinstance(v, dict) and "src" in v), None)
            with lock:
                if status != 200 or not (src or "").startswith(PNG.decode()):
                    errors.append(f"client {k} request {i} (seed {seed}): HTTP {status}, {data[:200]!r}")
                else:
                    images.setdefault(seed, set()).add(src.encode())

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    t = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    elapsed = time.perf_counter() - t
    assert not any(thread.is_alive() for thread in threads), "clients still waiting after 300 s"
    assert not errors, f"{len(errors)} errors of {CLIENTS * REQUESTS} requests:\n" + "\n".join(errors[:10])
    assert len(images) == SEEDS
    assert all(len(srcs) == 1 for srcs in images.values()), "the same seed gave different images across threads"
    print(f"{CLIENTS * REQUESTS} requests from {CLIENTS} clients in {elapsed:.1f} s")
