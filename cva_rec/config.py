"""Experiment configuration: one YAML per recipe, validated before anything runs.

A recipe has the sections ``model``, ``dataset``, ``content``, ``item_encoder``, ``loss``,
``train``, ``eval`` and ``output`` (plus ``semantic_ids``, ``fusion`` and ``warmup`` for LUCID
runs). :data:`SCHEMA` lists every key with its default and meaning; ``docs/config.md`` is
checked against it by a test. Unknown keys are errors (a typo must not silently fall back to
a default). Two sections are open: ``model`` also accepts any hyper-parameter of the chosen
RecBole model (validated against RecBole's own YAML for that model) and ``item_encoder``
accepts the options of the chosen encoder (validated by the encoder registry).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping

import yaml

from cva_rec.errors import ConfigError
from cva_rec.registry import closest

# section -> key -> (default, meaning)
SCHEMA: Dict[str, Dict[str, tuple]] = {
    "model": {
        "name": ("SASRec", "RecBole sequential backbone: SASRec, GRU4Rec or NextItNet"),
        "hidden_size": (64, "SASRec hidden size (item vectors have this width); GRU4Rec's GRU state size"),
        "embedding_size": (64, "GRU4Rec / NextItNet item-vector width"),
    },
    "dataset": {
        "name": ("ml-100k", "dataset name: the folder <data_path>/<name>/ holding <name>.inter (RecBole atomic files)"),
        "data_path": (None, "parent folder of the dataset folder; null = RecBole's bundled example folder (ml-100k only, never a download)"),
        "max_seq_length": (50, "keep the most recent N items of each history (RecBole MAX_ITEM_LIST_LENGTH)"),
        "min_user_interactions": (5, "drop users with fewer interactions (applied with the item filter until stable)"),
        "min_item_interactions": (0, "drop items with fewer interactions (0 = keep all)"),
        "split": ("leave_two_out", "leave_two_out: last item = test, second last = validation, by timestamp"),
        "user_field": ("user_id", "user id column of the .inter file"),
        "item_field": ("item_id", "item id column of the .inter file"),
        "time_field": ("timestamp", "timestamp column used to order each history"),
    },
    "content": {
        "store": (None, "feature-store directory read by content encoders (null for ID-only runs)"),
        "missing": ("error", "items without features: error | zeros | mean"),
        "max_frames": (None, "use only the first N stored frames/segments per item (null = all)"),
        "dtype": ("float16", "on-device dtype of the frozen features: float16 | bfloat16 | float32"),
    },
    "item_encoder": {
        "name": ("id", "item encoder (see `cva-rec train --list-encoders`): id, pooling, mlp, perceiver_io, cva, id_content, semantic_id, ..."),
    },
    "loss": {
        "name": ("full_softmax", "full_softmax (RecBole default: CE over all items) | inbatch_softmax (MicroLens) | sampled_softmax"),
        "temperature": (1.0, "logits are divided by this"),
        "logq_correction": (True, "in-batch / sampled softmax: subtract log item popularity from candidate logits"),
        "mask_history": (True, "in-batch / sampled softmax: candidates in the user's input history (other than the target) get -inf"),
        "num_negatives": (100, "sampled_softmax: negatives per batch, drawn by popularity"),
        "popularity_alpha": (1.0, "sampled_softmax: negatives drawn with probability proportional to count ** alpha"),
    },
    "train": {
        "epochs": (20, "maximum training epochs"),
        "batch_size": (2048, "global training batch (interactions), split evenly over the DDP processes; must divide by devices x num_nodes"),
        "optimizer": ("adamw", "adamw | adam"),
        "lr": (1e-3, "learning rate"),
        "weight_decay": (0.0, "weight decay"),
        "scheduler": ("none", "none | cosine | linear (decay to 0 over all steps, after warmup_steps of linear warm-up)"),
        "warmup_steps": (0, "linear learning-rate warm-up steps (with a scheduler)"),
        "grad_clip": (None, "clip the gradient norm to this value (null = off)"),
        "seed": (2020, "seed for model init, shuffling and sampling"),
        "deterministic": (False, "torch deterministic algorithms (slower; exact repeatability)"),
        "early_stopping_patience": (10, "stop after this many validations without a better eval.valid_metric (0 = off)"),
        "accelerator": ("cpu", "Lightning accelerator: cpu | gpu | auto"),
        "devices": (1, "Lightning devices per node"),
        "strategy": ("auto", "Lightning strategy, e.g. ddp"),
        "num_nodes": (1, "Lightning number of nodes"),
        "precision": ("32-true", "Lightning precision, e.g. 32-true | bf16-mixed | 16-mixed"),
        "num_workers": (0, "DataLoader workers"),
        "limit_train_batches": (None, "train on at most this many batches (int) or fraction (float) per epoch (debugging)"),
        "resume": (False, "continue from <run_dir>/checkpoints/last.ckpt when it exists"),
    },
    "eval": {
        "metrics": (["hr", "ndcg", "mrr", "recall"], "metrics: hr, ndcg, mrr, recall"),
        "topk": ([10, 20], "cut-offs"),
        "batch_size": (4096, "users per evaluation batch"),
        "mask_history": (True, "give the user's earlier items -inf before ranking (RecBole's sequential evaluator does not)"),
        "negatives": (None, "null = full ranking over all items; N = rank the target among N popularity-sampled negatives"),
        "valid_metric": ("ndcg@10", "metric for the best checkpoint and early stopping"),
        "popularity_buckets": (10, "break test metrics down by this many target-popularity buckets (0 = off)"),
    },
    # FLUID staged warmup (`cva-rec warmup`, cva_rec/warmup/): ignored by `cva-rec train`
    "warmup": {
        "stages": (["id", "slice", "phase_out", "room"], "stages to run, in order, from: id, slice, phase_out, room, add_id_back"),
        "id_epochs": (20, "stage 0 (ID model) maximum epochs (early stopping applies)"),
        "slice_epochs": (10, "stage 1 (+ slice token) maximum epochs"),
        "phase_out_epochs": (6, "stage 2 epochs in all: the phase-out span, then ID-free epochs (no early stopping)"),
        "phase_out_span": (3, "epochs over which the ID's weight goes from 1 to 0 (<= phase_out_epochs)"),
        "phase_out_schedule": ("linear", "ID weight schedule over the span: linear | cosine | step"),
        "phase_out_steps": (4, "number of stairs of the step schedule"),
        "room_epochs": (10, "stage 3 (+ room token) maximum epochs"),
        "room_init": ("slice", "stage 3 room tables: slice (copy the warm slice tables by prefix) | random"),
        "add_id_back_epochs": (5, "the add-the-ID-back check: maximum epochs"),
        "finetune_lr": (None, "learning rate of the stages after 'id' (they fine-tune a converged model); null = train.lr"),
        "reuse_run": (None, "another warmup output folder whose finished stages are reused (ablations that share a prefix of the chain)"),
        "reuse_stages": ([], "the leading stages taken from reuse_run instead of trained, e.g. [id] or [id, slice, phase_out]"),
    },
    "output": {
        "dir": ("runs", "parent folder of run directories"),
        "name": (None, "run directory name (null = <dataset>-<model>-<encoder>-<loss>-s<seed>)"),
    },
}

OPEN_SECTIONS = {"item_encoder", "model"}
#: sections owned by later stages (LUCID); validated by their own modules
EXTENSION_SECTIONS: Dict[str, Dict[str, tuple]] = {}


def register_section(name: str, schema: Dict[str, tuple]) -> None:
    """Let a feature module (e.g. semantic ids, warmup) declare its own config section."""
    EXTENSION_SECTIONS[name] = schema


def all_sections() -> Dict[str, Dict[str, tuple]]:
    return {**SCHEMA, **EXTENSION_SECTIONS}


def defaults() -> Dict[str, Dict[str, Any]]:
    return {sec: {k: copy.deepcopy(v[0]) for k, v in keys.items()} for sec, keys in all_sections().items()}


def _recbole_model_keys(model_name: str) -> set:
    """Hyper-parameters RecBole itself declares for ``model_name`` (its properties YAML)."""
    import recbole

    path = Path(recbole.__file__).parent / "properties" / "model" / f"{model_name}.yaml"
    if not path.exists():
        return set()
    with open(path) as fh:
        return set((yaml.safe_load(fh) or {}).keys()) - {"loss_type"}


def _merge(base: Dict[str, Any], update: Mapping[str, Any], source: str) -> None:
    sections = all_sections()
    for sec, values in update.items():
        if sec not in sections:
            raise ConfigError(f"{source}: unknown config section {sec!r}{closest(sec, sections)}; sections: {', '.join(sections)}")
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: section {sec!r} must be a mapping, got {type(values).__name__}")
        if sec == "item_encoder" and "name" in values and values.get("name") != base[sec].get("name"):
            base[sec] = {"name": values["name"]}  # switching encoder drops the old encoder's options
        for key, value in values.items():
            base[sec][key] = copy.deepcopy(value)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``section.key=value`` (value parsed as YAML; ``a.b.c=v`` sets a nested key) -> (path, value)."""
    path, sep, raw = text.partition("=")
    parts = path.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=3")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parts, value


def apply_override(cfg: Dict[str, Any], text: str) -> None:
    parts, value = parse_override(text)
    sections = all_sections()
    if parts[0] not in sections:
        raise ConfigError(f"--set {text}: unknown config section {parts[0]!r}{closest(parts[0], sections)}")
    if parts[0] == "item_encoder" and parts[1:] == ["name"] and value != cfg["item_encoder"].get("name"):
        cfg["item_encoder"] = {}  # switching encoder drops the old encoder's options
    node = cfg[parts[0]]
    for p in parts[1:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def _merge_file(cfg: Dict[str, Any], p: Path, chain: tuple) -> None:
    """Merge one recipe file; a top-level ``base: other.yaml`` (relative to this file) is merged first,
    so an ablation recipe states only what differs from the recipe it varies."""
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}" + (f" (base of {chain[-1]})" if chain else ""))
    if p.resolve() in chain:
        raise ConfigError(f"{p}: circular base chain {' -> '.join(map(str, chain))}")
    try:
        with open(p) as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: top level must be a mapping of sections")
    data = dict(data)
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{p}: base must be a recipe path, got {base!r}")
        _merge_file(cfg, p.parent / base, chain + (p.resolve(),))
    _merge(cfg, data, str(p))


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = (), extra: Mapping | None = None) -> Dict[str, Any]:
    """Defaults <- YAML file <- ``extra`` mapping <- ``--set`` overrides, then validated."""
    cfg = defaults()
    if path is not None:
        _merge_file(cfg, Path(path), ())
    if extra:
        _merge(cfg, extra, "config")
    for text in overrides:
        apply_override(cfg, text)
    validate(cfg)
    return cfg


BACKBONE_NAMES = ("SASRec", "GRU4Rec", "NextItNet")


def validate(cfg: Dict[str, Any]) -> None:
    sections = all_sections()
    for sec, keys in cfg.items():
        if sec in OPEN_SECTIONS:
            continue
        for key in keys:
            if key not in sections[sec]:
                raise ConfigError(f"unknown config key {sec}.{key}{closest(key, sections[sec])}; keys of {sec!r}: {', '.join(sections[sec])}")
    name = cfg["model"]["name"]
    canonical = {n.lower(): n for n in BACKBONE_NAMES}
    if str(name).lower() not in canonical:
        raise ConfigError(f"unknown model {name!r}{closest(str(name), BACKBONE_NAMES)}; known: {', '.join(BACKBONE_NAMES)}")
    cfg["model"]["name"] = canonical[str(name).lower()]
    allowed = _recbole_model_keys(cfg["model"]["name"]) | set(SCHEMA["model"])
    for key in cfg["model"]:
        if key not in allowed:
            raise ConfigError(f"unknown config key model.{key} for {cfg['model']['name']}{closest(key, allowed)}; keys: {', '.join(sorted(allowed))}")
    from cva_rec.training.losses import LOSSES  # late import: losses import torch

    LOSSES.get(cfg["loss"]["name"])
    _check_choice(cfg, "train", "optimizer", ("adamw", "adam"))
    _check_choice(cfg, "train", "scheduler", ("none", "cosine", "linear"))
    _check_choice(cfg, "content", "missing", ("error", "zeros", "mean"))
    _check_choice(cfg, "content", "dtype", ("float16", "bfloat16", "float32"))
    _check_choice(cfg, "dataset", "split", ("leave_two_out",))
    for m in cfg["eval"]["metrics"]:
        if str(m).lower() not in ("hr", "ndcg", "mrr", "recall"):
            raise ConfigError(f"unknown metric {m!r} in eval.metrics; known: hr, ndcg, mrr, recall")
    vm = str(cfg["eval"]["valid_metric"]).lower()
    metric, _, k = vm.partition("@")
    if metric not in ("hr", "ndcg", "mrr", "recall") or not k.isdigit():
        raise ConfigError(f"eval.valid_metric {vm!r} must look like ndcg@10")
    for key in ("epochs", "batch_size", "max_seq_length"):
        sec = "dataset" if key == "max_seq_length" else "train"
        v = cfg[sec][key]
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"{sec}.{key} must be a positive integer, got {v!r}")
    from cva_rec.encoders import ENCODERS, encoder_options

    enc = cfg["item_encoder"].get("name", "")
    ENCODERS.get(enc)
    options = encoder_options(enc)
    for key in cfg["item_encoder"]:
        if key != "name" and key not in options:
            raise ConfigError(f"item_encoder {enc!r} has no option {key!r}{closest(key, options)}; options: {', '.join(sorted(options)) or 'none'}")


def _check_choice(cfg, sec, key, choices):
    value = cfg[sec][key]
    if value not in choices:
        raise ConfigError(f"{sec}.{key} must be one of {', '.join(map(str, choices))}; got {value!r}")


def dump_config(cfg: Mapping[str, Any], path: str | os.PathLike) -> None:
    from cva_rec.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False))


def run_name(cfg: Mapping[str, Any]) -> str:
    if cfg["output"]["name"]:
        return str(cfg["output"]["name"])
    return f"{cfg['dataset']['name']}-{cfg['model']['name']}-{cfg['item_encoder']['name']}-{cfg['loss']['name']}-s{cfg['train']['seed']}"


def config_reference_markdown() -> str:
    """Every config key with its default and meaning (docs/config.md is generated from this)."""
    lines = []
    for sec, keys in all_sections().items():
        lines += [f"## `{sec}`", "", "| key | default | meaning |", "|---|---|---|"]
        for key, (default, meaning) in keys.items():
            lines.append(f"| `{sec}.{key}` | `{yaml.safe_dump(default, default_flow_style=True).strip().removesuffix('...').strip()}` | {meaning} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m cva_rec.config > docs/config.md (regenerate the reference)
    print(
        "# Configuration reference\n\n"
        "A recipe is a YAML file with these sections; every key is optional and takes the default below. "
        "Unknown keys are errors. Override any key on the command line with `--set section.key=value`. "
        "A recipe may start with `base: other.yaml` (a path relative to the recipe): that recipe is read first "
        "and this one only states what differs.\n\n"
        "Two sections are open: `model` also accepts every hyper-parameter RecBole declares for the chosen "
        "model (e.g. `n_layers`, `n_heads`, `inner_size`, `hidden_dropout_prob` for SASRec; `num_layers`, "
        "`dropout_prob` for GRU4Rec; `kernel_size`, `block_num`, `dilations`, `reg_weight` for NextItNet), and "
        "`item_encoder` accepts the options of the chosen encoder (see docs/encoders.md).\n\n"
        "_Generated by `python -m cva_rec.config > docs/config.md`; a test checks it lists every key._\n"
    )
    print(config_reference_markdown())
