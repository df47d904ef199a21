"""dataset.duplicates and dataset.truncate_before_split, checked against the raw-file reader."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from cva_rec.data.rules import last_n_per_user
from cva_rec.reference.harness import reference_sequences
from tests.conftest import small_overrides
from tests.protocol.test_history_oracle import check_against_recbole_rows
from tests.protocol.tied_data import write_tied_dataset


def tied_data(tmp_path, *extra, repeat_rows=1):
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data

    root = write_tied_dataset(tmp_path / "data", repeat_rows=repeat_rows)
    cfg = load_config(None, small_overrides(tmp_path, "dataset.name=tied", f"dataset.data_path={root}",
                                            "dataset.max_seq_length=50", *extra))
    return cfg, build_data(cfg)


def token_sequences(data):
    tok = data.dataset.field2id_token[data.dataset.iid_field]
    utok = data.dataset.field2id_token[data.dataset.uid_field]
    return {utok[u]: [tok[i] for i in data.sequences.of(u)] for u in range(1, len(utok))}


def test_every_row_twice_is_dropped_and_counted(tmp_path, caplog):
    _, once = tied_data(tmp_path / "once")
    with caplog.at_level(logging.INFO, logger="cva_rec"):
        cfg, twice = tied_data(tmp_path / "twice", repeat_rows=2)
    n_rows = sum(len(s) for s in token_sequences(once).values())
    assert [r.getMessage() for r in caplog.records if "duplicate" in r.getMessage()] == [
        f"dataset tied: dropped {n_rows} exact duplicate rows (same user_id, item_id, timestamp); dataset.duplicates=keep keeps them"
    ]
    assert token_sequences(twice) == token_sequences(once) == reference_sequences(cfg)
    assert twice.item_popularity.tolist() == once.item_popularity.tolist()


def test_duplicates_keep_and_error(tmp_path):
    from cva_rec.errors import DataError

    cfg, kept = tied_data(tmp_path / "keep", "dataset.duplicates=keep", repeat_rows=2)
    seqs = token_sequences(kept)
    assert seqs == reference_sequences(cfg)
    assert all(s[0::2] == s[1::2] for s in seqs.values())  # each interaction twice in a row
    with pytest.raises(DataError, match="exact duplicate rows"):
        tied_data(tmp_path / "error", "dataset.duplicates=error", repeat_rows=2)


def test_truncate_before_split(tmp_path):
    cfg, full = tied_data(tmp_path / "full")
    cfg6, short = tied_data(tmp_path / "short", "dataset.truncate_before_split=6")
    long, cut = token_sequences(full), token_sequences(short)
    assert cut == {u: s[-6:] for u, s in long.items()} == reference_sequences(cfg6)
    assert any(len(s) > 6 for s in long.values())
    check_against_recbole_rows(short, 50)
    # the evaluation targets are unchanged; only the oldest training items go
    assert [s[-2:] for s in cut.values()] == [s[-2:] for s in long.values()]


def test_last_n_per_user():
    users = np.array([1, 1, 1, 2, 3, 3, 3, 3])
    assert last_n_per_user(users, 2).tolist() == [False, True, True, True, False, False, True, True]
