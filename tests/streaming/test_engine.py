"""The streaming engine against RecBole's datasets: the same rows in the same order, histories,
popularity and metrics; the CSR cache; chunked reading; DDP shards."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cva_rec.config.schema import load_config
from cva_rec.data.dataset import build_data
from tests.conftest import small_overrides
from tests.protocol.tied_data import write_tied_dataset

FIELDS = ("user_id", "item_id", "item_id_list", "item_length")


def streaming(tmp_path, *extra):
    return build_data(load_config(None, small_overrides(tmp_path, "dataset.engine=streaming", *extra)))


def all_rows(source):
    out = source.collate_fn(list(range(source.sample_size)))
    return out[0] if isinstance(out, tuple) else out


def assert_same_data(rb, st):
    assert list(rb.item_tokens) == list(st.item_tokens)
    assert list(rb.dataset.field2id_token["user_id"]) == list(st.dataset.field2id_token["user_id"])
    assert (rb.dataset.user_num, rb.dataset.item_num) == (st.dataset.user_num, st.dataset.item_num)
    for split in ("train", "valid", "test"):
        r, s = getattr(rb, split), getattr(st, split)
        assert (r.sample_size, r.step) == (s.sample_size, s.step), split
        r_rows, s_rows = all_rows(r), all_rows(s)
        for field in FIELDS:  # the same (user, window, length, target) rows, in the same order
            assert torch.equal(r_rows[field], s_rows[field]), (split, field)
    assert np.array_equal(rb.sequences.indptr, st.sequences.indptr)  # so the user windows of microlens_inbatch too
    assert np.array_equal(rb.sequences.items, st.sequences.items)
    assert torch.equal(rb.item_popularity, st.item_popularity)
    assert torch.equal(rb.seen_in_training, st.seen_in_training)
    for h in ("valid_history", "test_history"):
        a, b = getattr(rb, h), getattr(st, h)
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.items, b.items), h


def test_ml100k_rows_histories_and_popularity_equal_recboles(ml100k_data, tmp_path):
    # ml-100k: RecBole's YAML min-max normalises the time; ties (about 1 s apart) keep file order
    assert_same_data(ml100k_data, streaming(tmp_path))


@pytest.mark.parametrize("extra", [
    # unix-second times with gaps under a minute: float32 ties inside and across users; item filter (k-core)
    ("dataset.name=unix", "dataset.min_item_interactions=3"),
    # times 0, 1, 2, ... for every user: users tie on their second item's time (ordered by id)
    ("dataset.name=tied",),
])
def test_tied_float32_times_and_iterative_filters_equal_recboles(tmp_path, extra):
    write_tied_dataset(tmp_path / "data", seed=4)
    rng = np.random.default_rng(0)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for row in range(3000):
        lines.append(f"u{rng.integers(0, 150)}\ti{int(rng.zipf(1.6)) % 400}\t{1_600_000_000 + row * 7 + int(rng.integers(0, 40))}")
    (tmp_path / "data" / "unix").mkdir(parents=True)
    (tmp_path / "data" / "unix" / "unix.inter").write_text("\n".join(lines) + "\n")
    over = [f"dataset.data_path={tmp_path / 'data'}", *extra]
    rb = build_data(load_config(None, small_overrides(tmp_path / "rb", *over)))
    assert_same_data(rb, streaming(tmp_path / "st", *over))


@pytest.mark.parametrize("rule", [("dataset.duplicates=drop",), ("dataset.duplicates=keep", "dataset.truncate_before_split=6")])
def test_duplicate_rows_and_truncation_rules_equal_recboles(tmp_path, rule):
    write_tied_dataset(tmp_path / "data", name="twice", seed=2, repeat_rows=2)  # every row twice
    over = [f"dataset.data_path={tmp_path / 'data'}", "dataset.name=twice", *rule]
    rb = build_data(load_config(None, small_overrides(tmp_path / "rb", *over)))
    assert_same_data(rb, streaming(tmp_path / "st", *over))


def test_data_loader_workers_give_the_same_batches(tmp_path):
    from cva_rec.training.datamodule import RecBoleDataModule

    batches = {}
    for workers in (0, 2):
        over = small_overrides(tmp_path, "dataset.engine=streaming", "train.batch_size=4096", f"train.num_workers={workers}")
        cfg = load_config(None, over)
        batches[workers] = [b["item_id_list"] for b in RecBoleDataModule(build_data(cfg), cfg).train_dataloader()]
    assert len(batches[0]) == len(batches[2]) > 1
    assert all(torch.equal(a, b) for a, b in zip(batches[0], batches[2]))


def test_cache_is_reused_and_invalidated_by_the_file_or_a_filter(tmp_path):
    from cva_rec.data.streaming.cache import cached_sequences
    from cva_rec.data.streaming.inter_file import read_inter
    from cva_rec.data.streaming.sequences import build_sequences

    write_tied_dataset(tmp_path / "data", seed=1)
    inter = tmp_path / "data" / "tied" / "tied.inter"
    builds = []

    def load(min_item):
        def build():
            builds.append(min_item)
            return build_sequences(read_inter(inter, "user_id", "item_id", "timestamp"), 5, min_item)
        return cached_sequences(tmp_path / "cache", "tied", inter, {"min_user": 5, "min_item": min_item}, build)

    first, hit = load(0)
    assert not hit and builds == [0]
    again, hit = load(0)
    assert hit and builds == [0] and isinstance(again.items, np.memmap)
    assert np.array_equal(first.items, again.items) and list(first.item_tokens) == list(again.item_tokens)
    _, hit = load(3)  # another filter: another key
    assert not hit and builds == [0, 3]
    with open(inter, "a") as f:  # a changed file: rebuilt, and the new row is there
        f.write("u_new\ti1\t1\n" * 6)
    changed, hit = load(0)
    assert not hit and builds == [0, 3, 0] and "u_new" in set(changed.user_tokens)
    # and through the engine: a second build reads the cache and equals the first
    a = streaming(tmp_path / "runs", f"dataset.data_path={tmp_path / 'data'}", "dataset.name=tied")
    b = streaming(tmp_path / "runs", f"dataset.data_path={tmp_path / 'data'}", "dataset.name=tied")
    assert torch.equal(all_rows(a.train)["item_id_list"], all_rows(b.train)["item_id_list"])
    assert len([p for p in (tmp_path / "runs" / ".sequence_cache").iterdir() if p.is_dir()]) == 1


def _build_in_process(args):
    root, inter, marker = args
    import time as _time

    from cva_rec.data.streaming.cache import cached_sequences
    from cva_rec.data.streaming.inter_file import read_inter
    from cva_rec.data.streaming.sequences import build_sequences

    def build():
        with open(marker, "a") as f:
            f.write("built\n")
        _time.sleep(1.0)  # long enough for the other processes to arrive while this one builds
        return build_sequences(read_inter(inter, "user_id", "item_id", "timestamp"), 5, 0)

    seqs, hit = cached_sequences(root, "tied", inter, {"min_user": 5}, build)
    return hit, np.asarray(seqs.items).tolist()


def test_processes_starting_on_a_cold_cache_build_it_once(tmp_path):
    import multiprocessing as mp

    write_tied_dataset(tmp_path / "data", seed=3)
    args = (tmp_path / "cache", tmp_path / "data" / "tied" / "tied.inter", tmp_path / "builds.txt")
    with mp.get_context("fork").Pool(3) as pool:
        results = pool.map(_build_in_process, [args] * 3)
    assert (tmp_path / "builds.txt").read_text().count("built") == 1
    assert sorted(hit for hit, _ in results) == [False, True, True]
    assert all(items == results[0][1] for _, items in results)


def test_reading_in_chunks_equals_reading_at_once():
    from cva_rec.data.dataset import bundled_data_path
    from cva_rec.data.streaming.inter_file import read_inter

    inter = bundled_data_path() / "ml-100k" / "ml-100k.inter"
    whole = read_inter(inter, "user_id", "item_id", "timestamp", chunk_rows=10**9)
    chunked = read_inter(inter, "user_id", "item_id", "timestamp", chunk_rows=977)  # ~100 chunks
    assert len(whole.users) == 100_000
    for a, b in ((whole.users, chunked.users), (whole.items, chunked.items), (whole.times, chunked.times)):
        assert np.array_equal(a, b)
    assert whole.user_tokens == chunked.user_tokens and whole.item_tokens == chunked.item_tokens


def row_keys(batch):
    return [(u, t, tuple(w[:n])) for u, t, w, n in zip(batch["user_id"].tolist(), batch["item_id"].tolist(),
                                                        batch["item_id_list"].tolist(), batch["item_length"].tolist())]


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_shards_cover_every_example_and_every_user_exactly_once(tmp_path, world):
    from collections import Counter

    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.evaluation import RankCollector

    over = small_overrides(tmp_path, "dataset.engine=streaming", "train.batch_size=1026")
    data, cfg = build_data(load_config(None, over)), load_config(None, over)
    train_rows, valid_users = Counter(), []
    for rank in range(world):
        dm = RecBoleDataModule(data, cfg)
        dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)  # what the data module reads of a DDP trainer
        for batch in dm.train_dataloader():
            train_rows.update(row_keys(batch))
        valid_users += [b[1] for b in dm.val_dataloader()]
    expected = Counter(row_keys(all_rows(data.train)))
    assert len(expected) == data.train.sample_size  # (user, window, target) identifies a row
    assert set(train_rows) == set(expected)
    assert sum(train_rows.values()) - data.train.sample_size < world  # only the last global batch is padded
    users = torch.cat(valid_users)
    kept, _, _ = RankCollector.dedupe(users, torch.zeros_like(users), torch.zeros_like(users))
    assert sorted(kept.tolist()) == sorted(all_rows(data.valid)["user_id"].tolist())


def test_metrics_equal_recboles_engine_for_the_same_seed(tmp_path):
    from cva_rec.training.run import run_experiment

    base = ["train.limit_train_batches=8", "eval.batch_size=512"]
    results = {}
    for engine in ("recbole", "streaming"):
        cfg = load_config(None, small_overrides(tmp_path / engine, f"dataset.engine={engine}", *base))
        results[engine] = run_experiment(cfg, enable_progress_bar=False)
    r, s = results["recbole"], results["streaming"]
    assert r["valid"]["ndcg@10"] > 0
    for split in ("valid", "test"):
        assert {k: v for k, v in r[split].items() if k != "from"} == {k: v for k, v in s[split].items() if k != "from"}, split
