"""The ``retriever`` config section: a retriever recipe is an ordinary cva_rec recipe (dataset, content,
seed, output folder) plus this section. Registered when ``cva_rec.retrieval`` settings are imported
(``cva-rec train-retriever`` does), so other commands never see it.
"""
from __future__ import annotations

from typing import Any, Mapping

from cva_rec.config import register_section
from cva_rec.errors import ConfigError
from cva_rec.retrieval.cotrain import CotrainSettings

SECTION = {
    "codes_path": (None, "null = learn multi-view codes (tokenizer co-trained with the retriever); or a codes file/folder "
                         "(e.g. `cva-rec tokenize` output: single-view RQ-KMeans codes, N_v = 1) whose paths stay fixed"),
    "views": (4, "N_v: code paths per item (learned codes)"),
    "levels": (3, "code levels L (learned codes; paper: M = 3)"),
    "codes": (64, "codes per level K (learned codes; paper: 128)"),
    "code_dim": (64, "width of the shared codebook / view latents"),
    "tokenizer_hidden": (256, "hidden width of each view's projection and reconstruction MLP"),
    "beta": (0.25, "commitment weight in L_RQ (Eq. 6)"),
    "tau": (0.07, "initial temperature of the cosine softmax (learnable)"),
    "hidden": (64, "retriever transformer width"),
    "layers": (2, "retriever transformer blocks"),
    "heads": (2, "retriever attention heads"),
    "max_len": (50, "most recent history items the retriever reads"),
    "dropout": (0.1, "retriever dropout"),
    "use_content": (True, "add a projection of each item's content vector to its ID embedding in the history"),
    "align_epochs_first": (2, "P1 cross-modal alignment epochs at level 1 (Algorithm 1; paper 3)"),
    "align_epochs": (1, "P1 epochs at later levels (paper 1)"),
    "train_epochs": (3, "P2 co-training epochs per level (paper 4); fixed codes: epochs in all"),
    "lr": (1e-3, "AdamW learning rate"),
    "weight_decay": (0.01, "AdamW weight decay"),
    "batch_size": (128, "training windows per step"),
    "max_targets": (2048, "(context, target) pairs per step, sampled from the windows' positions"),
    "extra_windows": (1, "random earlier windows per user per epoch besides the most recent"),
    "ce_weight": (1.0, "lambda_1, L_CE"),
    "hc_weight": (0.5, "lambda_2, L_HC"),
    "rq_weight": (1.0, "lambda_3, L_RQ"),
    "rec_weight": (1.0, "lambda_4, L_Rec"),
    "div_weight": (0.1, "weight of L_div, the squared cosine between views of one item"),
    "kmeans_iters": (20, "k-means iterations of each level's codebook initialisation"),
    "device": ("cpu", "torch device for training and recall, e.g. cuda"),
}

register_section("retriever", SECTION)


def cotrain_settings(cfg: Mapping[str, Any]) -> CotrainSettings:
    r = cfg["retriever"]
    keys = CotrainSettings.__dataclass_fields__
    s = CotrainSettings(**{k: r[k] for k in keys if k in r}, seed=int(cfg["train"]["seed"]))
    check(cfg)
    return s


def check(cfg: Mapping[str, Any]) -> None:
    r = cfg["retriever"]
    for key in ("views", "levels", "codes", "code_dim", "hidden", "layers", "heads", "max_len", "batch_size", "max_targets"):
        if not isinstance(r[key], int) or r[key] < 1:
            raise ConfigError(f"retriever.{key} must be a positive integer, got {r[key]!r}")
    if r["codes"] < 2:
        raise ConfigError(f"retriever.codes must be >= 2, got {r['codes']}")
    if r["hidden"] % r["heads"]:
        raise ConfigError(f"retriever.hidden ({r['hidden']}) must divide by retriever.heads ({r['heads']})")
    if r["codes_path"] is None and not cfg["content"]["store"]:
        raise ConfigError("learned multi-view codes need item content: set content.store (or give retriever.codes_path)")
