"""The compact prefix trie: every item reachable by each of its paths, no path leads to a non-item."""
import numpy as np
import pytest

from cva_rec.errors import ConfigError
from cva_rec.retrieval.trie import CodeTrie


def _codes(n=300, views=3, levels=3, k=5, seed=0):
    return np.random.default_rng(seed).integers(0, k, size=(n, views, levels))


def test_every_item_reachable_by_each_of_its_paths():
    codes = _codes()
    trie = CodeTrie.build(codes, 5)
    for item in range(len(codes)):
        leaves = trie.leaf_of(codes[item])
        assert (leaves >= 0).all()
        for view, leaf in enumerate(leaves):
            lo, hi = trie.leaf_ptr[leaf], trie.leaf_ptr[leaf + 1]
            pairs = set(zip(trie.leaf_items[lo:hi].tolist(), trie.leaf_views[lo:hi].tolist()))
            assert (item, view) in pairs


def test_no_path_leads_to_a_non_item():
    codes = _codes(n=40, views=2, levels=3, k=4, seed=1)
    trie = CodeTrie.build(codes, 4)
    # brute force over every possible path of the code space
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    present = {tuple(p) for p in codes.reshape(-1, 3).tolist()}
    leaves = trie.leaf_of(grid)
    for path, leaf in zip(grid.tolist(), leaves.tolist()):
        assert (leaf >= 0) == (tuple(path) in present)
        if leaf >= 0:  # the leaf's items are exactly those with this path in some view
            items = set(trie.items_of_leaves(np.array([leaf])).tolist())
            assert items == {i for i in range(len(codes)) if (codes[i] == path).all(1).any()}
    assert trie.n_paths == len(present)
    assert sorted(map(tuple, trie.paths().tolist())) == sorted(present)
    assert trie.leaf_ptr[-1] == codes.shape[0] * codes.shape[1]


def test_item_ids_and_children_are_code_sorted_ranges():
    codes = _codes(n=50, views=1, levels=2, k=6, seed=2)
    trie = CodeTrie.build(codes, 6, items=np.arange(50) + 1)  # RecBole ids start at 1
    assert set(trie.leaf_items.tolist()) == set(range(1, 51))
    for level in range(trie.levels):
        ptr, code = trie.child_ptr[level], trie.node_code[level]
        for p in range(len(ptr) - 1):
            assert (np.diff(code[ptr[p]:ptr[p + 1]]) > 0).all()


def test_missing_codes_are_a_clear_error():
    codes = _codes(n=10, views=2, levels=2, k=4)
    codes[3, 1, 0] = -1
    with pytest.raises(ConfigError, match="every item needs a full code path"):
        CodeTrie.build(codes, 4)
    with pytest.raises(ConfigError, match="outside"):
        CodeTrie.build(_codes(n=5, k=9), 4)
