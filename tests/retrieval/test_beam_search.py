"""Trie-constrained beam search: only valid paths; with B >= #paths, the exact likelihood ranking."""
import itertools

import numpy as np
import pytest
import torch

from cva_rec.errors import ConfigError
from cva_rec.retrieval.beam_search import beam_search
from cva_rec.retrieval.candidates import recalled_items
from cva_rec.retrieval.trie import CodeTrie

K, L = 6, 3


class PrefixScorer:
    """A toy decoder: log P(code | prefix, user) from a fixed random table per (user, prefix)."""

    def __init__(self, n_users, seed=0):
        g = torch.Generator().manual_seed(seed)
        n_prefixes = sum(K ** l for l in range(L))
        self.table = torch.log_softmax(torch.randn(n_users, n_prefixes, K, generator=g) * 3, -1)

    def prefix_index(self, prefix):
        level = prefix.shape[1]
        base = sum(K ** l for l in range(level))
        idx = torch.zeros(len(prefix), dtype=torch.long)
        for col in range(level):
            idx = idx * K + prefix[:, col]
        return base + idx

    def __call__(self, level, users, prefix):
        return self.table[users, self.prefix_index(prefix)]


def brute_force(scorer, user, paths):
    """Every distinct path's log-likelihood, by walking its levels one by one (no trie)."""
    out = []
    for path in paths:
        total = 0.0
        for level in range(L):
            prefix = torch.tensor([path[:level]], dtype=torch.long).reshape(1, level)
            total += float(scorer(level, torch.tensor([user]), prefix)[0, path[level]])
        out.append(total)
    return np.array(out)


def _codes(n=60, views=2, seed=3):
    return np.random.default_rng(seed).integers(0, K, size=(n, views, L))


@pytest.mark.parametrize("beam", [1, 4, 17])
def test_beam_search_never_emits_an_invalid_path(beam):
    codes = _codes()
    trie = CodeTrie.build(codes, K)
    res = beam_search(PrefixScorer(5), trie.to("cpu"), 5, beam)
    assert res.leaves.shape == (5, beam) and (res.leaves >= 0).all()
    valid = {tuple(p) for p in codes.reshape(-1, L).tolist()}
    for u in range(5):
        for b in range(beam):
            path = tuple(res.paths[u, b].tolist())
            assert path in valid
            assert trie.leaf_of(np.array([path]))[0] == int(res.leaves[u, b])
        assert (res.scores[u, :-1] >= res.scores[u, 1:]).all()


def test_full_width_beam_recovers_the_exact_ranking():
    codes = _codes()
    trie = CodeTrie.build(codes, K)
    distinct = sorted({tuple(p) for p in codes.reshape(-1, L).tolist()})
    scorer = PrefixScorer(4, seed=7)
    res = beam_search(scorer, trie.to("cpu"), 4, len(distinct))
    for u in range(4):
        ll = brute_force(scorer, u, distinct)
        order = np.argsort(-ll, kind="stable")
        assert [distinct[i] for i in order] == [tuple(p) for p in res.paths[u].tolist()]
        np.testing.assert_allclose(res.scores[u].numpy(), ll[order], rtol=1e-5, atol=1e-5)


def test_a_beam_wider_than_the_trie_is_a_clear_error():
    codes = _codes(n=3, views=1)
    trie = CodeTrie.build(codes, K)
    with pytest.raises(ConfigError, match="wider than the trie allows"):
        beam_search(PrefixScorer(1), trie.to("cpu"), 1, trie.n_paths + 1)


def test_items_follow_beam_order_deduplicated_and_history_dropped():
    # items 1..4; paths: item1 (0,0,0)/(1,1,1), item2 (0,0,0), item3 (2,2,2), item4 (1,1,1)
    codes = np.array([[[0, 0, 0], [1, 1, 1]], [[0, 0, 0], [0, 0, 0]], [[2, 2, 2], [2, 2, 2]], [[1, 1, 1], [1, 1, 1]]])
    trie = CodeTrie.build(codes, K, items=np.arange(1, 5))
    leaves = trie.leaf_of(np.array([[1, 1, 1], [0, 0, 0], [2, 2, 2]]))[None, :].repeat(2, 0)
    got = recalled_items(trie, leaves, 3)
    assert got.tolist() == [[1, 4, 2], [1, 4, 2]]
    # user 0 saw item 1 and 4; user 1 saw item 4 but it is its target
    got = recalled_items(trie, leaves, 3, history=(np.array([0, 0, 1]), np.array([1, 4, 4])), targets=np.array([3, 4]))
    assert got.tolist() == [[2, 3, 0], [1, 4, 2]]
