"""RecBole datasets from atomic files: explicit ``data_path``, leave-two-out by time, filters.

This module is the only place that turns a cva_rec config into RecBole's ``Config`` and
datasets. It never lets RecBole download anything: the ``<data_path>/<name>/<name>.inter``
file must exist, and ``data_path: null`` means RecBole's bundled example folder.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np
import torch

import cva_rec  # noqa: F401  (RecBole compat shims first)
from cva_rec.data.files import check_dataset_files
from cva_rec.errors import DataError
from cva_rec.heap import release_free_heap
from cva_rec.data.histories import UserHistory, UserSequences  # noqa: F401  (UserHistory re-exported)
from cva_rec.data.sequential_data import SequentialData  # noqa: F401  (re-exported: the type build_data returns)
from cva_rec.config.recbole_keys import OWN_MODEL_DEFAULTS


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
    own_defaults = OWN_MODEL_DEFAULTS.get(cfg["model"]["name"], {})  # a backbone RecBole lacks: its defaults here
    model_params = {**own_defaults, **{k: v for k, v in cfg["model"].items() if k != "name"}}
    return {
        **model_params,
        "data_path": str(resolve_data_path(cfg)),
        "USER_ID_FIELD": uf,
        "ITEM_ID_FIELD": itf,
        "TIME_FIELD": tf,
        "load_col": {"inter": [uf, itf, tf]},
        # RecBole stores the time as float32 (min-max normalised first: its normalize_all, set for every
        # dataset) and sorts each user's rows stably on it; cva_rec.data.rules sorts the rows by the exact
        # time before that, so no user's order depends on float32 precision (docs/evaluation.md)
        "normalize_all": True,
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


def user_sequences(split_datasets, n_users: int) -> UserSequences:
    """Each user's whole sequence in the order RecBole's own split used.

    RecBole 1.2.1 augments the data before splitting (one row per target, its window in
    ``item_id_list``), then ``build()`` re-sorts those rows *by time alone* and cuts each
    user's last two rows off as validation and test. The rows of one user keep their relative
    order through both stable sorts, so a user's sequence is: the first row's first input item,
    then the targets of the train, valid and test rows in that order. Nothing here assumes the
    full dataset's row order (assuming (user, time) order would mask other users' items).
    """
    users, targets, first_inputs, lengths = [], [], [], []
    for ds in split_datasets:
        feat = ds.inter_feat
        users.append(feat[ds.uid_field].numpy())
        targets.append(feat[ds.iid_field].numpy())
        first_inputs.append(feat[ds.item_id_list_field][:, 0].numpy())
        lengths.append(feat[ds.item_list_length_field].numpy())
    users, targets = np.concatenate(users), np.concatenate(targets)
    first_inputs, lengths = np.concatenate(first_inputs), np.concatenate(lengths)
    order = np.argsort(users, kind="stable")
    users, targets, first_inputs, lengths = users[order], targets[order], first_inputs[order], lengths[order]
    is_first = np.ones(len(users), dtype=bool)
    is_first[1:] = users[1:] != users[:-1]
    if np.any(lengths[is_first] != 1):
        raise DataError("RecBole's split rows are not in per-user order (a user's first row has more than one input item)")
    # insert each user's first input item before that user's first target
    items = np.insert(targets, np.flatnonzero(is_first), first_inputs[is_first])
    row_users = np.insert(users, np.flatnonzero(is_first), users[is_first])
    return UserSequences.from_rows(row_users, items, n_users)


def recbole_config(cfg: Mapping[str, Any]):
    """RecBole's ``Config`` for ``cfg`` (both engines: the backbones read it), on the CPU."""
    from recbole.config import Config

    model = cfg["model"]["name"]
    if model == "FMLPRec":  # the project's own model (OWN_MODEL_DEFAULTS): RecBole's Config takes its class
        from cva_rec.backbones.fmlp_rec import FMLPRec  # a leaf module: torch and RecBole only

        model = FMLPRec
    # RecBole's Config also parses sys.argv as "--key=value" overrides; our CLI's arguments are
    # not meant for it (and it would print a warning about each), so hide them while it reads
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        config = Config(model=model, dataset=cfg["dataset"]["name"], config_dict=recbole_config_dict(cfg))
    finally:
        sys.argv = argv
    config["device"] = torch.device("cpu")
    return config


def build_data(cfg: Mapping[str, Any]) -> SequentialData:
    """Load, filter and split the dataset named in ``cfg``: RecBole's datasets (``dataset.engine:
    recbole``, the default) or the streaming engine's CSR sequences (``cva_rec.data.streaming``)."""
    data = _build_data(cfg)
    # the build's freed transients (raw columns, sort permutations, DataFrames) stay in glibc's heap;
    # left there, the training step's allocations land above them (measured at 10M: +230 MB at the peak)
    release_free_heap()
    return data


def _build_data(cfg: Mapping[str, Any]) -> SequentialData:
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from cva_rec.data.rules import create_dataset  # duplicates / truncation rules, held-out items

    config = recbole_config(cfg)
    if cfg["dataset"].get("engine", "recbole") == "streaming":  # the one switch between the two engines
        from cva_rec.data.streaming.engine import build_streaming_data

        return build_streaming_data(cfg, config, resolve_data_path(cfg) / cfg["dataset"]["name"] / f"{cfg['dataset']['name']}.inter")
    check_dataset_files(cfg, resolve_data_path(cfg))  # one DataError line for malformed atomic files
    init_seed(config["seed"], config["reproducibility"])
    _quiet_recbole()
    try:
        dataset = create_dataset(config, cfg["dataset"])
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
    seqs = user_sequences([train._dataset, valid._dataset, test._dataset], dataset.user_num)
    return SequentialData.from_sequences(
        config, dataset, train, valid, test, seqs,
        cold_items=None if getattr(dataset, "cold_item_mask", None) is None else torch.from_numpy(dataset.cold_item_mask),
    )


def _quiet_recbole() -> None:
    # RecBole logs dataset statistics through the root logger at INFO; keep the console clean.
    logging.getLogger("recbole").setLevel(logging.WARNING)
