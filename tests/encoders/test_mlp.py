"""MLP: the paper's parameter count and the configurable shape."""
from __future__ import annotations

import pytest
import torch

from cva_rec.encoders import build_encoder
from cva_rec.errors import ConfigError

from conftest import N_ITEMS

N = N_ITEMS + 1
PAPER = 1_772_928  # Table 6, SASRec MLP


def test_parameter_count_matches_paper(content):
    enc = build_encoder({"name": "mlp"}, N, 384, content)
    ours = sum(p.numel() for p in enc.parameters())
    print(f"MLP: ours {ours:,} paper {PAPER:,}")
    assert abs(ours - PAPER) / PAPER < 0.01


def test_layers_hidden_activation(content):
    enc = build_encoder({"name": "mlp", "hidden": 32, "layers": 3, "activation": "gelu", "dropout": 0.1}, N, 16,
                        content)
    linears = [m for m in enc.net if isinstance(m, torch.nn.Linear)]
    assert [l.out_features for l in linears] == [32, 32, 16]
    assert enc(torch.tensor([1, 5])).shape == (2, 16)
    single = build_encoder({"name": "mlp", "layers": 1}, N, 16, content)
    assert sum(p.numel() for p in single.parameters()) == content.dim * 16 + 16


@pytest.mark.parametrize("bad", [{"layers": 0}, {"dropout": 1.5}, {"activation": "relu6"}, {"hidden": "big"}])
def test_bad_options(bad, content):
    with pytest.raises(ConfigError):
        build_encoder({"name": "mlp", **bad}, N, 16, content)
