"""Bad input never breaks the dashboard server: random and malformed payloads to every callback.

Every server-side callback is discovered from the running app (``/_dash-dependencies``), so pages
added later are fuzzed without touching this file. Each callback gets valid requests built from
its page's default layout (the page is rendered through Dash's own pages callback) with some or
all inputs replaced by junk: wrong types, huge / negative numbers, NaN, None, long strings, nested
junk, malformed concept / filter / expression strings, missing values. The server must answer
every such request with 200 or 204 (never a 500, never a traceback in the body), and a valid
request must still answer 200 after each batch.

Background callbacks (``background=True``) answer a first POST with a job handle and are polled
until they finish (as the browser does); they get fewer payloads, because each runs in a worker
process.

Requests that break the Dash protocol itself (unknown output, wrong number of inputs, a body
that is not JSON) are Dash's to reject: for those the test only asks that the server answers
without leaking a traceback and keeps serving valid requests.
"""

from __future__ import annotations

import json
import random
import time

import pytest

pytest.importorskip("dash")
pytest.importorskip("plotly")
pytest.importorskip("captum")  # create_app imports every page; the filters page needs it

from apps.wire_client import ENDPOINT, PAGES_CALLBACK, layout_props, request_body, spec_outputs  # noqa: E402

SEED = 20261128
PER_CALLBACK = 40       # junk payloads per ordinary callback
PER_BACKGROUND = 4      # junk payloads per background callback (each is a worker process)
POLL_SECONDS = 60

JUNK = [
    None, True, False, 0, -1, -(10**30), 10**30, 2**62, 2**63, -(2**63), 1.5, -0.0, 1e308, -1e308, 1e-320,
    float("nan"), float("inf"), float("-inf"),
    "", " ", "NaN", "nan", "inf", "-inf", "1e400", "-1", "0x10", "1_000", "٣", "3.0000000001", "abc",
    "x" * 20_000, "\x00", "\u202e\ufeff", "😀" * 50, "'; DROP TABLE x; --", "{{7*7}}", "<script>alert(1)</script>",
    "../../../../etc/passwd", "/etc", "C:\\Windows", "%00%ff", "?a=1&a=2", "&&&==?", "%ZZ",
    "__import__('os').system('true')", "A - - B", "A +", "+", "-", "A * B", "(A)", "A B", "Z + Q", "A-B+C+" * 500,
    "0:", ":0", "0:6:2", "6:0", "-3:2", "0:999999999999", "1,,2", ",", "0:12, x:y", "0:12, " * 100,
    "99999999999999999999:1", "1:99999999999999999999", "conv99", "layer", "slerp ", "SLERP",
    [], {}, [None], [1, 2, 3], ["0:12"], {"a": 1}, {"props": {"children": "x"}, "type": "Div"},
    [[[[{"deep": [1, {"x": [None]}]}]]]], list(range(1000)),
]

# Strings for the url's search (query string) and pathname, read by every page's layout().
SEARCHES = [
    "", "?", "??", "?=", "?&&&", "?seed", "?seed=", "?seed=-1", "?seed=1e400", "?seed=NaN", "?seed=1&seed=2",
    "?checkpoint=", "?checkpoint=../../etc", "?checkpoint=a&checkpoint=b", "?checkpoint=%00", "?layer=conv99",
    "?filters=0:999", "?filters=,,", "?images=-5", "?images=1e9", "?points=1", "?steps=-1", "?method=evil",
    "?expr=A--", "?A=x:y", "?neighbours=1e9", "?%ZZ=%ZZ", "?a%00b=1", "?" + "x" * 10_000, "?seed=" + "9" * 400,
    "?layout=1", "?checkpoint[]=1", "?__class__=1", "?self=1", "?kwargs=1", "?%E2%80%AE=1",
]
# pathnames as a browser's location gives them (always starting with "/"); others are protocol junk
PATHNAMES = ["/", "/nope", "//", "/../..", "/%00", "/filters/", "/latent/x", "/" + "a" * 5000]
BAD_PATHNAMES = ["", None, 5, [], "filters"]


def _post(client, body, query: str = ""):
    data = json.dumps(body, allow_nan=True)  # NaN / Infinity literals are part of the fuzz
    return client.post(ENDPOINT + query, data=data, content_type="application/json")


def _assert_answered(response, what: str) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code in (200, 204), f"{what}: HTTP {response.status_code}\n{text[:2000]}"
    assert "Traceback (most recent call last)" not in text, f"{what}: traceback in the response\n{text[:2000]}"


def call(client, dep: dict, body: dict):
    """POST a request; a background callback is polled until it has an answer (or a timeout)."""
    response = _post(client, body)
    if not dep.get("background") or response.status_code != 200:
        return response
    handle = response.get_json() or {}
    if "response" in handle or "cacheKey" not in handle:
        return response
    deadline = time.time() + POLL_SECONDS
    query = f"?cacheKey={handle['cacheKey']}&job={handle['job']}"
    while time.time() < deadline:
        response = _post(client, body, query)
        if response.status_code != 200 or "response" in (response.get_json() or {}):
            return response
        time.sleep(0.2)
    raise AssertionError(f"background callback {dep['output']} gave no answer in {POLL_SECONDS} s")


@pytest.fixture(scope="module")
def served(dash_app):
    """(test client, server-side dependencies, default values of every page's components)."""
    import dash

    app, _, _ = dash_app
    client = app.server.test_client()
    deps = [d for d in client.get("/_dash-dependencies").get_json() if not d.get("clientside_function")]
    pages = next(d for d in deps if d["output"] == PAGES_CALLBACK)
    defaults = layout_props(app.layout.to_plotly_json(), {})
    for page in dash.page_registry.values():
        body = request_body(pages, {"_pages_location.pathname": page["relative_path"], "_pages_location.search": ""})
        response = _post(client, body)
        _assert_answered(response, f"layout of {page['relative_path']}")
        defaults.update(layout_props(response.get_json()["response"], {}))
    return client, deps, defaults


def test_every_page_and_callback_is_discovered(served):
    client, deps, defaults = served
    ids = {d["output"] for d in deps}
    # the pages that exist when this file was written; later pages are found the same way
    assert any("ckpt-grid.src" in i for i in ids) and any("latent-walk.src" in i for i in ids)
    assert any("filters-fig5.src" in i for i in ids) and PAGES_CALLBACK in ids
    assert "ckpt-seed.value" in defaults and "latent-method.value" in defaults
    # every page in the registry was rendered: each callback's inputs are found in some layout
    ids = {key.split(".", 1)[0] for key in defaults}
    assert all(any(s["id"] in ids or s["id"].startswith("{") for s in d["inputs"])
               for d in deps if d["output"] != PAGES_CALLBACK)


def test_defaults_answer(served):
    """Every callback answers its page's defaults (the baseline the fuzz batches come back to)."""
    client, deps, defaults = served
    for dep in deps:
        if dep["output"] == PAGES_CALLBACK:
            continue
        _assert_answered(call(client, dep, request_body(dep, defaults)), f"{dep['output']} with defaults")


def _junk(rng: random.Random):
    value = rng.choice(JUNK)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and rng.random() < 0.3:
        value = rng.choice([rng.randint(-5, 70), rng.uniform(-3, 3), str(rng.randint(-5, 70))])
    return value


def test_fuzz_every_callback(served):
    client, deps, defaults = served
    rng = random.Random(SEED)
    crashed = []
    for dep in deps:
        if dep["output"] == PAGES_CALLBACK:
            continue  # test_fuzz_url_and_layouts
        keys = [f"{s['id']}.{s['property']}" for s in [*dep["inputs"], *dep.get("state", [])]]
        n = PER_BACKGROUND if dep.get("background") else PER_CALLBACK
        for i in range(n):
            values = dict(defaults)
            if i == 0:
                chosen = keys  # everything junk
            else:
                chosen = [k for k in keys if rng.random() < 0.5] or [rng.choice(keys)]
            for key in chosen:
                values[key] = _junk(rng)
            omit = frozenset(k for k in keys if i % 7 == 3 and rng.random() < 0.5)  # missing values
            body = request_body(dep, values, omit)
            response = call(client, dep, body)
            if response.status_code not in (200, 204) or b"Traceback (most recent" in response.data:
                sent = {k: (repr(values.get(k))[:120] if k not in omit else "<missing>") for k in keys}
                crashed.append(f"{dep['output']}: HTTP {response.status_code} for {sent}")
        _assert_answered(call(client, dep, request_body(dep, defaults)), f"{dep['output']} after its fuzz batch")
    assert not crashed, "callbacks crashed on bad input:\n" + "\n".join(crashed[:20])


def test_fuzz_url_and_layouts(served):
    """Malformed query strings and paths: every page's layout() still renders (its callbacks then
    say what is wrong)."""
    client, deps, defaults = served
    pages = next(d for d in deps if d["output"] == PAGES_CALLBACK)
    import dash

    paths = [p["relative_path"] for p in dash.page_registry.values()]
    failed = []
    for path in [*paths, *PATHNAMES]:
        for search in SEARCHES:
            response = _post(client, request_body(pages, {"_pages_location.pathname": path,
                                                          "_pages_location.search": search}))
            if response.status_code not in (200, 204) or b"Traceback (most recent" in response.data:
                failed.append(f"pathname={path!r} search={search[:60]!r}: HTTP {response.status_code}")
    assert not failed, "page layouts crashed on a malformed URL:\n" + "\n".join(failed[:20])
    valid = _post(client, request_body(pages, {"_pages_location.pathname": "/", "_pages_location.search": ""}))
    _assert_answered(valid, "the checkpoints page after the URL fuzz")
    assert b"Checkpoints" in valid.data


def test_bad_input_shows_a_visible_message(served):
    """Out-of-range values in a page's main callback give an error box (role=alert), not silence."""
    client, deps, defaults = served
    checked = 0
    for dep in deps:
        outputs = [f"{o['id']}.{o['property']}" for o in spec_outputs(dep["output"])]
        error_out = next((o for o in outputs if o.split(".")[0].endswith("error")), None)
        numeric = [f"{s['id']}.{s['property']}" for s in dep["inputs"]
                   if isinstance(defaults.get(f"{s['id']}.{s['property']}"), (int, float))
                   and not isinstance(defaults.get(f"{s['id']}.{s['property']}"), bool)
                   and not s["property"].startswith("n_")]
        if error_out is None or not numeric:
            continue
        for bad in (-1, 10**30, "NaN", 1.5):
            values = dict(defaults, **{numeric[0]: bad})
            response = call(client, dep, request_body(dep, values))
            _assert_answered(response, f"{dep['output']} with {numeric[0]}={bad!r}")
            error_id, error_prop = error_out.split(".", 1)
            shown = response.get_json()["response"][error_id][error_prop]
            assert shown and shown.get("props", {}).get("role") == "alert", \
                f"{dep['output']}: {numeric[0]}={bad!r} gave no visible message ({str(shown)[:200]})"
            checked += 1
    assert checked >= 3 * 4  # the checkpoints, filters and latent pages at least


def test_protocol_junk_is_rejected_without_traceback(served):
    """Requests that are not Dash requests at all: answered (Dash rejects them) without a traceback,
    and the server keeps serving."""
    client, deps, defaults = served
    grid = next(d for d in deps if "ckpt-grid.src" in d["output"])
    good = request_body(grid, defaults)
    bodies = [
        b"", b"not json", b"{", b"[]", b"null", b'"x"', b"{}", json.dumps({"output": "nope"}).encode(),
        json.dumps({**good, "inputs": []}).encode(), json.dumps({**good, "inputs": good["inputs"][:1]}).encode(),
        json.dumps({**good, "inputs": "junk"}).encode(), json.dumps({**good, "output": None}).encode(),
        json.dumps({**good, "outputs": 5}).encode(), json.dumps({**good, "changedPropIds": [None, 5]}).encode(),
        b"\xff\xfe" * 100,
    ]
    pages = next(d for d in deps if d["output"] == PAGES_CALLBACK)
    bodies += [json.dumps(request_body(pages, {"_pages_location.pathname": p, "_pages_location.search": ""})).encode()
               for p in BAD_PATHNAMES]
    for raw in bodies:
        response = client.post(ENDPOINT, data=raw, content_type="application/json")
        assert 200 <= response.status_code < 600
        assert "Traceback (most recent call last)" not in response.get_data(as_text=True)
        assert client.post(ENDPOINT, json=good).status_code == 200
