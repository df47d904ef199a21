"""Prefix n-gram embeddings (Eq. 1-2): composite indices, remap + back-off, hash, level-wise, init_from."""
from __future__ import annotations

import pytest
import torch

from cva_rec.errors import ConfigError
from cva_rec.semantic_ids.prefix_ngram import PrefixNgramEmbedding, composite_index


def test_paper_hand_worked_tree():
    # FLUID sec. 3.3, N = 4: [c1=0, c2=2] -> cbar_2 = 2 and [c1=3, c2=2] -> cbar_2 = 14
    comp = composite_index(torch.tensor([[0, 2], [3, 2]]), 4)
    assert comp[:, 1].tolist() == [2, 14] and comp[:, 0].tolist() == [0, 3]
    assert composite_index(torch.tensor([[1, 2, 3]]), 4).tolist() == [[1, 6, 27]]  # 1, 1*4+2, 6*4+3


def test_remap_rows_only_for_observed_prefixes_and_concatenation():
    observed = torch.tensor([[0, 2, 1], [3, 2, 1], [3, 2, 0], [0, 1, 1]])
    emb = PrefixNgramEmbedding(3, 4, 12, observed=observed)
    assert emb.table_rows() == [2, 3, 4]  # {0,3}; {2,14,13}; 4 distinct triples
    out = emb.embed_codes(observed)
    assert out.shape == (4, 12) and emb.proj is None
    # same c2 under different parents -> different level-2 slots (the point of Eq. 1)
    assert not torch.equal(out[0, 4:8], out[1, 4:8])
    # Eq. 2: the slice of level l is the level-l table row
    rows, found = emb.rows_for(observed)
    assert found.all()
    assert torch.equal(out[1, 4:8], emb.tables[1].weight[rows[1, 1]])


def test_unseen_prefix_backs_off_to_longest_seen_prefix():
    emb = PrefixNgramEmbedding(3, 4, 9, observed=torch.tensor([[0, 2, 1], [3, 2, 1]]))
    seen = emb.embed_codes(torch.tensor([[0, 2, 1]]))
    new_leaf = emb.embed_codes(torch.tensor([[0, 2, 3]]))  # [0,2] seen, [0,2,3] not
    assert torch.equal(new_leaf[0, :6], seen[0, :6]) and torch.equal(new_leaf[0, 6:], seen[0, 3:6])
    new_branch = emb.embed_codes(torch.tensor([[3, 0, 0]]))  # only [3] seen
    level1 = emb.embed_codes(torch.tensor([[3, 2, 1]]))[0, :3]
    assert torch.equal(new_branch[0], level1.repeat(3))
    unseen_root = emb.embed_codes(torch.tensor([[1, 1, 1]]))
    assert torch.count_nonzero(unseen_root) == 0
    assert torch.count_nonzero(emb.embed_codes(torch.tensor([[-1, -1, -1]]))) == 0  # no content -> zeros


def test_hash_mode_direct_when_small_hashed_when_large():
    emb = PrefixNgramEmbedding(4, 64, 32, mode="hash", hash_size=5000)
    assert emb.table_rows() == [64, 4096, 5000, 5000]
    codes = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5]])
    rows, _ = emb.rows_for(codes)
    assert rows[0, 1].item() == 1 * 64 + 2  # fits: the composite index itself
    assert (rows[:, 2:] < 5000).all() and rows[0, 3] != rows[1, 3]
    assert emb.embed_codes(codes).shape == (2, 32)


def test_level_wise_decoding_ignores_the_prefix():
    emb = PrefixNgramEmbedding(2, 4, 8, decoding="level_wise")
    assert emb.table_rows() == [4, 4]
    out = emb.embed_codes(torch.tensor([[0, 2], [3, 2]]))
    assert torch.equal(out[0, 4:], out[1, 4:])  # the ablation's known flaw: shared slot for c2 = 2


def test_projection_when_width_does_not_split_and_any_leading_shape():
    emb = PrefixNgramEmbedding(3, 4, 10, observed=torch.tensor([[0, 1, 2]]))
    assert emb.level_dim == 3 and emb.proj is not None
    out = emb.embed_codes(torch.tensor([[[0, 1, 2], [-1, -1, -1]]]))
    assert out.shape == (1, 2, 10) and torch.count_nonzero(out[0, 1]) == 0


def test_init_from_copies_tables_by_prefix():
    slice_codes = torch.tensor([[0, 2, 1], [3, 2, 1], [3, 1, 0]])
    room_codes = torch.tensor([[3, 2, 1], [3, 1, 1]])  # [3,1,1] never a slice: backs off to [3,1]
    sl = PrefixNgramEmbedding(3, 4, 12, observed=slice_codes)
    room = PrefixNgramEmbedding(3, 4, 12, observed=room_codes).init_from(sl)
    assert torch.equal(room.embed_codes(room_codes), sl.embed_codes(room_codes))
    assert room.tables[0].weight.data_ptr() != sl.tables[0].weight.data_ptr()  # copies, trained independently
    with pytest.raises(ConfigError):
        room.init_from(PrefixNgramEmbedding(3, 4, 12, decoding="level_wise"))


def test_bad_options():
    with pytest.raises(ConfigError):
        PrefixNgramEmbedding(2, 4, 8, mode="dense")
    with pytest.raises(ConfigError):
        PrefixNgramEmbedding(2, 4, 8)  # remap without observed codes
