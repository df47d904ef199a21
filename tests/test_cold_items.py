"""dataset.cold_items: held-out items appear in no training or validation tensor; warm / cold test metrics."""
import numpy as np
import pandas as pd
import pytest
import torch

from cva_rec.data.cold_items import choose_cold_items, rows_to_keep
from cva_rec.config.schema import load_config
from cva_rec.errors import ConfigError
from cva_rec.training.evaluation import RankCollector, metrics_from_ranks
from tests.conftest import small_overrides


def test_choice_is_seeded_and_independent_of_token_order():
    tokens = ["[PAD]"] + [f"i{k}" for k in range(200)]
    a = choose_cold_items(tokens, 0.1, seed=3)
    assert a.sum() == 20 and not a[0]
    shuffled = [tokens[0]] + list(np.random.default_rng(0).permutation(tokens[1:]))
    b = choose_cold_items(shuffled, 0.1, seed=3)
    assert {t for t, c in zip(tokens, a) if c} == {t for t, c in zip(shuffled, b) if c}
    assert not np.array_equal(a, choose_cold_items(tokens, 0.1, seed=4))
    with pytest.raises(ConfigError):
        choose_cold_items(tokens, 1.0, seed=0)


def test_rows_to_keep_by_hand():
    cold = np.array([False, False, True, False, True])  # items 2 and 4 held out
    users = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    items = np.array([1, 2, 3, 1, 4, 1, 3, 4, 2, 2, 1, 3, 1])
    keep = rows_to_keep(users, items, cold, min_user_interactions=3)
    # user 0: the cold 2 in the middle goes, the cold 4 stays as the last (test) item
    # user 1: cold 4 and last cold 2: only 2 rows left + the last -> 3 rows kept (1, 3, 2)
    # user 2: cold 2 first goes, 3 rows left
    assert keep.tolist() == [True, False, True, True, True, True, True, False, True, False, True, True, True]
    assert not rows_to_keep(users, items, cold, min_user_interactions=4)[5:9].any()  # user 1 too short now


@pytest.fixture(scope="module")
def cold_data(tmp_path_factory):
    from cva_rec.data.dataset import build_data

    cfg = load_config(None, small_overrides(tmp_path_factory.mktemp("cold"), "dataset.cold_items=0.1"))
    return cfg, build_data(cfg)


def _items_in(batch, data):
    ds = data.dataset
    return batch[ds.item_id_list_field], batch[ds.iid_field]


def test_no_held_out_item_in_any_training_or_validation_tensor(cold_data):
    from cva_rec.training.datamodule import RecBoleDataModule

    cfg, data = cold_data
    cold = data.cold_items
    assert cold is not None and cold.dtype == torch.bool and len(cold) == data.n_items
    assert int(cold.sum()) == round(0.1 * (data.n_items - 1))
    dm = RecBoleDataModule(data, cfg)
    n_rows = 0
    for batch in dm.train_dataloader():  # every training batch Lightning would see
        inputs, targets = _items_in(batch, data)
        assert not cold[inputs].any() and not cold[targets].any()
        n_rows += len(targets)
    assert n_rows == data.train.sample_size > 0
    for interaction, users, targets, h_rows, h_items in dm.val_dataloader():
        assert not cold[interaction[data.dataset.item_id_list_field]].any() and not cold[targets].any()
        assert not cold[h_items].any()
    cold_targets = 0
    for interaction, users, targets, h_rows, h_items in dm.test_dataloader():
        assert not cold[interaction[data.dataset.item_id_list_field]].any()  # test inputs are warm too
        assert not cold[h_items].any()  # masked history: held-out items the user saw before are gone
        cold_targets += int(cold[targets].sum())
    assert cold_targets > 0
    assert not cold[data.item_popularity > 0].any() and not (cold & data.seen_in_training).any()


def test_cold_targets_match_an_independent_reading_of_the_file(cold_data):
    """Which users get a held-out test item, from the raw .inter file with pandas alone."""
    from cva_rec.data.dataset import bundled_data_path

    cfg, data = cold_data
    raw = pd.read_csv(bundled_data_path() / "ml-100k" / "ml-100k.inter", sep="\t", dtype=str)
    raw.columns = [c.split(":")[0] for c in raw.columns]
    # RecBole holds timestamps as float32 (ml-100k's ~9e8 seconds round to multiples of 64) and
    # orders equal values its own way, so compare the users whose last item is unambiguous
    raw["timestamp"] = raw["timestamp"].astype(float).astype(np.float32)
    cold_tokens = {t for t, c in zip(data.item_tokens, data.cold_items.tolist()) if c}
    raw = raw.sort_values("timestamp", kind="stable").sort_values("user_id", kind="stable")
    last, before = raw.groupby("user_id").nth(-1), raw.groupby("user_id").nth(-2)
    clear = set(last["user_id"][last["timestamp"].to_numpy() > before.set_index("user_id").loc[last["user_id"], "timestamp"].to_numpy()])
    # ml-100k users all have >= 20 interactions: none falls under 5 after the removal
    expected = set(last[last["item_id"].isin(cold_tokens)]["user_id"]) & clear
    assert len(clear) > 300

    uid_tokens = data.dataset.field2id_token[data.dataset.uid_field]
    test = data.test._dataset.inter_feat
    got = {uid_tokens[u] for u, i in zip(test[data.dataset.uid_field].tolist(), test[data.dataset.iid_field].tolist())
           if data.cold_items[i]}
    assert got & clear == expected and len(expected) > 10


def test_warm_cold_breakdown_by_hand():
    c = RankCollector()
    c.add(torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 5, 7]), torch.tensor([0, 3, 30, 1]))
    cold = torch.zeros(8, dtype=torch.bool)
    cold[5] = True
    r = c.compute(["hr", "ndcg"], [10], cold_items=cold)
    assert r["cold"]["n_users"] == 2 and r["warm"]["n_users"] == 2
    assert r["cold"]["hr@10"] == 0.5 and r["warm"]["hr@10"] == 1.0
    assert r["warm"]["ndcg@10"] == pytest.approx((1 / np.log2(5) + 1 / np.log2(3)) / 2)
    assert r["cold"] == {"n_users": 2, **metrics_from_ranks(torch.tensor([0, 30]), ["hr", "ndcg"], [10])}
    assert "cold" not in c.compute(["hr"], [10])


def test_training_run_reports_consistent_warm_and_cold(tmp_path, cold_data):
    from cva_rec.training.run import run_experiment

    cfg, data = cold_data
    cfg = load_config(None, small_overrides(tmp_path, "dataset.cold_items=0.1", "train.limit_train_batches=4"))
    test = run_experiment(cfg, tmp_path / "run", enable_progress_bar=False, data=data)["test"]
    warm, cold = test["warm"], test["cold"]
    assert warm["n_users"] + cold["n_users"] == test["n_users"] and cold["n_users"] > 10
    for m in ("hr@10", "ndcg@10"):
        pooled = (warm[m] * warm["n_users"] + cold[m] * cold["n_users"]) / test["n_users"]
        assert pooled == pytest.approx(test[m], abs=1e-12)
    assert cold["n_users"] <= test["inductive"]["n_users"]  # held-out items are never training targets


def test_code_tables_read_only_rows_of_items_seen_in_training(tmp_path, cold_data):
    """prefix_rows: trained: the rows an item may read come from the items of the training batches;
    held-out items (whose test interactions are never read) back off to those rows."""
    from cva_rec.backbones import item_encoder_of
    from cva_rec.semantic_ids.codes import SemanticCodes
    from cva_rec.training.build import build_module
    from cva_rec.training.datamodule import RecBoleDataModule

    _, data = cold_data
    n = data.n_items
    g = torch.Generator().manual_seed(0)
    slices = torch.randint(0, 8, (n, 2, 3), generator=g)  # L = 3, N = 8: deep rows are nearly per item
    slices[0] = -1
    room = slices[:, 0].clone()
    path = SemanticCodes(slices, slices[..., 0] >= 0, room, 8, data.item_tokens).save(tmp_path / "codes.npz")
    cfg = load_config(None, small_overrides(tmp_path, "dataset.cold_items=0.1", "item_encoder.name=lucid",
                                            "item_encoder.tokens=[slice, room]", f"item_encoder.codes_path={path}",
                                            "item_encoder.unseen_prefix=zero"))
    enc = item_encoder_of(build_module(cfg, data).model)

    in_training = torch.zeros(n, dtype=torch.bool)  # independent of data.seen_in_training: the batches themselves
    for batch in RecBoleDataModule(data, cfg).train_dataloader():
        for items in _items_in(batch, data):
            in_training[items[items > 0]] = True
    assert not (in_training & data.cold_items).any()
    for sub, codes in ((enc.room_enc, room[in_training]), (enc.slice_enc, slices[in_training].reshape(-1, 3))):
        emb = sub.embedding
        expected = emb._used_rows(codes)
        assert all(torch.equal(getattr(emb, f"trained_{l}"), expected[l]) for l in range(3))
        only_held_out = [~m for m in expected]
        assert sum(int(m.sum()) for m in only_held_out) > 0  # so the check below can fail
        cold_ids = torch.nonzero(data.cold_items).squeeze(1)
        before = enc.eval().candidate_vectors(cold_ids)
        with torch.no_grad():
            for level, mask in enumerate(only_held_out):
                emb.tables[level].weight[mask] = 1e3
        enc.invalidate_cache()
        assert torch.equal(enc.candidate_vectors(cold_ids), before)
