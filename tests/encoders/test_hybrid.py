"""id_content: the ID+V baseline, with sum or concat, around any registered content encoder."""
from __future__ import annotations

import pytest
import torch

from cva_rec.encoders import build_encoder
from cva_rec.errors import ConfigError

from conftest import N_ITEMS

N = N_ITEMS + 1


def test_sum_is_id_plus_content(content):
    enc = build_encoder({"name": "id_content", "content_encoder": {"name": "pooling"}}, N, 64, content).eval()
    ids = torch.arange(1, N)
    expected = enc.id_table(ids) + enc.content_encoder(ids)
    assert torch.allclose(enc(ids), expected, atol=1e-6)


def test_concat_projects(content):
    enc = build_encoder({"name": "id_content", "combine": "concat", "content_encoder": {"name": "cva", "depth": 1}},
                        N, 64, content)
    assert enc.proj.in_features == 128 and enc(torch.tensor([1, 2])).shape == (2, 64)


@pytest.mark.parametrize("bad", [{}, {"content_encoder": {"name": "id"}}, {"content_encoder": {"name": "cav"}},
                                 {"content_encoder": {"name": "cva", "dpeth": 2}},
                                 {"content_encoder": {"name": "mlp"}, "combine": "product"}])
def test_bad_config(bad, content):
    with pytest.raises(ConfigError):
        build_encoder({"name": "id_content", **bad}, N, 64, content)
