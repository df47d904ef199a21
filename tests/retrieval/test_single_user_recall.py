"""The inference shortcuts of GRDR recall (last block at the last position only, a decoder step with the
codebook normalised once) return what the training-time modules compute, and one user at a time recalls
the same paths as the batched dense reference."""
import numpy as np
import pytest
import torch
from torch import nn

from cva_rec.retrieval import last_state
from cva_rec.retrieval.beam_search import beam_search
from cva_rec.retrieval.candidates import recalled_items
from cva_rec.retrieval.generative_retriever import GenerativeRetriever
from cva_rec.retrieval.grdr import GRDR
from cva_rec.retrieval.multiview_tokenizer import SharedCodebook
from cva_rec.retrieval.trie import CodeTrie


def _histories(n_users, t, n_items, seed):
    """Left-aligned histories with lengths 1..t (zeros after the last item) and their lengths."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, n_items, (n_users, t), generator=g)
    lens = torch.randint(1, t + 1, (n_users,), generator=g)
    lens[0] = t  # one full history: the path without a key mask
    seq[torch.arange(t)[None, :] >= lens[:, None]] = 0
    return seq, lens


def _reference_context(model, seq, lens, content=None):
    """The encoder's state at each user's last item, every position computed (the training-time forward)."""
    states = model.sequence_states(seq, content)
    return states[torch.arange(len(lens)), lens - 1]


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_user_context_is_the_encoder_state_at_the_last_item(layers):
    torch.manual_seed(layers)
    content = torch.randn(101, 12)
    model = GenerativeRetriever(101, 8, 2, 12, hidden=16, layers=layers, heads=2, max_len=9).eval()
    seq, lens = _histories(7, 9, 101, seed=layers)
    with torch.no_grad():
        fast = model.user_context(seq, lens, content)
        ref = _reference_context(model, seq, lens, content)
        one = torch.cat([model.user_context(seq[i:i + 1], lens[i:i + 1], content) for i in range(7)])
    torch.testing.assert_close(fast, ref, atol=2e-6, rtol=2e-6)
    torch.testing.assert_close(one, ref, atol=2e-6, rtol=2e-6)


def test_the_last_block_runs_one_row_per_user(monkeypatch):
    torch.manual_seed(0)
    model = GenerativeRetriever(51, 8, 2, None, hidden=16, layers=2, heads=2, max_len=10).eval()
    rows, real = [], last_state._feed_forward
    monkeypatch.setattr(last_state, "_feed_forward", lambda layer, x: rows.append(tuple(x.shape)) or real(layer, x))
    with torch.no_grad():
        model.user_context(*_histories(3, 10, 51, seed=1))
    assert rows == [(3, 10, 16), (3, 16)]  # the first block's feed-forward at every position, the last one's once per user


def test_training_mode_and_other_layouts_keep_the_encoder():
    torch.manual_seed(0)
    model = GenerativeRetriever(51, 8, 2, None, hidden=16, layers=2, heads=2, max_len=10, dropout=0.0)
    seq, lens = _histories(3, 10, 51, seed=2)
    torch.testing.assert_close(model.train().user_context(seq, lens), _reference_context(model, seq, lens))
    post_ln = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, norm_first=False), 2,
                                    enable_nested_tensor=False)
    assert last_state.supported(model.blocks) and not last_state.supported(post_ln)


@pytest.mark.parametrize("n_users", [1, 4])
def test_decoder_step_is_level_log_probs_and_follows_codebook_updates(n_users):
    torch.manual_seed(3)
    codebook = SharedCodebook(3, 16, 8)
    model = GenerativeRetriever(51, 8, 3, None, hidden=16, layers=1, heads=2, max_len=10).eval()
    u = torch.randn(n_users, 16)
    users = torch.arange(n_users).repeat_interleave(5)
    with torch.no_grad():
        for level in range(3):
            prefix = torch.randint(0, 16, (len(users), level))
            assert torch.equal(model.decoder(u, codebook)(level, users, prefix),
                               model.level_log_probs(u[users], prefix, codebook))
        prefix = torch.randint(0, 16, (len(users), 1))
        before = model.decoder(u, codebook)(1, users, prefix)
        codebook.books[1].mul_(-1.0)  # a training step changes the codebook in place: the cached copy is stale
        after = model.decoder(u, codebook)(1, users, prefix)
    assert not torch.equal(before, after)
    assert torch.equal(after, model.level_log_probs(u[users], prefix, codebook))


@pytest.mark.parametrize("beam", [5, 40])
def test_one_user_at_a_time_recalls_the_batched_reference(beam):
    k, levels, n = 16, 3, 600
    codes = torch.from_numpy(np.random.default_rng(7).integers(0, k, size=(n + 1, 2, levels)))
    trie = CodeTrie.build(codes[1:], k, items=np.arange(1, n + 1))
    tt = trie.to("cpu")
    assert tt.full_levels[0] and not tt.full_levels[-1]
    torch.manual_seed(5)
    model = GRDR(SharedCodebook(levels, k, 8), GenerativeRetriever(n + 1, 8, levels, None, hidden=16, layers=2, heads=2,
                                                                     max_len=12), fixed_codes=codes).eval()
    seq, lens = _histories(9, 12, n + 1, seed=11)
    with torch.no_grad():
        u = _reference_context(model.retriever, seq, lens)  # the reference: every position, gathered; dense search

        def step(level, users, prefix):
            return model.retriever.level_log_probs(u[users], prefix, model.codebook)

        ref = beam_search(step, tt, len(u), beam, small=False)
        ones = [model.recall(seq[i:i + 1], lens[i:i + 1], tt, beam) for i in range(len(u))]
    assert torch.equal(torch.cat([r.leaves for r in ones]), ref.leaves)
    assert torch.equal(torch.cat([r.paths for r in ones]), ref.paths)
    torch.testing.assert_close(torch.cat([r.scores for r in ones]), ref.scores, atol=1e-5, rtol=1e-6)
    ref_items = recalled_items(trie, ref.leaves, 50)
    assert all((recalled_items(trie, r.leaves, 50) == ref_items[i]).all() for i, r in enumerate(ones))
