"""Retriever recipes: a cva_rec recipe for the data, plus a ``retriever`` section for the model.

A retriever recipe is a small YAML file of its own::

    recipe: cva_base.yaml           # any cva_rec recipe (relative to this file): dataset, filters, content store, seed
    retriever: {views: 4, ...}      # the keys below; anything not given takes its default
    output: {dir: runs/ml1m_retrieval, name: grdr-v4}

so the retriever reads exactly the dataset split (and item content) of the runs it serves.
``--set retriever.KEY=V`` / ``--set output.KEY=V`` change this file's keys; any other section goes
to the cva_rec recipe (e.g. ``--set train.seed=1``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, Mapping

import yaml

from cva_rec.errors import ConfigError
from cva_rec.config.recipe_yaml import load_yaml  # 1e-4 is a number here too, as in training recipes
from cva_rec.registry import closest
from cva_rec.retrieval.cotrain import CotrainSettings

SECTION = {
    "context": ("own", "history encoder of the recall stage: own = GRDR's transformer over the history, codes co-trained "
                       "from item content; reranker = the trained run `reranker` (its encoder is the context, its item "
                       "table is quantised into the codes; docs/retrieval.md)"),
    "reranker": (None, "context reranker: the trained cva_rec run directory (relative to the working directory) to use"),
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

OUTPUT = {"dir": "runs", "name": None}


def _parse_value(text: str, raw: str):
    try:
        return load_yaml(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: value is not valid YAML") from None


def load_retriever_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Dict[str, Any]:
    """-> ``{"recipe": <validated cva_rec config>, "retriever": {...}, "output": {...}}``."""
    from cva_rec.config.schema import load_config

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"retriever recipe not found: {path}")
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping")
    unknown = set(data) - {"recipe", "retriever", "output"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; a retriever recipe has recipe, retriever, output")
    if not isinstance(data.get("recipe"), str):
        raise ConfigError(f"{path}: `recipe:` must name the cva_rec recipe that gives the dataset and content")
    r = {k: v[0] for k, v in SECTION.items()}
    out = dict(OUTPUT)
    base_overrides = []
    for sec, target in (("retriever", r), ("output", out)):
        given = data.get(sec) or {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"{path}: {sec} must be a mapping")
        for k, v in given.items():
            if k not in target:
                raise ConfigError(f"{path}: unknown key {sec}.{k}{closest(str(k), target)}")
            target[k] = v
    for text in overrides:
        key, sep, raw = text.partition("=")
        sec, _, name = key.strip().partition(".")
        if sec in ("retriever", "output"):
            target = r if sec == "retriever" else out
            if not sep or name not in target:
                raise ConfigError(f"--set {text!r}: unknown key {key}{closest(name, target)}")
            target[name] = _parse_value(text, raw)
        else:
            base_overrides.append(text)
    recipe = load_config(path.parent / data["recipe"], base_overrides)
    rc = {"recipe": recipe, "retriever": r, "output": out}
    check(rc)
    return rc


def cotrain_settings(rc: Mapping[str, Any]) -> CotrainSettings:
    r = rc["retriever"]
    keys = CotrainSettings.__dataclass_fields__
    return CotrainSettings(**{k: r[k] for k in keys if k in r}, seed=int(rc["recipe"]["train"]["seed"]))


def check(rc: Mapping[str, Any]) -> None:
    r = rc["retriever"]
    for key in ("views", "levels", "codes", "code_dim", "hidden", "layers", "heads", "max_len", "batch_size", "max_targets"):
        if isinstance(r[key], bool) or not isinstance(r[key], int) or r[key] < 1:
            raise ConfigError(f"retriever.{key} must be a positive integer, got {r[key]!r}")
    if r["codes"] < 2:
        raise ConfigError(f"retriever.codes must be >= 2, got {r['codes']}")
    if r["hidden"] % r["heads"]:
        raise ConfigError(f"retriever.hidden ({r['hidden']}) must divide by retriever.heads ({r['heads']})")
    if r["context"] not in ("own", "reranker"):
        raise ConfigError(f"retriever.context must be 'own' or 'reranker', got {r['context']!r}")
    if r["context"] == "reranker":
        if not r["reranker"]:
            raise ConfigError("retriever.context: reranker needs retriever.reranker, the trained run directory it uses")
        if r["codes_path"] is not None:
            raise ConfigError("retriever.context: reranker fits its codes on the reranker's item table; "
                              "retriever.codes_path must stay null")
        return
    if r["codes_path"] is None and not rc["recipe"]["content"]["store"]:
        raise ConfigError("learned multi-view codes need item content: the recipe must set content.store "
                          "(or give retriever.codes_path)")
