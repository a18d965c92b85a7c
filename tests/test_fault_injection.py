"""Fault injection: training and prepare are killed (SIGKILL) at random, seeded moments again and
again; every restart must continue exactly (the final weights / images equal an uninterrupted run's,
every log step appears once) and nothing may be left behind (no temporary files or directories).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "tests" / "helpers" / "train_tiny.py"
STEPS = 30
ENV = {**os.environ, "CKPT_EVERY": "3", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _leftovers(root: Path) -> list[str]:
    """Temporary names (the toolkit's: a leading dot with .tmp/.old) anywhere under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if ".tmp" in p.name or ".old" in p.name)


def _kill_when(proc: subprocess.Popen, ready, delay: float, timeout: float = 120) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after ``ready()`` holds; False if it finished first."""
    deadline = time.time() + timeout
    while proc.poll() is None and not ready() and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def _log_lines(run: Path) -> int:
    try:
        return (run / "log.jsonl").read_bytes().count(b"\n")
    except OSError:
        return 0


def _strip(log: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(ln).items() if k != "img_per_s"} for ln in log.read_text().splitlines()]


@pytest.mark.slow
def test_training_killed_at_random_resumes_exactly(tmp_path: Path) -> None:
    rng = random.Random(18)
    subprocess.run([sys.executable, str(HELPER), str(tmp_path / "full"), str(STEPS), "--dump", str(tmp_path / "full.st")],
                   check=True, env=ENV, capture_output=True, timeout=300)
    run = tmp_path / "killed"
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, str(HELPER), str(run), str(STEPS), "--resume-if-any"], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        target = _log_lines(run) + rng.randint(0, 8)
        kills += _kill_when(proc, lambda: _log_lines(run) >= target, rng.uniform(0, 0.03))
        if proc.returncode not in (0, -signal.SIGKILL):
            pytest.fail(f"restart failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    assert kills >= 3
    subprocess.run([sys.executable, str(HELPER), str(run), str(STEPS), "--resume-if-any", "--dump", str(tmp_path / "r.st")],
                   check=True, env=ENV, capture_output=True, timeout=300)
    full, resumed = load_file(str(tmp_path / "full.st")), load_file(str(tmp_path / "r.st"))
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)
    assert _strip(run / "log.jsonl") == _strip(tmp_path / "full" / "log.jsonl")  # every step once, same numbers
    assert _leftovers(run) == []


def _prepare(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dcgan_viz.cli", "prepare", "rooms:count=1000", "--size", "32",
                             "--out", str(out), "--no-progress"], env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_prepare_killed_at_random_leaves_nothing_and_finishes_exactly(tmp_path: Path) -> None:
    rng = random.Random(10)
    (tmp_path / "ref").mkdir()
    ref_writing = lambda: any(p.name.startswith(".D.") for p in (tmp_path / "ref").iterdir())  # noqa: E731
    ref = _prepare(tmp_path / "ref" / "D")
    while ref.poll() is None and not ref_writing():
        time.sleep(0.005)
    started = time.time()
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()
    write_seconds = max(time.time() - started, 0.05)  # how long a prepare writes on this machine, now
    parent = tmp_path / "work"
    parent.mkdir()
    out = parent / "D"
    writing = lambda: any(p.name.startswith(".D.") for p in parent.iterdir())  # noqa: E731
    kills = attempts = 0
    while kills < 2 and attempts < 8:  # random moments inside the writing phase, however fast the machine
        attempts += 1
        proc = _prepare(out)
        kills += _kill_when(proc, writing, rng.uniform(0, 0.9) * write_seconds)
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
        # killed or not, what is there is either nothing or a complete cache
        assert not out.exists() or (out / "manifest.json").is_file()
        if proc.returncode == 0:  # it finished first: start over, or the next prepare just reuses the cache
            shutil.rmtree(out)
    assert kills >= 2
    final = _prepare(out)
    assert final.wait(timeout=300) == 0, final.stderr.read().decode()
    assert (out / "images.u8").read_bytes() == (tmp_path / "ref" / "D" / "images.u8").read_bytes()
    manifest, reference = (json.loads((d / "manifest.json").read_text()) for d in (out, tmp_path / "ref" / "D"))
    assert manifest["content_hash"] == reference["content_hash"]
    assert sorted(p.name for p in parent.iterdir()) == ["D"] and _leftovers(parent) == []
    assert np.fromfile(out / "images.u8", dtype=np.uint8).size == 1000 * 32 * 32 * 3
