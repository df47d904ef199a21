"""The reranker-context retriever: codes of the reranker's item table, paths scored by its user state."""
import numpy as np
import pytest
import torch

from cva_rec.errors import ConfigError
from cva_rec.retrieval.reranker_context import (RerankerContextRetriever, check_same_table, fit_table_codes,
                                                multiview_residual_codes, table_fingerprint)
from cva_rec.retrieval.trie import CodeTrie
from cva_rec.semantic_ids.rq_kmeans import RQKMeans


def _table(n=120, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n + 1, d, generator=g)


def test_views_are_distinct_paths_through_one_codebook():
    table = _table()
    centroids, codes = fit_table_codes(table, levels=2, codes=8, views=3, seed=0, iters=10)
    assert centroids.shape == (2, 8, 6) and codes.shape == (121, 3, 2)
    assert (codes[0] == -1).all() and (codes[1:] >= 0).all() and (codes[1:] < 8).all()
    # view 0 = greedy residual k-means, the codes RQ-KMeans itself assigns
    rq = RQKMeans(levels=2, codes=8, iters=10, seed=0).fit(table[1:])
    assert torch.equal(codes[1:, 0], rq.encode(table[1:]))
    # view v starts at the v-th nearest level-1 centroid: the views never share a first code
    first = codes[1:, :, 0]
    assert (first[:, 0] != first[:, 1]).all() and (first[:, 1] != first[:, 2]).all() and (first[:, 0] != first[:, 2]).all()
    d1 = ((table[1:, None, :] - centroids[0][None]) ** 2).sum(-1)
    assert (d1.gather(1, first[:, :1]) <= d1.gather(1, first[:, 1:2])).all()
    with pytest.raises(ConfigError, match="views must be in"):
        multiview_residual_codes(table[1:], centroids, 9)


def test_beam_as_wide_as_the_trie_ranks_paths_by_the_reranker_score():
    table = _table()
    centroids, codes = fit_table_codes(table, levels=3, codes=4, views=2, seed=1, iters=10)
    trie = CodeTrie.build(codes[1:], 4, items=np.arange(1, 121))
    retriever = RerankerContextRetriever(centroids, table_fingerprint(table))
    users = torch.randn(5, 6, generator=torch.Generator().manual_seed(3))
    res = retriever.recall(users, trie.to("cpu"), trie.n_paths)
    # reference written separately in numpy: log-likelihood = u . reconstruction - sum_l logsumexp_l(u . C_l)
    c = centroids.numpy().astype(np.float64)
    u = users.numpy().astype(np.float64)
    paths = trie.paths()
    recon = sum(c[level][paths[:, level]] for level in range(3))  # [P, d]
    log_z = sum(np.log(np.exp(u @ c[level].T).sum(1)) for level in range(3))  # [U]
    expected = u @ recon.T - log_z[:, None]  # [U, P]
    for user in range(5):
        order = np.argsort(-expected[user], kind="stable")
        got = res.scores[user].numpy()
        np.testing.assert_allclose(got, expected[user][order], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(expected[user][res.leaves[user].numpy()], got, rtol=1e-4, atol=1e-4)
    # the path order is the order of the reranker's dot product with each path's reconstruction
    assert (np.diff((u @ recon.T)[np.arange(5)[:, None], res.leaves.numpy()], axis=1) <= 1e-4).all()


def test_narrow_beam_only_emits_trie_paths():
    table = _table(n=300, d=8)
    centroids, codes = fit_table_codes(table, levels=3, codes=8, views=2, seed=0, iters=5)
    trie = CodeTrie.build(codes[1:], 8, items=np.arange(1, 301))
    retriever = RerankerContextRetriever(centroids, table_fingerprint(table))
    users = torch.randn(7, 8)
    res = retriever.recall(users, trie.to("cpu"), 10)
    assert (trie.leaf_of(res.paths.reshape(-1, 3).numpy()) == res.leaves.reshape(-1).numpy()).all()
    assert (res.leaves >= 0).all() and (np.diff(res.scores.numpy(), axis=1) <= 0).all()


def test_another_table_is_refused():
    table = _table()
    retriever = RerankerContextRetriever(torch.zeros(2, 4, 6), table_fingerprint(table))
    check_same_table(retriever, table.clone())
    other = table.clone()
    other[5, 0] += 1e-3
    with pytest.raises(ConfigError, match="another reranker's item table"):
        check_same_table(retriever, other)
