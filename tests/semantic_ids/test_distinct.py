"""Collision-resolving levels: every item gets a distinct code when asked, deterministically."""
from __future__ import annotations

import json

import numpy as np
import torch

from cva_rec.cli.main import main
from cva_rec.semantic_ids.codes import SemanticCodes
from cva_rec.semantic_ids.distinct import distinct_codes, extra_levels_needed, with_distinct_room_codes
from sid_test_data import EMPTY_ITEM, segments  # noqa: F401  (fixture)


def test_counter_digits_by_hand():
    codes = torch.tensor([[1, 2], [1, 2], [1, 2], [0, 0], [-1, -1]])
    out, extra = distinct_codes(codes, n_codes=2, order_key=[0.5, 0.1, 0.5, 9.0, 0.0], tokens=["b", "a", "c", "d", "e"])
    assert extra == 2  # a group of 3 needs two base-2 digits
    # within the group: 'a' (closest) -> 0, then 'b' and 'c' (equal distance, by token) -> 1, 2
    assert out.tolist() == [[1, 2, 0, 1], [1, 2, 0, 0], [1, 2, 1, 0], [0, 0, 0, 0], [-1, -1, -1, -1]]
    assert distinct_codes(torch.tensor([[0, 1], [1, 0]]), 4)[1] == 0
    assert [extra_levels_needed(g, 64) for g in (1, 2, 64, 65, 4096, 4097)] == [0, 1, 1, 2, 2, 3]


def test_distinct_for_every_item_and_independent_of_row_order():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 3, (400, 2), generator=gen)  # at most 9 distinct codes: large groups
    key = torch.rand(400, generator=gen).numpy()
    tokens = [f"t{i}" for i in range(400)]
    out, extra = distinct_codes(codes, 3, key, tokens)
    assert extra >= 2 and len(torch.unique(out, dim=0)) == 400
    assert torch.equal(out[:, :2], codes) and int(out.max()) < 3
    perm = torch.randperm(400, generator=gen)
    again, _ = distinct_codes(codes[perm], 3, key[perm.numpy()], [tokens[i] for i in perm])
    assert torch.equal(again, out[perm])  # each token keeps its code whatever the row order


def test_slice_codes_padded_and_empty_items_kept():
    slices = torch.tensor([[[0, 1], [1, 1]], [[0, 1], [-1, -1]], [[-1, -1], [-1, -1]]])
    mask = torch.tensor([[True, True], [True, False], [False, False]])
    room = torch.tensor([[0, 1], [0, 1], [-1, -1]])
    codes, extra = with_distinct_room_codes(SemanticCodes(slices, mask, room, 2, ["x", "y", "z"]))
    assert extra == 1 and codes.room_codes.tolist() == [[0, 1, 0], [0, 1, 1], [-1, -1, -1]]
    assert codes.slice_codes[0].tolist() == [[0, 1, 0], [1, 1, 0]] and codes.slice_codes[1, 1].tolist() == [-1, -1, -1]


def test_tokenize_distinct_cli_is_deterministic(tmp_path, segments, capsys):
    features, counts, tokens = segments
    np.save(tmp_path / "x.npy", features.mean(1))  # one vector per item
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["tokenize", str(tmp_path / "x.npy"), "--out", str(out), "--levels", "2", "--codes", "4", "--distinct"]) == 0
        runs.append(SemanticCodes.load(out / "codes.npz"))
    assert "collision-resolving level" in capsys.readouterr().out
    a, b = runs
    assert torch.equal(a.room_codes, b.room_codes) and torch.equal(a.slice_codes, b.slice_codes)
    assert a.levels > 2 and len(torch.unique(a.room_codes, dim=0)) == len(tokens)
    diag = json.loads((tmp_path / "a" / "diagnostics.json").read_text())
    assert diag["room"]["unique_fraction"] == 1.0 and diag["room"]["largest_collision_group"] == 1
    assert diag["distinct_extra_levels"] == a.levels - 2
    plain = tmp_path / "plain"
    assert main(["tokenize", str(tmp_path / "x.npy"), "--out", str(plain), "--levels", "2", "--codes", "4"]) == 0
    base = SemanticCodes.load(plain / "codes.npz")
    assert torch.equal(a.room_codes[:, :2], base.room_codes)  # the semantic levels are unchanged
    assert json.loads((plain / "diagnostics.json").read_text())["room"]["unique_fraction"] < 1.0


def test_prefix_tables_give_every_item_its_own_vector():
    from cva_rec.semantic_ids.prefix_ngram import PrefixNgramEmbedding

    gen = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 4, (300, 3), generator=gen)  # 64 possible codes for 300 items
    room, extra = distinct_codes(codes, 4)
    torch.manual_seed(0)
    for table_codes, n_distinct in ((codes, len(torch.unique(codes, dim=0))), (room, 300)):
        emb = PrefixNgramEmbedding(table_codes.shape[1], 4, 24, observed=table_codes)
        with torch.no_grad():
            vectors = emb.embed_codes(table_codes)
        assert len(torch.unique(vectors, dim=0)) == n_distinct
