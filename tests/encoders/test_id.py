"""ID encoder: adopting RecBole's table keeps ID runs identical (same Parameter, plain lookup)."""
from __future__ import annotations

import torch
from torch import nn

from cva_rec.encoders import IdEncoder, build_encoder


def test_adopt_shares_the_table_and_is_a_plain_lookup():
    torch.manual_seed(0)
    table = nn.Embedding(50, 8, padding_idx=0)
    nn.init.normal_(table.weight, std=0.02)  # RecBole's init: the padding row is non-zero
    enc = IdEncoder.adopt(table)
    assert enc.table is table and enc.all_items() is table.weight
    ids = torch.tensor([[0, 3, 3], [49, 1, 0]])
    assert torch.equal(enc(ids), table(ids))  # row 0 NOT zeroed: identical to RecBole
    assert not enc.needs_content and list(enc.parameters())[0] is table.weight


def test_built_from_config_without_content():
    enc = build_encoder({"name": "id"}, 30, 16)
    enc(torch.tensor([0, 1, 2])).sum().backward()
    assert enc.table.weight.grad[0].abs().sum() == 0  # padding row never updated
    assert enc.all_items().shape == (30, 16)
