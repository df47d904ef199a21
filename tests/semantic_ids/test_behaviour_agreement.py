"""behaviour_agreement: mutual information and lift of code sharing over item pairs, vs hand values and numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cva_rec.semantic_ids.diagnostics import behaviour_agreement


def test_by_hand():
    codes = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1], [-1, -1]])
    r = behaviour_agreement(codes, [[0, 1], [2, 3], [0, 1], [2, 3], [0, 4]], 2)  # the pair with item 4 has no code
    assert r["pairs"] == 4 and r["mi_level1_bits"] == pytest.approx(1.0)
    assert r["share@1"] == 1.0 and r["lift@1"] == pytest.approx(2.0)  # chance of sharing c_1: 1/2
    assert r["share@2"] == 0.0 and r["lift@2"] == 0.0


def test_against_a_numpy_reference():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, (200, 2))
    a = rng.integers(0, 200, 5000)
    b = np.where(rng.random(5000) < 0.5, a, rng.integers(0, 200, 5000))  # half the pairs repeat the item
    r = behaviour_agreement(torch.from_numpy(codes), np.stack([a, b], 1), 5)
    ca, cb = codes[a, 0], codes[b, 0]
    joint = np.zeros((5, 5))
    np.add.at(joint, (ca, cb), 1)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    assert r["mi_level1_bits"] == pytest.approx(float((joint[nz] * np.log2(joint[nz] / outer[nz])).sum()))
    freq = np.bincount(codes[:, 0], minlength=5) / 200
    assert r["lift@1"] == pytest.approx((ca == cb).mean() / freq[ca].mean())
    assert r["lift@1"] > 1.5
