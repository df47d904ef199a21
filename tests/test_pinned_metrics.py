"""Behaviour guard: for a fixed seed, ID and content-encoder runs give exactly the pinned test metrics.

The values were produced by the code at commit fdb606f (after the per-user history fix), before
the item-token seam was restructured (issue 11). A refactor of the seam, the encoders, the losses
or the training loop must not move them. Only the overall full-ranking metrics are pinned
(hr/ndcg @10/@20): the popularity and inductive breakdowns belong to the evaluation protocol.

When a *deliberate* change of the protocol or of the model moves them, re-pin here and say
why in the commit message: these numbers are a tripwire, not a quality target. (Re-pinned once
when each user's order became the exact time: 83 ml-100k users had float32-tied times in file order.)

One CPU thread: a different thread count may change float summation order in matmuls.
"""
from __future__ import annotations

import pytest
import torch

from cva_rec.config.schema import load_config
from tests.conftest import small_overrides

PINNED_KEYS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")

# name -> (config overrides, pinned test metrics)
CASES = {
    "id_inbatch": (["item_encoder.name=id", "loss.name=inbatch_softmax"],
                   {'hr@10': 0.021208907741251327, 'ndcg@10': 0.010625463215512094, 'hr@20': 0.031813361611876985, 'ndcg@20': 0.013269353629661423}),
    "id_full_softmax": (["item_encoder.name=id", "loss.name=full_softmax"],
                   {'hr@10': 0.02332979851537646, 'ndcg@10': 0.011684965323302987, 'hr@20': 0.036055143160127257, 'ndcg@20': 0.014891712723460848}),
    "pooling": (["item_encoder.name=pooling", "loss.name=inbatch_softmax"],
                   {'hr@10': 0.018027571580063628, 'ndcg@10': 0.011852131819414316, 'hr@20': 0.03499469777306469, 'ndcg@20': 0.01610819226599355}),
    "mlp": (["item_encoder.name=mlp", "loss.name=inbatch_softmax"],
                   {'hr@10': 0.019088016967126194, 'ndcg@10': 0.013334166556175248, 'hr@20': 0.030752916224814422, 'ndcg@20': 0.016238403858597705}),
    # narrowed (the paper-size Perceiver IO took ~200 s of CI on one thread); re-pinned at 5039309+ after the
    # paper-size case had passed unchanged across the seam refactor (issue 11)
    "perceiver_io": (["item_encoder.name=perceiver_io", "item_encoder.depth=1", "item_encoder.num_latents=8",
                      "item_encoder.latent_dim=64", "item_encoder.query_dim=64", "loss.name=inbatch_softmax"],
                   {'hr@10': 0.02014846235418876, 'ndcg@10': 0.014076431942662745, 'hr@20': 0.03499469777306469, 'ndcg@20': 0.017631011780073563}),
    "cva": (["item_encoder.name=cva", "loss.name=inbatch_softmax"],
                   {'hr@10': 0.024390243902439025, 'ndcg@10': 0.01544385593458021, 'hr@20': 0.04984093319194061, 'ndcg@20': 0.021780912493606676}),
}
CONTENT_FREE = {"id_inbatch", "id_full_softmax"}


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_case(tmp_path, name, data, store=None):
    # batch size and seed are those ``ml100k_data`` was built with (its loaders own them)
    from cva_rec.training.run import run_experiment

    overrides, _ = CASES[name]
    extra = [f"content.store={store}"] if store is not None else []
    cfg = load_config(None, small_overrides(
        tmp_path, *overrides, *extra, "train.limit_train_batches=8", "eval.popularity_buckets=0",
    ))
    metrics = run_experiment(cfg, tmp_path / name, enable_progress_bar=False, data=data)
    return {k: metrics["test"][k] for k in PINNED_KEYS}


@pytest.mark.parametrize("name", list(CASES))
def test_metrics_are_pinned(name, tmp_path, ml100k_data, request, one_thread):
    store = None if name in CONTENT_FREE else request.getfixturevalue("ml100k_text_store")
    got = run_case(tmp_path, name, ml100k_data, store)
    pinned = CASES[name][1]
    assert got == pinned, f"{name}: {got!r} != pinned {pinned!r}"
