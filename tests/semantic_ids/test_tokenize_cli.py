"""``cva-rec tokenize`` end to end on a real (MiniLM) feature store and on a .npy array."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cva_rec.cli.main import main
from cva_rec.features import FeatureStoreWriter
from cva_rec.semantic_ids.codes import SemanticCodes
from cva_rec.semantic_ids.rq_kmeans import RQKMeans
from sid_test_data import EMPTY_ITEM, segments  # noqa: F401  (fixture)


def test_tokenize_feature_store(tmp_path, segments, capsys):
    features, counts, tokens = segments
    store = tmp_path / "store"
    with FeatureStoreWriter(store, tokens, features.shape[1], features.shape[2], dtype="float16") as w:
        w.write(np.arange(len(tokens)), features, counts)
        w.finalize()
    out = tmp_path / "sid"
    rc = main(["tokenize", str(store), "--out", str(out), "--levels", "3", "--codes", "16", "--pca", "64", "--iters", "10"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "collision rate" in printed and "perplexity" in printed
    codes = SemanticCodes.load(out / "codes.npz")
    assert codes.item_ids == tokens and codes.slice_codes.shape == (len(tokens), features.shape[1], 3)
    assert torch.equal(codes.slice_mask.sum(1), torch.as_tensor(counts))
    assert (codes.room_codes[EMPTY_ITEM] == -1).all()
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["slice"]["n_items"] == int(counts.sum()) and diag["room"]["n_items"] == int((counts > 0).sum())
    errs = [r["quant_error"] for r in diag["slice"]["per_level"]]
    assert errs == sorted(errs, reverse=True)
    tok = RQKMeans.load(out / "tokenizer.pt")
    assert tok.projection is not None and tok.dim == 64


def test_tokenize_npy_and_bad_source(tmp_path, segments, capsys):
    features, counts, _ = segments
    vecs = features[counts > 0][:, 0]
    np.save(tmp_path / "v.npy", vecs)
    assert main(["tokenize", str(tmp_path / "v.npy"), "--out", str(tmp_path / "o"), "--levels", "2", "--codes", "8"]) == 0
    codes = SemanticCodes.load(tmp_path / "o" / "codes.npz")
    assert torch.equal(codes.room_codes, codes.slice_codes[:, 0])  # one vector per item: slice = room
    assert main(["tokenize", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "not a feature store" in capsys.readouterr().err
