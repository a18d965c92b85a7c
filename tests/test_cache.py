from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcgan_viz.cache import cache_key, cached


@dataclass
class _Result:
    values: np.ndarray
    score: float
    table: dict


def test_cached_round_trip_and_key_changes(tmp_path: Path) -> None:
    calls = []

    def compute() -> _Result:
        calls.append(1)
        return _Result(np.arange(4.0), 0.5, {"window": [1, 2]})

    key = cache_key("dissect", checkpoint="abc", layer="conv3")
    first = cached(tmp_path, key, _Result, compute)
    second = cached(tmp_path, key, _Result, compute)
    assert len(calls) == 1 and np.array_equal(second.values, first.values) and second.table == {"window": [1, 2]}
    assert cache_key("dissect", checkpoint="abc", layer="conv4") != key
    (tmp_path / f"{key}.npz").write_bytes(b"corrupt")  # a damaged cache entry is recomputed, not trusted
    cached(tmp_path, key, _Result, compute)
    assert len(calls) == 2
