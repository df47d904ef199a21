"""Diagnostics on a hand-made example whose figures are worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from cva_rec.semantic_ids.diagnostics import code_diagnostics, format_table


def test_hand_made_codes():
    codes = torch.tensor([
        [0, 1], [0, 1], [0, 1],  # one group of 3
        [1, 0], [1, 0],          # one group of 2
        [2, 3],                  # unique
        [-1, -1],                # no content: ignored
    ])
    d = code_diagnostics(codes, [0.5, 0.25], n_codes=4)
    assert d["n_items"] == 6 and d["distinct_codes"] == 3
    assert d["unique_fraction"] == pytest.approx(1 / 6)
    assert d["collision_rate"] == pytest.approx(1 - 3 / 6)
    assert d["largest_collision_group"] == 3
    lvl1, lvl2 = d["per_level"]
    assert lvl1["utilisation"] == pytest.approx(3 / 4) and lvl2["utilisation"] == pytest.approx(3 / 4)
    p = torch.tensor([3, 2, 1]) / 6
    assert lvl1["perplexity"] == pytest.approx(math.exp(float(-(p * p.log()).sum())))
    assert lvl2["distinct_prefixes"] == 3 and lvl1["distinct_prefixes"] == 3
    assert lvl1["quant_error"] == 0.5 and lvl2["quant_error"] == 0.25
    assert d["bits_per_item"] == 4 and d["bytes_per_item"] == 2
    table = format_table(d)
    assert "collision rate 50.00%" in table and "largest group 3" in table


def test_perfectly_even_codes_have_perplexity_n():
    codes = torch.arange(64)[:, None].repeat(1, 2)
    d = code_diagnostics(codes, None, n_codes=64)
    assert d["per_level"][0]["perplexity"] == pytest.approx(64) and d["unique_fraction"] == 1.0
    assert d["collision_rate"] == 0.0 and d["largest_collision_group"] == 1
