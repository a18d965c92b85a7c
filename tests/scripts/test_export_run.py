"""scripts/export_run.py: the hardware line of a card for a run resumed with another thread count."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "export_run.py"


def _module():
    spec = importlib.util.spec_from_file_location("export_run", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_threads_line_follows_the_run_segments_up_to_the_shipped_step():
    threads = _module()._threads
    resumed = {"threads": 1, "segments": [{"start_step": 0, "threads": 2}, {"start_step": 4686, "threads": 1}]}
    assert threads(resumed, 9000) == "2 threads to step 4686, then 1 thread"
    assert threads(resumed, 4686) == "2 threads"  # the shipped step was trained before the resume
    assert threads({"threads": 2}, 10) == "2 threads"  # runs from before segments were recorded
    same = {"segments": [{"start_step": 0, "threads": 2}, {"start_step": 50, "threads": 2}]}
    assert threads(same, 100) == "2 threads"
