"""Prefix tables with trained rows only (issue 12): an item outside training backs off to the prefixes
some training item uses; a row used only by held-out items never reaches any vector."""
from __future__ import annotations

import pytest
import torch

from cva_rec.errors import ConfigError
from cva_rec.semantic_ids.prefix_ngram import PrefixNgramEmbedding, random_depths

# N = 4, L = 3. Trained items: the first three; held out: the last two.
TRAINED = torch.tensor([[0, 2, 1], [0, 2, 3], [3, 1, 0]])
HELD_OUT = torch.tensor([[0, 2, 2],   # [0], [0,2] trained; [0,2,2] only held out
                         [1, 0, 0]])  # nothing trained, not even [1]
ALL = torch.cat([TRAINED, HELD_OUT])


def _emb(output_dim=12, **kw):
    torch.manual_seed(0)
    return PrefixNgramEmbedding(3, 4, output_dim, observed=ALL, trained=TRAINED, **kw)


def _row(emb, code, level):
    rows, _ = emb._lookup(code[None])  # the row the code has in the table, trained or not
    return emb.tables[level].weight[rows[0, level]]


def test_masks_mark_exactly_the_rows_training_codes_use():
    emb = _emb()
    assert emb.table_rows() == [3, 3, 5]  # rows exist for every coded item, held-out ones included
    assert [int(getattr(emb, f"trained_{l}").sum()) for l in range(3)] == [2, 2, 3]
    assert "trained_0" not in emb.state_dict()  # data, not weights: checkpoints keep their shapes
    _, found = emb.rows_for(HELD_OUT)
    assert found.tolist() == [[True, True, False], [False, False, False]]


def test_zero_mode_is_the_sum_of_the_trained_prefix_rows():
    emb = _emb(unseen="zero")  # 3 x 4 = 12: no projection, the vector is the concatenation
    out = emb.embed_codes(HELD_OUT)
    placed = torch.zeros(12)
    for level in (0, 1):  # the item's trained prefixes [0] and [0, 2], each in its own slot
        placed[4 * level:4 * level + 4] += _row(emb, HELD_OUT[0], level)
    assert torch.equal(out[0], placed)
    assert torch.count_nonzero(out[1]) == 0  # not even its first level was trained

    proj = _emb(output_dim=10, unseen="zero")  # 3 x 3 = 9 != 10: a Linear maps the concatenation
    assert proj.proj is not None
    w, b = proj.proj.weight, proj.proj.bias
    expected = b + sum(w[:, 3 * l:3 * l + 3] @ _row(proj, HELD_OUT[0], l) for l in (0, 1))
    assert torch.allclose(proj.embed_codes(HELD_OUT[:1])[0], expected, atol=1e-6)


def test_backoff_mode_takes_the_deepest_trained_prefix():
    emb = _emb()
    out = emb.embed_codes(HELD_OUT[:1])[0]
    level2 = _row(emb, HELD_OUT[0], 1)
    assert torch.equal(out[4:8], level2) and torch.equal(out[8:], level2)


@pytest.mark.parametrize("unseen", ["backoff", "zero"])
def test_rows_used_only_by_held_out_items_never_contribute(unseen):
    emb = _emb(unseen=unseen)
    before_trained, before_held = emb.embed_codes(TRAINED), emb.embed_codes(HELD_OUT)
    only_held = [~getattr(emb, f"trained_{l}") for l in range(3)]
    assert sum(int(m.sum()) for m in only_held) == 4  # [1]; [1,0]; [0,2,2], [1,0,0]
    with torch.no_grad():
        for level, mask in enumerate(only_held):
            emb.tables[level].weight[mask] = 1e6
    assert torch.equal(emb.embed_codes(HELD_OUT), before_held)
    assert torch.equal(emb.embed_codes(TRAINED), before_trained)
    emb.embed_codes(ALL).sum().backward()
    for level, mask in enumerate(only_held):
        assert torch.count_nonzero(emb.tables[level].weight.grad[mask]) == 0


def test_training_items_see_the_same_vectors_as_without_masks():
    torch.manual_seed(0)
    plain = PrefixNgramEmbedding(3, 4, 12, observed=ALL)
    for unseen in ("backoff", "zero"):
        assert torch.equal(_emb(unseen=unseen).embed_codes(TRAINED), plain.embed_codes(TRAINED))
    # without masks a held-out item reads its never-trained random row (the behaviour before issue 12)
    assert not torch.equal(_emb().embed_codes(HELD_OUT[:1]), plain.embed_codes(HELD_OUT[:1]))


def test_hash_and_level_wise_tables_mask_too():
    for kw in ({"mode": "hash", "hash_size": 8}, {"decoding": "level_wise"}):
        emb = PrefixNgramEmbedding(3, 4, 12, observed=ALL, trained=TRAINED, unseen="zero", **kw)
        _, found = emb.rows_for(HELD_OUT[1:])
        assert not found[0, 0]  # codeword / prefix [1] is used by no training item


def test_unknown_rule_is_refused():
    with pytest.raises(ConfigError, match="unseen"):
        PrefixNgramEmbedding(3, 4, 12, observed=ALL, unseen="random")


def test_random_depths_cut_at_a_shallow_level_with_the_given_rate():
    g = torch.Generator().manual_seed(0)
    d = random_depths(20000, 4, 0.25, generator=g)
    assert set(d.tolist()) == {1, 2, 3, 4}
    assert abs(float((d < 4).float().mean()) - 0.25) < 0.02
    assert torch.equal(random_depths(5, 4, 0.0), torch.full((5,), 4))


def test_lucid_level_dropout_cuts_training_candidates_only():
    from cva_rec.encoders.lucid import LucidEncoder
    from cva_rec.semantic_ids.codes import SemanticCodes

    room = torch.cat([torch.full((1, 3), -1), ALL])
    codes = SemanticCodes(room[:, None], room[:, None, 0] >= 0, room, 4, [str(i) for i in range(len(room))])
    enc = LucidEncoder(len(room), 12, tokens=["room"], codes=codes, unseen_prefix="zero", level_dropout=0.5)
    items = torch.arange(1, len(room)).repeat(50)
    full = enc.eval().candidate_vectors(items)
    torch.manual_seed(3)
    cut = enc.train().candidate_vectors(items)
    torch.manual_seed(3)
    depth = random_depths(len(items), 3, 0.5)
    assert torch.equal(cut, enc.room_enc.embed_codes(room[items], depth))
    assert 0 < int((depth < 3).sum()) < len(items) and not torch.equal(cut, full)
    hist = enc.history(items[None, :10])  # histories keep every level in training too
    assert torch.equal(hist.embeddings[0], full[:10])


def test_lucid_level_dim_gives_every_level_its_own_width_and_a_projection():
    from cva_rec.encoders.lucid import LucidEncoder
    from cva_rec.semantic_ids.codes import SemanticCodes

    room = torch.cat([torch.full((1, 3), -1), ALL])
    codes = SemanticCodes(room[:, None], room[:, None, 0] >= 0, room, 4, [str(i) for i in range(len(room))])
    enc = LucidEncoder(len(room), 12, tokens=["slice", "room"], codes=codes, level_dim=12)
    for emb in (enc.slice_enc.embedding, enc.room_enc.embedding):
        assert [t.weight.shape[1] for t in emb.tables] == [12, 12, 12] and emb.proj.in_features == 36
    vec = enc.eval().candidate_vectors(torch.arange(1, len(room)))
    assert vec.shape == (len(room) - 1, 12)
    # the concatenation of the levels through the projection, by hand
    emb = enc.room_enc.embedding
    by_hand = emb.proj(emb.level_vectors(room[1:]).reshape(len(room) - 1, -1))
    assert torch.allclose(enc.kind_vectors("room", torch.arange(1, len(room))), by_hand)


def test_sum_compose_adds_full_width_prefix_rows_by_hand():
    torch.manual_seed(0)
    emb = PrefixNgramEmbedding(3, 4, 8, observed=ALL, compose="sum")
    assert emb.proj is None and [t.weight.shape[1] for t in emb.tables] == [8, 8, 8]
    codes = torch.cat([ALL, torch.tensor([[-1, -1, -1]])])
    out = emb.embed_codes(codes)
    for i, code in enumerate(ALL):
        assert torch.allclose(out[i], sum(_row(emb, code, level) for level in range(3)))
    assert torch.equal(out[-1], torch.zeros(8))  # no code: the zero vector
    with pytest.raises(ConfigError, match="level_dim"):
        PrefixNgramEmbedding(3, 4, 8, observed=ALL, compose="sum", level_dim=4)
    with pytest.raises(ConfigError, match="compose"):
        PrefixNgramEmbedding(3, 4, 8, observed=ALL, compose="mean")


def test_sum_compose_zero_rule_leaves_untrained_levels_out():
    torch.manual_seed(0)
    emb = PrefixNgramEmbedding(3, 4, 8, observed=ALL, trained=TRAINED, compose="sum", unseen="zero")
    out = emb.embed_codes(HELD_OUT)
    assert torch.allclose(out[0], _row(emb, HELD_OUT[0], 0) + _row(emb, HELD_OUT[0], 1))  # [0,2,2]: two trained prefixes
    assert torch.equal(out[1], torch.zeros(8))  # nothing of [1,0,0] trained


def test_lucid_id_rows_trained_zeroes_the_id_vector_of_items_outside_training():
    """``id_rows: trained``: a held-out item is scored by its codes alone (no random ID row added);
    trained items and ``id_rows: all`` are unchanged."""
    from cva_rec.encoders.lucid import LucidEncoder
    from cva_rec.semantic_ids.codes import SemanticCodes

    room = torch.cat([torch.full((1, 3), -1), ALL])
    codes = SemanticCodes(room[:, None], room[:, None, 0] >= 0, room, 4, [str(i) for i in range(len(room))])
    trained = torch.tensor([False, True, True, True, False, False])  # item 0 = padding; items 4, 5 held out
    vectors = {}
    for rows in ("all", "trained"):
        torch.manual_seed(0)
        enc = LucidEncoder(len(room), 12, tokens=["id", "room"], codes=codes, compose="sum", id_rows=rows,
                           trained_items=trained).eval()
        items = torch.arange(1, len(room))
        vectors[rows] = enc.candidate_vectors(items)
        content = enc.kind_vectors("room", items)
    assert torch.equal(vectors["trained"][:3], vectors["all"][:3])  # trained items: ID row + codes, as before
    assert torch.allclose(vectors["trained"][3:], content[3:])  # held out: the codes alone
    assert not torch.allclose(vectors["all"][3:], content[3:])  # ... where "all" adds the random init row
    with pytest.raises(ConfigError, match="id_rows"):
        LucidEncoder(len(room), 12, tokens=["id", "room"], codes=codes, id_rows="some")
