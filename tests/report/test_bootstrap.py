"""The paired bootstrap over users (cva_rec.report.bootstrap) against hand-computed cases and a plain loop."""
import math

import numpy as np
import pytest

from cva_rec.errors import DataError
from cva_rec.report import bootstrap


def test_interval_by_hand_two_users_every_resample():
    # two users with differences 0 and 1; the four equally likely resamples of two users, sorted means
    # 0, .5, .5, 1: numpy's percentile interpolates linearly between order statistics at position p/100 * 3
    indices = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    iv = bootstrap.paired_interval(np.array([0.0, 1.0]), indices)
    assert iv["delta"] == 0.5
    assert iv["low"] == pytest.approx(0.075 * 0.5)  # 2.5th percentile: between 0 and .5 at 0.075
    assert iv["high"] == pytest.approx(1.0 - 0.075 * 0.5)
    assert iv["includes_zero"] is False and iv["n_users"] == 2
    same = bootstrap.paired_interval(np.array([-0.25, -0.25, -0.25]), bootstrap.resample_indices(3, 50))
    assert same["low"] == same["high"] == -0.25 and not same["includes_zero"]


def test_interval_against_a_plain_loop_with_the_same_resamples():
    rng = np.random.default_rng(5)
    delta = rng.normal(0.01, 0.2, size=37)
    indices = bootstrap.resample_indices(37, 400, seed=3)
    means = sorted(sum(delta[i] for i in row) / len(row) for row in indices)

    def percentile(p):  # linear interpolation between order statistics, written out
        pos = p / 100 * (len(means) - 1)
        lo = math.floor(pos)
        return means[lo] + (pos - lo) * (means[min(lo + 1, len(means) - 1)] - means[lo])

    iv = bootstrap.paired_interval(delta, indices)
    assert iv["low"] == pytest.approx(percentile(2.5), abs=1e-12)
    assert iv["high"] == pytest.approx(percentile(97.5), abs=1e-12)
    assert iv["includes_zero"] == (iv["low"] <= 0 <= iv["high"])


def test_metrics_of_ranks_and_the_random_baseline_by_hand():
    ranks = np.array([0, 1, 9, 10])
    assert bootstrap.metric_of_ranks(ranks, "ndcg@10").tolist() == pytest.approx([1.0, 1 / math.log2(3), 1 / math.log2(11), 0.0])
    assert bootstrap.metric_of_ranks(ranks, "hr@10").tolist() == [1, 1, 1, 0]
    # 3 candidates: the target is at rank 0, 1 or 2 with probability 1/3 each
    assert bootstrap.random_rank_metric(np.array([3]), "ndcg@10")[0] == pytest.approx((1 + 1 / math.log2(3) + 0.5) / 3)
    assert bootstrap.random_rank_metric(np.array([101, 3]), "hr@10").tolist() == pytest.approx([10 / 101, 1.0])


def _write(path, tokens, ranks, cold=None):
    n = len(tokens)
    np.savez(path, user=np.arange(n), user_token=np.array(tokens), target=np.ones(n, dtype=np.int64),
             rank=np.array(ranks), n_candidates=np.full(n, 100), cold=np.zeros(n, bool) if cold is None else np.array(cold))
    return path


def test_pairing_uses_the_same_users_whatever_the_file_order(tmp_path):
    ref = bootstrap.load_per_user(_write(tmp_path / "ref.npz", ["u1", "u2", "u3"], [0, 5, 30], [False, True, True]))
    # the same users written in another order, with two seeds
    var = [bootstrap.load_per_user(_write(tmp_path / "v1.npz", ["u3", "u1", "u2"], [0, 0, 30])),
           bootstrap.load_per_user(_write(tmp_path / "v2.npz", ["u2", "u3", "u1"], [1, 0, 0]))]
    nd = lambda r: 1 / math.log2(r + 2) if r < 10 else 0.0  # noqa: E731
    # per user: variant averaged over its two seeds minus the reference
    expected = {"u1": nd(0) - nd(0), "u2": (0 + nd(1)) / 2 - nd(5), "u3": nd(0) - 0.0}
    got = bootstrap.compare([ref], {"v": var}, "ndcg@10", n_resamples=200)["v"]
    assert got["delta"] == pytest.approx(sum(expected.values()) / 3)
    cold = bootstrap.compare([ref], {"v": var}, "ndcg@10", part="cold", n_resamples=200)["v"]
    assert cold["n_users"] == 2 and cold["delta"] == pytest.approx((expected["u2"] + expected["u3"]) / 2)
    other = bootstrap.load_per_user(_write(tmp_path / "o.npz", ["u1", "u2", "u9"], [0, 0, 0]))
    with pytest.raises(DataError, match="tested users differ"):
        bootstrap.compare([ref], {"o": [other]})


def test_every_row_gets_the_same_resamples(tmp_path):
    tokens = [f"u{i}" for i in range(50)]
    rng = np.random.default_rng(0)
    ref = bootstrap.load_per_user(_write(tmp_path / "r.npz", tokens, rng.integers(0, 30, 50)))
    a = bootstrap.load_per_user(_write(tmp_path / "a.npz", tokens, rng.integers(0, 30, 50)))
    out = bootstrap.compare([ref], {"a": [a], "a again": [a]}, n_resamples=300)
    assert out["a"] == out["a again"]
    indices = bootstrap.resample_indices(50, 300)
    delta = a.metric("ndcg@10") - ref.metric("ndcg@10")
    assert out["a"] == bootstrap.paired_interval(delta, indices)
    assert bootstrap.interval_cell(out["a"]).endswith(" ~0") == out["a"]["includes_zero"]
