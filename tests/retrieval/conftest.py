"""A retriever recipe small enough to train in seconds, on a tiny dataset with random item content."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.robustness.conftest import write_tiny

RETRIEVER = {"views": 2, "levels": 2, "codes": 4, "code_dim": 8, "tokenizer_hidden": 16, "hidden": 8, "layers": 1,
             "heads": 2, "max_len": 10, "align_epochs_first": 1, "align_epochs": 1, "train_epochs": 1,
             "batch_size": 16, "max_targets": 128, "kmeans_iters": 3}


@pytest.fixture(scope="session")
def tiny_retriever_recipe(tmp_path_factory):
    """A retriever recipe over a tiny dataset (60 users, 40 items) with random item content: 4 epochs."""
    from cva_rec.features.store import FeatureStoreWriter

    root = write_tiny(tmp_path_factory.mktemp("tiny"))
    items = [f"i{n}" for n in range(40)]
    w = FeatureStoreWriter(root / "store", items, 2, 6, dtype="float32")
    w.write(np.arange(40), np.random.default_rng(0).normal(size=(40, 2, 6)).astype(np.float32), np.full(40, 2))
    w.finalize()
    (root / "base.yaml").write_text(yaml.safe_dump({
        "base": "recipe.yaml", "dataset": {"name": "tiny", "data_path": str(root), "max_seq_length": 10},
        "content": {"store": str(root / "store"), "dtype": "float32"}, "train": {"seed": 3}}))
    path = root / "retriever.yaml"
    path.write_text(yaml.safe_dump({"recipe": "base.yaml", "retriever": RETRIEVER, "output": {"dir": str(root / "runs")}}))
    return path
