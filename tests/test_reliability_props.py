"""Property tests (Hypothesis): a mutated checkpoint.json or run directory is either still usable or
refused with exit 2 and one line starting ``error:``: never a traceback, never unbounded memory.

Memory is bounded for real: each example runs under an address-space limit of the current size plus
1 GiB, so a config asking for terabytes would fail with MemoryError, and the test would see
"out of memory" instead of the up-front refusal it requires.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dcgan_viz.checkpoint import run_checkpoints, save_checkpoint
from dcgan_viz.cli import app
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import ModelConfig, build_models

runner = CliRunner()
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                derandomize=True, database=None)  # no .hypothesis/ directory left behind


@contextlib.contextmanager
def bounded_memory(extra: int = 1 << 30):
    """Address space limited to what the process maps now plus ``extra`` bytes (Linux)."""
    try:
        with open("/proc/self/status") as fh:
            vm = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmSize:"))
    except (OSError, StopIteration):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + extra if hard == resource.RLIM_INFINITY else min(vm + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def check_outcome(res, allow_ok: bool) -> None:
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if res.exit_code == 0 and allow_ok:
        return
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "out of memory" not in lines[0]  # refused up front, not after trying to allocate


# -- values -------------------------------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
not_int = st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=8), st.lists(scalars, max_size=3),
                    st.dictionaries(st.text(max_size=4), scalars, max_size=3))
huge = st.integers(min_value=5000, max_value=10**30) | st.integers(max_value=0, min_value=-(10**30))


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8, nc=3)
    G, D = build_models(cfg)
    return save_checkpoint(tmp_path_factory.mktemp("tpl") / "ck", G, D, data=DataSpec(source="rooms", size=32, count=64),
                           step=4, epoch=1, metrics={"loss_d": 1.0}, train={"batch_size": 16})


def _invoke(verb: str, ckpt: Path, text: str):
    (ckpt / "checkpoint.json").write_text(text)
    args = [verb, str(ckpt)] + (["--device", "cpu", "--n", "4", "--out", str(ckpt.parent / "s.png")]
                                if verb == "sample" else [])
    with bounded_memory():
        return runner.invoke(app, args)


@contextlib.contextmanager
def copy_of(template: Path):
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ck"
        shutil.copytree(template, ckpt)
        yield ckpt


# -- checkpoint.json: anything goes -> usable or one-line refusal ----------------------------------------------------


@st.composite
def any_mutation(draw, meta: dict) -> str:
    meta = json.loads(json.dumps(meta))
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(meta)))
        target, key = (meta, section)
        if isinstance(meta[section], dict) and meta[section] and draw(st.booleans()):
            target, key = meta[section], draw(st.sampled_from(sorted(meta[section])))
        if draw(st.booleans()):
            target.pop(key)
        else:
            target[key] = draw(json_values)
        if section not in meta:
            break
    return json.dumps(meta)


@pytest.mark.parametrize("verb", ["info", "sample"])
@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_any_mutation_is_usable_or_one_line_refusal(template: Path, verb: str, data: st.DataObject) -> None:
    meta = json.loads((template / "checkpoint.json").read_text())
    text = data.draw(any_mutation(meta))
    with copy_of(template) as ckpt:
        check_outcome(_invoke(verb, ckpt, text), allow_ok=True)


# -- checkpoint.json: invalid by construction -> always exit 2 --------------------------------------------------------


@st.composite
def invalid_mutation(draw, meta: dict) -> str:
    meta = json.loads(json.dumps(meta))
    kind = draw(st.sampled_from(["model_type", "model_range", "section", "version", "drop", "deep", "data_type"]))
    if kind == "model_type":
        meta["model"][draw(st.sampled_from(["image_size", "nz", "ngf", "ndf", "nc"]))] = draw(not_int)
    elif kind == "model_range":
        meta["model"][draw(st.sampled_from(["nz", "ngf", "ndf"]))] = draw(huge)
    elif kind == "section":
        value = draw(st.one_of(st.text(min_size=1, max_size=8), st.integers().filter(bool),
                               st.lists(scalars, min_size=1, max_size=3)))
        meta[draw(st.sampled_from(["model", "data", "train", "metrics"]))] = value
    elif kind == "version":
        meta["format_version"] = draw(st.one_of(not_int, st.integers(max_value=0), st.integers(min_value=2)))
    elif kind == "drop":
        meta.pop(draw(st.sampled_from(["format", "format_version", "model"])))
    elif kind == "data_type":
        meta["data"][draw(st.sampled_from(["size", "seed"]))] = draw(not_int)
    else:
        return json.dumps(meta).replace('"metrics": {', '"metrics": {"x": ' + deep(draw(st.integers(40, 200_000))) + ", ")
    return json.dumps(meta)


@pytest.mark.parametrize("verb", ["info", "sample"])
@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_invalid_checkpoint_json_is_refused_in_one_line(template: Path, verb: str, data: st.DataObject) -> None:
    meta = json.loads((template / "checkpoint.json").read_text())
    text = data.draw(invalid_mutation(meta))
    with copy_of(template) as ckpt:
        check_outcome(_invoke(verb, ckpt, text), allow_ok=False)


# -- a run directory: mutated, then resumed -> an exact continuation or a one-line refusal ----------------------------

TRAIN = ["--data", "rooms:count=32,test_count=8", "--image-size", "32", "--ngf", "8", "--ndf", "8", "--nz", "16",
         "--batch-size", "16", "--device", "cpu", "--no-progress", "--checkpoint-every", "2", "--keep-checkpoints", "3"]


@pytest.fixture(scope="module")
def run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runtpl") / "R"
    res = runner.invoke(app, ["train", *TRAIN, "--max-steps", "4", "--out", str(run)])
    assert res.exit_code == 0, res.output
    return run


RUN_MUTATIONS = ["log_cut", "log_garbage_line", "log_append", "weights_cut", "weights_flip", "drop_file", "run_json",
                 "checkpoint_json", "drop_run_json", "stale_temp"]


@st.composite
def run_mutation(draw):
    return [(draw(st.sampled_from(RUN_MUTATIONS)), draw(st.integers(0, 10**6)), draw(json_values))
            for _ in range(draw(st.integers(1, 2)))]


def _apply(run: Path, kind: str, n: int, value) -> None:
    newest = run_checkpoints(run)[-1] if run_checkpoints(run) else None
    log = run / "log.jsonl"
    if kind == "log_cut" and log.exists():
        data = log.read_bytes()
        log.write_bytes(data[: n % (len(data) + 1)])
    elif kind == "log_garbage_line" and log.exists():
        lines = log.read_text().splitlines()
        if lines:
            lines[n % len(lines)] = json.dumps(value)[:30]
            log.write_text("\n".join(lines) + "\n")
    elif kind == "log_append" and log.exists():
        with open(log, "a") as fh:
            fh.write(json.dumps(value)[: n % 50])
    elif kind in ("weights_cut", "weights_flip") and newest is not None:
        w = newest / "model.safetensors"
        data = bytearray(w.read_bytes())
        if kind == "weights_cut":
            data = data[: n % len(data)]
        else:
            data[n % len(data)] ^= 0x5A
        w.write_bytes(bytes(data))
    elif kind == "drop_file" and newest is not None:
        (newest / ["model.safetensors", "train_state.pt", "checkpoint.json"][n % 3]).unlink(missing_ok=True)
    elif kind in ("run_json", "checkpoint_json"):
        path = run / "run.json" if kind == "run_json" else (newest / "checkpoint.json" if newest else None)
        if path is not None and path.exists():
            obj = json.loads(path.read_text())
            section = sorted(obj)[n % len(obj)]
            obj[section] = value
            path.write_text(json.dumps(obj))
    elif kind == "drop_run_json":
        (run / "run.json").unlink(missing_ok=True)
    elif kind == "stale_temp":
        (run / "checkpoints" / ".step-00000006.tmp-999999999").mkdir(exist_ok=True)


@pytest.mark.slow
@settings(max_examples=12, **SETTINGS)
@given(mutations=run_mutation())
def test_mutated_run_directory_resumes_exactly_or_refuses(run_template: Path, mutations) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "R"
        shutil.copytree(run_template, run)
        for kind, n, value in mutations:
            _apply(run, kind, n, value)
        with bounded_memory(2 << 30):
            res = runner.invoke(app, ["train", "--out", str(run), "--resume", "--max-steps", "6", "--no-progress"])
        check_outcome(res, allow_ok=True)
        if res.exit_code == 0:
            steps = [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()]
            assert steps == sorted(set(steps)) and steps[-2:] == [5, 6], steps  # nothing mixed, nothing repeated
            if not any(kind.startswith("log") for kind, _, _ in mutations):
                assert steps == list(range(1, 7)), steps  # lines lost from the log itself cannot come back
            assert (run / "checkpoints" / "step-00000006" / "checkpoint.json").is_file()
            assert not (run / "checkpoints" / ".step-00000006.tmp-999999999").exists()
