"""Oracle tests: the histories and popularity the library derives equal what RecBole itself built
(its split rows' ``item_id_list``) and what an independent reader of the raw .inter file gives."""
from __future__ import annotations

import numpy as np
import pytest

from cva_rec.reference.raw_sequences import filter_by_counts, read_inter, training_items, training_targets, user_sequences
from tests.conftest import SHARED_DATA, needs_shared_data, small_overrides
from tests.protocol.tied_data import write_tied_dataset


def split_rows(data):
    """(split name, user, window, target) of every RecBole row, windows trimmed to their length."""
    for name, loader in (("train", data.train), ("valid", data.valid), ("test", data.test)):
        ds = loader._dataset
        f = ds.inter_feat
        for u, window, n, t in zip(f[ds.uid_field].numpy(), f[ds.item_id_list_field].numpy(),
                                   f[ds.item_list_length_field].numpy(), f[ds.iid_field].numpy()):
            yield name, int(u), window[:n], int(t)


def check_against_recbole_rows(data, max_len):
    """Every RecBole row's window and target sit where our per-user sequence puts them; the
    valid/test histories end with RecBole's own window and equal it whenever the window covers them."""
    seen = {}
    full_windows = 0
    for name, u, window, target in split_rows(data):
        seq = data.sequences.of(u)
        k = seen.get(u, 0) + 1  # RecBole rows of a user, in split order: targets at positions 1, 2, ...
        seen[u] = k
        assert seq[k] == target, (name, u, k)
        assert np.array_equal(seq[max(0, k - max_len):k], window), (name, u, k)
        if name in ("valid", "test"):
            hist = (data.valid_history if name == "valid" else data.test_history).of(u)
            assert len(hist) == k and np.array_equal(hist[len(hist) - len(window):], window)
            if len(window) < max_len:
                full_windows += 1
                assert np.array_equal(hist, window)
    lengths = data.sequences.lengths
    assert all(seen[u] == lengths[u] - 1 for u in seen) and len(seen) == data.dataset.user_num - 1
    assert [name for name, *_ in split_rows(data)].count("test") == len(seen)
    return full_windows


def check_against_raw_file(data, root, name, min_user=5):
    df = filter_by_counts(read_inter(root / name / f"{name}.inter"), min_user)
    ref = user_sequences(df)
    tok = data.dataset.field2id_token[data.dataset.iid_field]
    utok = data.dataset.field2id_token[data.dataset.uid_field]
    assert len(ref) == len(utok) - 1
    for u in range(1, len(utok)):
        assert [tok[i] for i in data.sequences.of(u)] == ref[utok[u]], utok[u]
    counts = training_targets(ref)
    assert data.item_popularity.tolist() == [0.0] + [float(counts.get(t, 0)) for t in tok[1:]]
    seen = training_items(ref)
    assert data.seen_in_training.tolist() == [False] + [t in seen for t in tok[1:]]
    return ref


def test_ml100k_histories_equal_recbole_rows(ml100k_data):
    check_against_recbole_rows(ml100k_data, ml100k_data.config["MAX_ITEM_LIST_LENGTH"])


def test_ml100k_sequences_and_popularity_equal_raw_file(ml100k_data):
    from cva_rec.data.dataset import resolve_data_path

    ref = check_against_raw_file(ml100k_data, resolve_data_path({"dataset": {"data_path": None, "name": "ml-100k"}}), "ml-100k")
    # the inductive split is not "popularity == 0": some items occur in training only as a user's first item
    first_only = training_items(ref) - set(training_targets(ref))
    assert int(((ml100k_data.item_popularity == 0) & ml100k_data.seen_in_training).sum()) == len(first_only)


def test_inductive_split_uses_seen_in_training():
    import torch

    from cva_rec.training.evaluation import RankCollector

    c = RankCollector()
    # item 2 has popularity 0 but was a user's first (input) item: seen, not inductive
    c.add(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3]), torch.tensor([0, 5, 50]))
    pop = torch.tensor([0.0, 4.0, 0.0, 0.0])
    seen = torch.tensor([False, True, True, False])
    out = c.compute(["hr"], [10], pop, 2, seen_in_training=seen)
    assert out["inductive"]["n_users"] == 1 and out["inductive"]["hr@10"] == 0.0
    assert "inductive" not in c.compute(["hr"], [10], pop, 2)


def test_tied_timestamps_histories(tmp_path):
    """Times 0, 1, 2, ... per user: RecBole interleaves all users' rows; histories stay per user."""
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data

    root = write_tied_dataset(tmp_path / "data")
    cfg = load_config(None, small_overrides(tmp_path, "dataset.name=tied", f"dataset.data_path={root}", "dataset.max_seq_length=50"))
    data = build_data(cfg)
    full = check_against_recbole_rows(data, 50)
    assert full == 2 * (data.dataset.user_num - 1)  # every window covers the whole history
    ref = check_against_raw_file(data, root, "tied")
    # and the raw file's own per-user order is the truth here (no two rows of a user tie)
    df = read_inter(root / "tied" / "tied.inter")
    assert ref == {u: g["item"].tolist() for u, g in df.groupby("user", sort=False)}


def test_three_item_users_popularity_equals_recbole_training_rows(tmp_path):
    """``min_user_interactions: 3``: RecBole gives a 3-item user a training row and a test row, no
    validation row. Popularity and the inductive split must count that training target: checked
    against RecBole's own training rows (and the raw-file reader)."""
    import torch

    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data

    root = write_tied_dataset(tmp_path / "data", min_len=3, seed=3)
    cfg = load_config(None, small_overrides(tmp_path, "dataset.name=tied", f"dataset.data_path={root}",
                                            "dataset.max_seq_length=50", "dataset.min_user_interactions=3"))
    data = build_data(cfg)
    assert (data.sequences.lengths == 3).sum() >= 3  # the case under test is there
    train = data.train._dataset
    f = train.inter_feat
    targets = f[train.iid_field]
    assert data.item_popularity.tolist() == torch.bincount(targets, minlength=len(data.item_popularity)).float().tolist()
    windows = f[train.item_id_list_field]
    in_training = torch.zeros(len(data.item_popularity), dtype=torch.bool)
    in_training[targets] = True
    in_training[windows[windows > 0]] = True
    assert data.seen_in_training.tolist() == in_training.tolist()
    check_against_raw_file(data, root, "tied", min_user=3)


@needs_shared_data()
def test_ml1m_sequences_and_popularity_agree(tmp_path):
    """ml-1m has no RecBole dataset yaml (ml-100k's turns on normalize_all): the order rule must
    not depend on that (it once did: 2% of ml-1m users agreed with the raw-file reader)."""
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.reference.harness import history_agreement

    cfg = load_config(None, small_overrides(tmp_path, "dataset.name=ml-1m", f"dataset.data_path={SHARED_DATA}",
                                            "dataset.max_seq_length=5"))
    agreement = history_agreement(cfg, build_data(cfg))
    assert agreement["users"] == 6040
    assert agreement["recbole_rows_test"] == agreement["recbole_rows_valid"] == 1.0
    assert agreement["raw_file_sequences"] == agreement["popularity"] == 1.0
