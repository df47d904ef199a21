"""The ``semantic_id`` item encoder through build_encoder, from a codes file."""
from __future__ import annotations

import pytest
import torch

from cva_rec.encoders import build_encoder
from cva_rec.errors import CheckpointError, ConfigError
from cva_rec.semantic_ids.codes import SemanticCodes


@pytest.fixture()
def codes_file(tmp_path):
    # 4 items (row 0 padding), up to 3 segments, L=2, N=4
    sc = torch.tensor([[[-1, -1]] * 3,
                       [[0, 2], [0, 1], [-1, -1]],
                       [[3, 2], [3, 2], [1, 0]],
                       [[2, 2], [-1, -1], [-1, -1]]])
    mask = sc[..., 0] >= 0
    room = torch.tensor([[-1, -1], [0, 1], [3, 2], [2, 2]])
    return SemanticCodes(sc, mask, room, 4, ["[PAD]", "a", "b", "c"]).save(tmp_path / "codes.npz")


def test_room_encoder_through_build_encoder(codes_file):
    enc = build_encoder({"name": "semantic_id", "codes_path": str(codes_file), "which": "room"}, 4, 8)
    out = enc(torch.tensor([[0, 1, 2], [3, 3, 0]]))
    assert out.shape == (2, 3, 8) and torch.count_nonzero(out[0, 0]) == 0
    assert torch.equal(out[1, 0], out[1, 1])
    assert torch.equal(enc.all_items()[2], enc.embed_codes(torch.tensor([3, 2])))
    out.sum().backward()
    assert enc.embedding.tables[1].weight.grad is not None


def test_slice_encoder_per_interaction_codes_and_init_from(codes_file):
    sl = build_encoder({"name": "semantic_id", "codes_path": str(codes_file), "which": "slice",
                        "slice_rule_eval": "last"}, 4, 8)
    assert sl.eval().item_codes(torch.tensor([2])).tolist() == [[1, 0]]
    # training: every occurrence in a history draws its own segment (item 2 has two)
    torch.manual_seed(0)
    layout = sl.train().history(torch.full((1, 50), 2))
    assert len(torch.unique(layout.embeddings[0], dim=0)) == 2
    seg = sl.slice_codes(torch.tensor([1, 2]), training=False, segment=torch.tensor([1, 0]))
    assert seg.tolist() == [[0, 1], [3, 2]]
    g = torch.Generator().manual_seed(0)
    rand = sl.slice_codes(torch.full((200,), 2), training=True, generator=g)
    assert {tuple(r) for r in rand.tolist()} == {(3, 2), (1, 0)}
    room = build_encoder({"name": "semantic_id", "codes_path": str(codes_file)}, 4, 8).init_from(sl)
    assert torch.equal(room.encode(torch.tensor([2])), sl.embed_codes(torch.tensor([[3, 2]])))


def test_bad_configs(codes_file, tmp_path):
    with pytest.raises(ConfigError):
        build_encoder({"name": "semantic_id", "codes_path": str(codes_file)}, 7, 8)  # not aligned
    with pytest.raises(ConfigError):
        build_encoder({"name": "semantic_id", "codes_path": str(codes_file), "which": "both"}, 4, 8)
    with pytest.raises(ConfigError):
        build_encoder({"name": "semantic_id", "codes_path": str(codes_file), "mode": "hsah"}, 4, 8)
    with pytest.raises(CheckpointError):
        build_encoder({"name": "semantic_id", "codes_path": str(tmp_path / "nope.npz")}, 4, 8)
