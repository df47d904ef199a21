"""Histories are views into the sequences (no copy) and read as the same items as a plain loop."""
import numpy as np

from cva_rec.data.histories import UserSequences


def _sequences(seed=0, n_users=30):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 9, n_users)
    seqs = [rng.integers(1, 50, n).tolist() for n in lengths]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return UserSequences(indptr, np.array([i for s in seqs for i in s], dtype=np.int32)), seqs


def test_prefix_histories_equal_a_loop_and_share_the_items_array():
    us, seqs = _sequences()
    for drop, hist in ((2, us.valid_history()), (1, us.test_history())):
        assert np.shares_memory(hist.of(int(np.argmax(us.lengths))), us.items)  # a view, not a copy
        for u, seq in enumerate(seqs):
            assert hist.of(u).tolist() == seq[: max(len(seq) - drop, 0)]
        # compact CSR for callers that want it, built from the same items
        assert hist.indptr[-1] == sum(max(len(s) - drop, 0) for s in seqs)
        assert hist.items.tolist() == [i for s in seqs for i in s[: max(len(s) - drop, 0)]]
        users = np.array([3, 0, 7, 3])
        rows, items = hist.index_pairs(users)
        expected = [(r, i) for r, u in enumerate(users) for i in seqs[u][: max(len(seqs[u]) - drop, 0)]]
        assert list(zip(rows.tolist(), items.tolist())) == expected
