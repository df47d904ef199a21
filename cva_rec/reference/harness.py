"""Glue between a trained model and the references: the project's scores, the reference's inputs.

The scores come from the model under test (that is what is being evaluated); everything the
evaluation *derives* (targets, histories to mask, ranks, metrics) comes from the independent
reader and evaluator of this package. Used by tests/protocol and ``cva-rec bench fidelity``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from cva_rec.reference import ranking
from cva_rec.reference.raw_sequences import drop_exact_duplicates, filter_by_counts, read_inter, truncate, user_sequences


def raw_protocol(cfg: Mapping[str, Any], data, split: str = "test") -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
    """(users, targets, histories) in the dataset's internal ids, read from the raw .inter file.

    ``data`` is used only for RecBole's token -> id maps. Test target = last item, valid = second last.
    """
    return protocol_from_sequences(reference_sequences(cfg), data, split)


def reference_sequences(cfg: Mapping[str, Any]) -> Dict[str, List[str]]:
    """user token -> item tokens after the dataset rules (duplicates, filters, truncation), from the raw file."""
    from cva_rec.data.dataset import resolve_data_path  # only to find the file

    ds = cfg["dataset"]
    path = resolve_data_path(cfg) / ds["name"] / f"{ds['name']}.inter"
    df = read_inter(path, ds["user_field"], ds["item_field"], ds["time_field"])
    if ds.get("duplicates", "drop") == "drop":
        df = drop_exact_duplicates(df)
    df = filter_by_counts(df, ds["min_user_interactions"], ds["min_item_interactions"])
    seqs = user_sequences(df)
    return truncate(seqs, ds["truncate_before_split"]) if ds.get("truncate_before_split") else seqs


def protocol_from_sequences(seqs: Dict[str, List[str]], data, split: str = "test"):
    """(users, targets, histories) in internal ids from token sequences."""
    uid = data.dataset.field2token_id[data.dataset.uid_field]
    iid = data.dataset.field2token_id[data.dataset.iid_field]
    drop = 1 if split == "test" else 2
    users, targets, hists = [], [], []
    for user, items in seqs.items():
        ids = [iid[i] for i in items]
        users.append(uid[user])
        targets.append(ids[len(ids) - drop])
        hists.append(np.asarray(ids[: len(ids) - drop], dtype=np.int64))
    order = np.argsort(users)
    return np.asarray(users)[order], np.asarray(targets)[order], [hists[i] for i in order]


@torch.no_grad()
def score_matrix(module, data, cfg: Mapping[str, Any], split: str = "test") -> Tuple[np.ndarray, np.ndarray]:
    """(users, scores [n_users, n_items] float32) of the model in ``module`` on the split's rows."""
    from cva_rec.backbones import item_encoder_of
    from cva_rec.training.datamodule import RecBoleDataModule

    dm = RecBoleDataModule(data, cfg)
    loader = dm.test_dataloader() if split == "test" else dm.val_dataloader()
    module.eval()
    item_encoder_of(module.model).invalidate_cache()
    users, scores = [], []
    for interaction, batch_users, *_ in loader:
        users.append(batch_users.numpy())
        scores.append(module.model.full_sort_predict(interaction).view(len(batch_users), -1).float().numpy())
    users, scores = np.concatenate(users), np.concatenate(scores)
    order = np.argsort(users)
    return users[order], scores[order]


def reference_metrics(scores: np.ndarray, users: np.ndarray, targets: np.ndarray, seed: int, topk,
                      histories: Optional[List[np.ndarray]] = None, negatives: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Dict[str, float]]:
    r = ranking.ranks(scores, users, targets, seed, histories=histories, negatives=negatives)
    return r, ranking.metrics(r, topk)


def history_agreement(cfg: Mapping[str, Any], data) -> Dict[str, Any]:
    """How far the library's histories and popularity agree with RecBole's rows and the raw file.

    * ``recbole_rows``: users whose test history agrees with RecBole's own test row (equal to its
      ``item_id_list`` where that window covers the whole history, else ending with it), and
      whose validation history agrees with RecBole's validation row likewise;
    * ``raw_file``: users whose whole sequence equals the independent reader's;
    * ``popularity``: items whose training popularity equals the reader's count.
    """
    from cva_rec.reference.raw_sequences import training_targets

    def rows_agree(loader, history):
        ds = loader._dataset
        f = ds.inter_feat
        ok = 0
        for u, window, n in zip(f[ds.uid_field].numpy(), f[ds.item_id_list_field].numpy(), f[ds.item_list_length_field].numpy()):
            h = history.of(int(u))
            covered = n < window.shape[0]  # the window holds the whole history
            ok += bool(len(h) >= n and np.array_equal(h[len(h) - n:], window[:n]) and (len(h) == n or not covered))
        return ok, len(f[ds.uid_field])

    ok_t, n_t = rows_agree(data.test, data.test_history)
    ok_v, n_v = rows_agree(data.valid, data.valid_history)
    ref = reference_sequences(cfg)
    tok = data.dataset.field2id_token[data.dataset.iid_field]
    utok = data.dataset.field2id_token[data.dataset.uid_field]
    same = sum([tok[i] for i in data.sequences.of(u)] == ref.get(utok[u]) for u in range(1, len(utok)))
    counts = training_targets(ref)
    pop = data.item_popularity.numpy()
    same_pop = sum(float(pop[i]) == counts.get(tok[i], 0) for i in range(1, len(tok)))
    return {
        "users": len(utok) - 1,
        "recbole_rows_test": ok_t / n_t, "recbole_rows_valid": ok_v / n_v,
        "raw_file_sequences": same / (len(utok) - 1),
        "popularity": same_pop / (len(tok) - 1),
    }
