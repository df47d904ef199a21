"""``range_positions`` against a loop over the ranges (empty ranges, unsorted and overlapping starts)."""
from __future__ import annotations

import numpy as np

from cva_rec.data.ranges import range_positions


def test_range_positions_equal_a_loop():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(0, 8))
        starts, lengths = rng.integers(0, 30, n), rng.integers(0, 5, n)
        expected = [p for s, k in zip(starts, lengths) for p in range(s, s + k)]
        assert range_positions(starts, lengths).tolist() == expected
    assert range_positions(np.array([], dtype=np.int64), np.array([], dtype=np.int64)).tolist() == []
