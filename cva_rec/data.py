"""RecBole datasets from atomic files: explicit ``data_path``, leave-two-out by time, filters.

This module is the only place that turns a cva_rec config into RecBole's ``Config`` and
datasets. It never lets RecBole download anything: the ``<data_path>/<name>/<name>.inter``
file must exist, and ``data_path: null`` means RecBole's bundled example folder.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np
import torch

import cva_rec  # noqa: F401  (RecBole compat shims first)
from cva_rec.errors import DataError


def bundled_data_path() -> Path:
    import recbole

    return Path(recbole.__file__).parent / "dataset_example"


def resolve_data_path(cfg: Mapping[str, Any]) -> Path:
    ds = cfg["dataset"]
    root = Path(ds["data_path"]).expanduser() if ds["data_path"] else bundled_data_path()
    inter = root / ds["name"] / f"{ds['name']}.inter"
    if not inter.is_file():
        hint = "" if ds["data_path"] else " (data_path is null, which means RecBole's bundled examples: only ml-100k is there)"
        raise DataError(f"dataset file not found: {inter}{hint}; set dataset.data_path to the folder that holds {ds['name']}/")
    return root


def recbole_config_dict(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The RecBole config for a cva_rec config (model hyper-parameters pass through)."""
    ds, tr, ev = cfg["dataset"], cfg["train"], cfg["eval"]
    uf, itf, tf = ds["user_field"], ds["item_field"], ds["time_field"]
    model_params = {k: v for k, v in cfg["model"].items() if k != "name"}
    return {
        **model_params,
        "data_path": str(resolve_data_path(cfg)),
        "USER_ID_FIELD": uf,
        "ITEM_ID_FIELD": itf,
        "TIME_FIELD": tf,
        "load_col": {"inter": [uf, itf, tf]},
        "MAX_ITEM_LIST_LENGTH": ds["max_seq_length"],
        "user_inter_num_interval": f"[{ds['min_user_interactions']},inf)",
        "item_inter_num_interval": f"[{ds['min_item_interactions']},inf)",
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "train_neg_sample_args": None,
        "loss_type": "CE",
        "train_batch_size": tr["batch_size"],
        "eval_batch_size": ev["batch_size"],
        "seed": tr["seed"],
        "reproducibility": True,
        "use_gpu": False,  # devices are Lightning's business; RecBole only builds data here
        "show_progress": False,
        "state": "WARNING",
        "epochs": tr["epochs"],
        "learner": tr["optimizer"],
        "learning_rate": tr["lr"],
        "weight_decay": tr["weight_decay"],
        "clip_grad_norm": {"max_norm": tr["grad_clip"]} if tr["grad_clip"] else None,
        "stopping_step": tr["early_stopping_patience"] or 10**9,
        "metrics": ["Hit", "NDCG", "MRR", "Recall"],
        "topk": list(ev["topk"]),
        "valid_metric": _recbole_metric_name(ev["valid_metric"]),
        "checkpoint_dir": str(Path(cfg["output"]["dir"]) / "_recbole"),
        "worker": 0,
    }


def _recbole_metric_name(name: str) -> str:
    metric, _, k = name.lower().partition("@")
    return {"hr": "Hit", "ndcg": "NDCG", "mrr": "MRR", "recall": "Recall"}[metric] + "@" + k


@dataclass
class SequentialData:
    """Everything the loops need about one dataset split."""

    config: Any  # recbole.config.Config
    dataset: Any  # the filtered full dataset (inter_feat sorted by user, time)
    train: Any  # RecBole TrainDataLoader
    valid: Any  # RecBole FullSortEvalDataLoader
    test: Any
    item_popularity: torch.Tensor  # [n_items] training-set target counts
    valid_history: "UserHistory"
    test_history: "UserHistory"

    @property
    def n_items(self) -> int:
        return self.dataset.item_num

    @property
    def item_tokens(self) -> list:
        return list(self.dataset.field2id_token[self.dataset.iid_field])


class UserHistory:
    """Items each user saw before an evaluation target, as CSR arrays indexed by user id."""

    def __init__(self, indptr: np.ndarray, items: np.ndarray):
        self.indptr, self.items = indptr, items

    def index_pairs(self, user_ids: np.ndarray):
        """-> (rows, items) of every (batch row, history item) pair, for masking scores."""
        starts, ends = self.indptr[user_ids], self.indptr[user_ids + 1]
        lengths = ends - starts
        rows = np.repeat(np.arange(len(user_ids)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return torch.from_numpy(rows), torch.from_numpy(self.items[np.repeat(starts, lengths) + offsets])


def _histories(dataset, n_users: int):
    """Per-user histories before the validation target and before the test target.

    ``dataset.inter_feat`` is sorted by (user, time) by RecBole's ``build()``, the same
    order its leave-two-out split used: valid target = second last, test = last.
    """
    uid = dataset.inter_feat[dataset.uid_field].numpy()
    iid = dataset.inter_feat[dataset.iid_field].numpy()
    counts = np.bincount(uid, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def build(drop_last: int) -> UserHistory:
        keep = np.maximum(counts - drop_last, 0)
        indptr = np.concatenate([[0], np.cumsum(keep)])
        idx = np.repeat(starts, keep) + (np.arange(keep.sum()) - np.repeat(indptr[:-1], keep))
        return UserHistory(indptr, iid[idx])

    return build(2), build(1)


def build_data(cfg: Mapping[str, Any]) -> SequentialData:
    """Load, filter and split the dataset named in ``cfg`` (RecBole does the heavy lifting)."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    # RecBole's Config also parses sys.argv as "--key=value" overrides; our CLI's arguments are
    # not meant for it (and it would print a warning about each), so hide them while it reads
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        config = Config(model=cfg["model"]["name"], dataset=cfg["dataset"]["name"], config_dict=recbole_config_dict(cfg))
    finally:
        sys.argv = argv
    config["device"] = torch.device("cpu")
    init_seed(config["seed"], config["reproducibility"])
    _quiet_recbole()
    try:
        dataset = create_dataset(config)
    except (ValueError, KeyError) as exc:
        ds = cfg["dataset"]
        if "empty" in str(exc):
            raise DataError(
                f"dataset {ds['name']!r}: no interactions left after keeping users with >= {ds['min_user_interactions']} "
                f"and items with >= {ds['min_item_interactions']} interactions: too few to train and evaluate"
            ) from None
        raise DataError(f"could not read dataset {ds['name']!r}: {exc}") from None
    min_u = cfg["dataset"]["min_user_interactions"]
    if dataset.inter_num == 0 or dataset.user_num <= 2:
        raise DataError(
            f"dataset {cfg['dataset']['name']!r} has {dataset.inter_num} interactions from {max(dataset.user_num - 1, 0)} users "
            f"after keeping users with >= {min_u} interactions: too few to train and evaluate"
        )
    if min_u < 3:
        raise DataError(f"dataset.min_user_interactions={min_u}: leave-two-out needs at least 3 interactions per user")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # data_preparation prints its batch settings through the root logger
    try:
        train, valid, test = data_preparation(config, dataset)
    finally:
        root.setLevel(level)
    valid_hist, test_hist = _histories(dataset, dataset.user_num)
    # training interactions = everything before each user's validation target
    pop = np.bincount(valid_hist.items, minlength=dataset.item_num)
    return SequentialData(config, dataset, train, valid, test, torch.from_numpy(pop).float(), valid_hist, test_hist)


def _quiet_recbole() -> None:
    # RecBole logs dataset statistics through the root logger at INFO; keep the console clean.
    logging.getLogger("recbole").setLevel(logging.WARNING)
