"""The small-batch beam search (numpy over the trie's children) returns exactly the dense path's beams."""
import numpy as np
import pytest
import torch

import cva_rec.retrieval.beam_search_small as small_module
from cva_rec.errors import ConfigError
from cva_rec.retrieval.beam_search import beam_search
from cva_rec.retrieval.candidates import recalled_items
from cva_rec.retrieval.generative_retriever import GenerativeRetriever
from cva_rec.retrieval.multiview_tokenizer import SharedCodebook
from cva_rec.retrieval.reranker_context import RerankerContextRetriever
from cva_rec.retrieval.trie import CodeTrie

from tests.retrieval.test_beam_search import PrefixScorer, _codes


def _same(a, b):
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        assert torch.equal(x, y)


def _random_trie(n=500, k=16, views=2, levels=3, seed=5):
    codes = np.random.default_rng(seed).integers(0, k, size=(n, views, levels))
    return CodeTrie.build(codes, k, items=np.arange(1, n + 1))


def test_random_catalogue_has_full_and_sparse_levels():
    tt = _random_trie().to("cpu")
    assert tt.full_levels[0] and not tt.full_levels[-1]  # both branches of the small path are exercised below


@pytest.mark.parametrize("n_users", [1, 3])
@pytest.mark.parametrize("beam", [1, 4, 17, "all"])
def test_toy_catalogue_prefix_dependent_decoder(n_users, beam):
    trie = CodeTrie.build(_codes(), 6)  # K = 6: B = 17 is wider than a level, so the dense path pads with -inf
    tt = trie.to("cpu")
    beam = trie.n_paths if beam == "all" else beam
    scorer = PrefixScorer(n_users, seed=11)
    _same(beam_search(scorer, tt, n_users, beam, small=True), beam_search(scorer, tt, n_users, beam, small=False))


@pytest.mark.parametrize("n_users", [1, 3])
@pytest.mark.parametrize("beam", [1, 10, 50, "all"])
def test_random_catalogue_reranker_context(n_users, beam):
    trie = _random_trie()
    tt = trie.to("cpu")
    beam = trie.n_paths if beam == "all" else beam
    torch.manual_seed(0)
    retriever = RerankerContextRetriever(torch.randn(3, 16, 8))
    u = torch.randn(n_users, 8) * 3
    logp = retriever.level_log_probs(u)
    dense = beam_search(logp, tt, n_users, beam, small=False)
    _same(beam_search(logp, tt, n_users, beam, small=True), dense)  # the [U, L, K] table route
    _same(beam_search(lambda lv, users, prefix: logp[users, lv], tt, n_users, beam, small=True), dense)  # StepFn route
    _same(retriever.recall(u, tt, beam), dense)  # what two-stage evaluation calls


@pytest.mark.parametrize("n_users", [1, 2])
@pytest.mark.parametrize("beam", [5, 50])
def test_random_catalogue_learned_grdr_decoder(n_users, beam):
    trie = _random_trie(seed=9)
    tt = trie.to("cpu")
    torch.manual_seed(1)
    codebook = SharedCodebook(3, 16, 8)
    grdr = GenerativeRetriever(501, 8, 3, None, hidden=16, layers=1, heads=2, max_len=10).eval()
    with torch.no_grad():
        u = grdr.user_context(torch.randint(1, 501, (n_users, 10)), torch.full((n_users,), 10))

        def step(level, rows, prefix):
            return grdr.level_log_probs(u[rows], prefix, codebook)

        _same(beam_search(step, tt, n_users, beam, small=True), beam_search(step, tt, n_users, beam, small=False))


def test_small_batches_take_the_small_path_and_big_ones_do_not(monkeypatch):
    tt = _random_trie().to("cpu")
    logp = torch.log_softmax(torch.randn(64, 3, 16), -1)
    calls = []
    real = small_module.beam_search_small
    monkeypatch.setattr(small_module, "beam_search_small", lambda *a: calls.append(a[2]) or real(*a))
    beam_search(logp[:1], tt, 1, 10)
    beam_search(logp, tt, 64, 10)
    assert beam_search(logp[:0], tt, 0, 10).leaves.shape == (0, 10)  # an empty batch stays on the dense path
    assert calls == [1]


def test_a_beam_wider_than_the_trie_is_refused_on_the_small_path_too():
    trie = CodeTrie.build(_codes(n=3, views=1), 6)
    with pytest.raises(ConfigError, match="wider than the trie allows"):
        beam_search(PrefixScorer(1), trie.to("cpu"), 1, trie.n_paths + 1, small=True)


def test_one_user_candidates_equal_the_batched_mapping():
    trie = _random_trie(n=300, k=4, views=4, seed=2)  # ~5 items per leaf: collisions and repeats across views
    rng = np.random.default_rng(4)
    for _ in range(20):
        leaves = rng.choice(trie.n_paths, size=12, replace=False)
        leaves[rng.random(12) < 0.2] = -1
        seen = rng.choice(np.arange(1, 301), size=40, replace=False)
        target = int(seen[0]) if rng.random() < 0.5 else int(rng.integers(1, 301))
        one = recalled_items(trie, leaves[None], 25, (np.zeros(40, dtype=np.int64), seen), np.array([target]))
        # the batched path on two copies of the user (rows 0 and 1, the same history)
        two = recalled_items(trie, np.stack([leaves, leaves]), 25,
                             (np.repeat([0, 1], 40), np.tile(seen, 2)), np.array([target, target]))
        assert one.tolist() == two[:1].tolist()
        assert recalled_items(trie, leaves[None], 25).tolist() == recalled_items(trie, np.stack([leaves, leaves]), 25)[:1].tolist()
