"""exact_duplicates (a sort and a neighbour comparison) marks the rows pandas' duplicated() marks."""
import numpy as np
import pandas as pd
import pytest

from cva_rec.data.streaming.inter_file import RawLog
from cva_rec.data.streaming.sequences import exact_duplicates


@pytest.mark.parametrize("n", [0, 1, 2, 7, 5000])
def test_repeats_after_the_first_in_file_order_equal_pandas(n):
    rng = np.random.default_rng(n)
    u = rng.integers(0, 12, n).astype(np.int32)
    i = rng.integers(0, 9, n).astype(np.int32)
    t = rng.integers(0, 4, n).astype(np.float64) / 3  # few distinct times: many exact repeats
    ours = exact_duplicates(RawLog(u, i, t, [], []))
    assert np.array_equal(ours, pd.DataFrame({"u": u, "i": i, "t": t}).duplicated(keep="first").to_numpy())


def test_the_same_pair_at_another_time_is_not_a_repeat():
    raw = RawLog(np.array([1, 1, 1, 2], np.int32), np.array([5, 5, 5, 5], np.int32), np.array([3.0, 4.0, 3.0, 3.0]), [], [])
    assert exact_duplicates(raw).tolist() == [False, False, True, False]
