"""A minimal client of Dash's callback protocol, for driving a served dashboard without a browser.

Used by the dashboard tests (fuzz, concurrency, served pages), the latency benchmark and the
screenshot script: serve on a free port, wait until it answers, build renderer-shaped requests
for a dependency from ``/_dash-dependencies``, POST them, and read component values back out of a
layout's JSON.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

ENDPOINT = "/_dash-update-component"
PAGES_CALLBACK = ".._pages_content.children..._pages_store.data.."  # Dash pages' own routing callback


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float = 90, process: subprocess.Popen | None = None, poll_s: float = 0.3) -> None:
    """Wait until ``url`` answers (a served dashboard has started); TimeoutError otherwise.

    ``process``: the server's subprocess; its exit is a RuntimeError at once instead of a timeout.
    """
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the dashboard exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(poll_s)
    raise TimeoutError(f"{url} did not answer in {seconds:.0f} s")


def post(base: str, body: dict, query: str = "", timeout: float = 120) -> tuple[int, bytes]:
    """POST a callback request to the server at ``base`` -> (HTTP status, body bytes)."""
    request = urllib.request.Request(base + ENDPOINT + query, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def spec_outputs(output: str) -> list[dict]:
    """Callback id -> the outputs list the renderer sends ("..a.b...c.d.." = several outputs)."""
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    return [dict(zip(("id", "property"), part.split(".", 1))) for part in parts]


def request_body(dep: dict, values: dict, omit: frozenset = frozenset()) -> dict:
    """A renderer-shaped request for dependency ``dep``; ``values`` maps "id.property" to a value;
    props in ``omit`` are sent without a value (as the renderer sends an undefined prop)."""
    def item(spec):
        key = f"{spec['id']}.{spec['property']}"
        if spec["id"].startswith("{"):  # pattern-matching id: concrete components, as the renderer sends
            pattern = json.loads(spec["id"])
            wild = [v[0] for v in pattern.values() if isinstance(v, list)]
            value = values.get(key)
            concrete = [{"id": {k: (i if isinstance(v, list) else v) for k, v in pattern.items()},
                         "property": spec["property"], **({} if key in omit else {"value": value})} for i in range(2)]
            return concrete if "ALL" in wild or "ALLSMALLER" in wild else concrete[0]
        out = {"id": spec["id"], "property": spec["property"]}
        if key not in omit:
            out["value"] = values.get(key)
        return out

    outputs = spec_outputs(dep["output"])
    return {"output": dep["output"], "outputs": outputs if dep["output"].startswith("..") else outputs[0],
            "inputs": [item(s) for s in dep["inputs"]], "state": [item(s) for s in dep.get("state", [])],
            "changedPropIds": [f"{s['id']}.{s['property']}" for s in dep["inputs"]]}


def layout_props(tree, found: dict) -> dict:
    """Every component with an id in a layout's JSON, as "id.prop" -> value (added to ``found``)."""
    if isinstance(tree, dict):
        props = tree.get("props")
        if isinstance(props, dict) and isinstance(props.get("id"), str):
            found.update({f"{props['id']}.{k}": v for k, v in props.items() if k != "children"})
        for value in tree.values():
            layout_props(value, found)
    elif isinstance(tree, list):
        for value in tree:
            layout_props(value, found)
    return found
