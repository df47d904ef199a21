"""Experiment configuration: one YAML per recipe, validated before anything runs.

A recipe has the sections ``model``, ``dataset``, ``content``, ``item_encoder``, ``loss``,
``train``, ``eval``, ``warmup`` and ``output``. :data:`SCHEMA` declares every key once, typed,
with its default, meaning and range (:mod:`cva_rec.config.keys`); ``docs/config.md`` is generated
from it and a test checks the two agree. Loading a recipe checks, in one place and with one line
naming the key:

* unknown sections and keys (a typo must not silently fall back to a default);
* each value's type and range (``train.lr`` > 0, ``eval.topk`` of integers >= 1, ...);
* the name of each component (``model.name``, ``loss.name``, ``train.scheduler``,
  ``item_encoder.name``) against :mod:`cva_rec.config.components`, and the options of the chosen one;
* keys the chosen component would ignore (``loss.temperature`` with ``full_softmax``).

Validation reads declarations only: ``import cva_rec.config.schema`` imports neither torch nor RecBole.
Two sections are open: ``model`` also accepts any hyper-parameter of the chosen RecBole model
(read from RecBole's own YAML for that model) and ``item_encoder`` accepts the declared options of
the chosen encoder.

To add a key: add it to :data:`SCHEMA` with a constructor from :mod:`cva_rec.config.keys`
(``integer``, ``number``, ``fraction``, ``flag``, ``text``, ``choice``, ``listof``), then
regenerate docs/config.md (``python -m cva_rec.config.schema > docs/config.md``). A key read by some
components of a switch only (e.g. a loss option) is declared in that component's ``reads`` in
:mod:`cva_rec.config.components`. A rule that ties several keys together goes in :data:`CROSS_CHECKS`.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

from cva_rec.config.components import BACKBONE_CATALOG, ENCODER_CATALOG, LOSS_CATALOG, SCHEDULER_CATALOG, Catalog
from cva_rec.config.jobs import (BENCH, EXTRACT_TEXT, EXTRACT_VIDEO, RETRIEVE, RETRIEVER, RETRIEVER_CHECKS, RETRIEVER_READS,
                                 TOKENIZE, TOKENIZE_CHECKS)
from cva_rec.config.keys import Key, anything, choice, flag, fraction, integer, listof, number, text
from cva_rec.errors import ConfigError
from cva_rec.config.recipe_yaml import load_yaml
from cva_rec.config.recbole_keys import recbole_model_keys
from cva_rec.config.warmup_stages import FLUID, STAGE_CHOICES, STAGE_NAMES
from cva_rec.registry import closest

METRIC_NAMES = ("hr", "ndcg", "mrr", "recall")


def _metric_at_k(value: str) -> Optional[str]:
    metric, _, k = str(value).lower().partition("@")
    if metric not in METRIC_NAMES or not k.isdigit() or int(k) < 1:
        return "must look like ndcg@10 (one of " + ", ".join(METRIC_NAMES) + " @ a cut-off >= 1)"
    return None


def _known_metric(value: str) -> Optional[str]:
    return None if str(value).lower() in METRIC_NAMES else "must be one of " + ", ".join(METRIC_NAMES)


def _batches(value: Any) -> Optional[str]:
    """Lightning's limit: an int counts batches (>= 1), a float is a fraction of the epoch in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number of batches (integer >= 1) or a fraction in (0, 1]"
    if isinstance(value, int):
        return None if value >= 1 else "must be >= 1 when an integer (a number of batches)"
    return None if 0.0 < value <= 1.0 else "must be in (0, 1] when a fraction"


def _devices(value: Any) -> Optional[str]:
    """Lightning's ``devices``: a count >= 1 (or -1 = all), auto, a list of device ids, or "0,1"."""
    ok = (isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1)) or value == "auto"
    if isinstance(value, str) and value != "auto":
        parts = [p.strip() for p in value.split(",") if p.strip()]
        ok = value.strip() == "-1" or (bool(parts) and all(p.isdigit() for p in parts))
    if isinstance(value, list):
        ok = bool(value) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    return None if ok else "must be a device count >= 1 (or -1 = all), auto, or a list of device ids"


#: Lightning's precision names (lightning.fabric's _PRECISION_INPUT), spelled here so loading a recipe needs no Lightning
PRECISIONS = (64, 32, 16, "bf16", "transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true",
              "bf16-mixed", "32-true", "64-true")


def _inside_output_dir(value: str) -> Optional[str]:
    p = PurePath(value)
    if p.is_absolute() or ".." in p.parts or not p.parts or str(value).strip() in ("", "."):
        return "must be a folder name inside output.dir (relative, no '..'); use --run-dir for another place"
    # a NUL byte, a newline or a lone surrogate cannot name a folder (os.mkdir raised ValueError / UnicodeEncodeError)
    odd = [c for c in str(value) if ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF]
    if odd:
        return f"must be a folder name of printable characters (it holds {odd[0]!r})"
    if any(len(part.encode("utf-8")) > 255 for part in p.parts):
        return "must be a folder name of at most 255 bytes per path component"
    return None


#: a warm-up stage name: the built-in ones and those registered from code (cva_rec.config.warmup_stages)
_STAGE = Key(None, "stage", choices=STAGE_CHOICES)  # not choice(): its tuple would miss stages registered later

# section -> key -> typed Key (default, meaning, type, range)
SCHEMA: Dict[str, Dict[str, Key]] = {
    "model": {
        "name": text("SASRec", "RecBole sequential backbone read through the item encoder (cva_rec/backbones/)"),
        "hidden_size": integer(64, "SASRec hidden size (item vectors have this width); GRU4Rec's GRU state size", min=1),
        "embedding_size": integer(64, "GRU4Rec / NextItNet item-vector width", min=1),
    },
    "dataset": {
        "name": text("ml-100k", "dataset name: the folder <data_path>/<name>/ holding <name>.inter (RecBole atomic files)"),
        "data_path": text(None, "parent folder of the dataset folder; null = RecBole's bundled example folder (ml-100k only, never a download)", nullable=True),
        "max_seq_length": integer(50, "keep the most recent N items of each history (RecBole MAX_ITEM_LIST_LENGTH)", min=1),
        "min_user_interactions": integer(5, "drop users with fewer interactions (applied with the item filter until stable)", min=0),
        "min_item_interactions": integer(0, "drop items with fewer interactions (0 = keep all)", min=0),
        "engine": choice("recbole", "recbole (RecBole's datasets: one row per training window) or streaming (each history kept once: "
                         "CSR cached on disk, windows cut per batch; same examples and metrics; for large data, docs/scale.md)",
                         ("recbole", "streaming")),
        "split": choice("leave_two_out", "leave_two_out: last item = test, second last = validation, by timestamp", ("leave_two_out",)),
        "cold_items": number(0.0, "item cold start: hold this fraction of items out of training and validation; they can only be "
                             "test targets, and test metrics get warm / cold columns (0 = off; cva_rec/data/cold_items.py)", ge=0.0, lt=1.0),
        "cold_items_seed": integer(0, "seed of the held-out item choice (fixed apart from train.seed: one split for every run)", min=0),
        "duplicates": choice("drop", "exact duplicate rows (same user, item, time): drop (keep the first, log how many) | keep | error "
                             "(cva_rec/data/rules.py; RecBole's rm_dup_inter would drop every repeat of a user-item pair)",
                             ("drop", "keep", "error")),
        "truncate_before_split": integer(None, "keep each user's most recent N interactions before the leave-two-out split "
                                         "(CVA App. A; after the count filters); null = whole sequences", min=3, nullable=True),
        "user_field": text("user_id", "user id column of the .inter file"),
        "item_field": text("item_id", "item id column of the .inter file"),
        "time_field": text("timestamp", "timestamp column used to order each history"),
    },
    "content": {
        "store": text(None, "feature-store directory read by content encoders (null for ID-only runs)", nullable=True),
        "missing": choice("error", "items without features: error | zeros | mean", ("error", "zeros", "mean")),
        "max_frames": integer(None, "use only the first N stored frames/segments per item (null = all)", min=1, nullable=True),
        "dtype": choice("float16", "on-device dtype of the frozen features: float16 | bfloat16 | float32", ("float16", "bfloat16", "float32")),
    },
    "item_encoder": {
        "name": text("id", "item encoder (see `cva-rec train --list-encoders`): id, pooling, mlp, perceiver_io, cva, id_content, semantic_id, ..."),
    },
    "loss": {
        "name": text("full_softmax", "full_softmax (RecBole default: CE over all items) | inbatch_softmax (unique batch targets) | "
                     "microlens_inbatch (the MicroLens benchmark's: batches of users, every position) | sampled_softmax | "
                     "allpos_full_softmax / allpos_sampled_softmax (full / sampled softmax on batches of users, one window "
                     "each, every position trained; causal backbones: SASRec, GRU4Rec, NextItNet) | "
                     "window_cloze (BERT4Rec's masked-item loss on the same batches of users)"),
        "temperature": number(1.0, "logits are divided by this (in-batch / sampled softmax)", gt=0.0),
        "logq_correction": flag(True, "in-batch / sampled softmax: subtract log item popularity from candidate logits"),
        "mask_history": flag(True, "in-batch / sampled softmax: candidates in the user's input history (other than the target) get -inf"),
        "num_negatives": integer(100, "sampled_softmax: negatives per batch, drawn by popularity", min=1),
        "popularity_alpha": number(1.0, "sampled_softmax: negatives drawn with probability proportional to (count + 1) ** alpha; "
                                   "its logQ subtracts the log of that same probability (0 = uniform)", ge=0.0),
    },
    "train": {
        "epochs": integer(20, "maximum training epochs (a resumed run may raise it)", min=1),
        "batch_size": integer(2048, "global training batch (interactions), split evenly over the DDP processes; must divide by devices x num_nodes", min=1),
        "optimizer": choice("adamw", "adamw | adam", ("adamw", "adam")),
        "lr": number(1e-3, "learning rate", gt=0.0),
        "weight_decay": number(0.0, "weight decay", ge=0.0),
        "scheduler": text("none", "none | cosine | linear (decay to 0 over all steps, after warmup_steps of linear warm-up)"),
        "warmup_steps": integer(0, "linear learning-rate warm-up steps (with a scheduler)", min=0),
        "grad_clip": number(None, "clip the gradient norm to this value (null = off)", gt=0.0, nullable=True),
        "seed": integer(2020, "seed for model init, shuffling and sampling", min=0, max=2**32 - 1),
        "deterministic": flag(False, "torch deterministic algorithms (slower; exact repeatability)"),
        "max_minutes": number(None, "stop training after this many minutes of fitting (Lightning max_time; a resumed run "
                              "counts the time already spent); metrics.json's stopped_by says which limit ended the fit",
                              gt=0.0, nullable=True),
        "early_stopping_patience": integer(10, "stop after this many validations without a better eval.valid_metric (0 = off)", min=0),
        "accelerator": choice("cpu", "Lightning accelerator: cpu | gpu | auto (also cuda, mps, tpu)", ("cpu", "gpu", "cuda", "mps", "tpu", "auto")),
        "devices": anything(1, "Lightning devices per node (an integer, a list of device ids or auto)", rule=_devices),
        "strategy": text("auto", "Lightning strategy, e.g. ddp"),
        "num_nodes": integer(1, "Lightning number of nodes", min=1),
        "precision": choice("32-true", "Lightning precision, e.g. 32-true | bf16-mixed | 16-mixed", PRECISIONS),
        "num_workers": integer(0, "DataLoader workers", min=0, identity=False),
        "fast": flag(False, "opt-in fast path for SASRec, GRU4Rec and NextItNet: SASRec attention through fused "
                     "scaled_dot_product_attention, dropout masks from 16-bit random words, torch.compile (train.compile) "
                     "and bf16-mixed precision on a GPU or a CPU with bf16 support when train.precision is left at 32-true "
                     "(evaluation stays in float32; metrics within seed noise of the exact, default path)"),
        "compile": flag(True, "with train.fast: run the backbone's forward through torch.compile (about a minute of "
                        "compiling at the start and when batch shapes change; false skips it)"),
        "limit_train_batches": anything(None, "train on at most this many batches (int) or fraction (float) per epoch (debugging)",
                                        rule=_batches),
        "resume": flag(False, "continue from <run_dir>/checkpoints/last.ckpt when it exists (same config only)", identity=False),
    },
    "eval": {
        "metrics": listof(list(METRIC_NAMES), "metrics: " + ", ".join(METRIC_NAMES),
                          text(None, "metric", rule=_known_metric), min_items=1),
        "topk": listof([10, 20], "cut-offs", integer(None, "cut-off", min=1), min_items=1),
        "batch_size": integer(4096, "users per evaluation batch", min=1, identity=False),
        "mask_history": flag(True, "give the user's earlier items -inf before ranking (RecBole's sequential evaluator does not)"),
        "negatives": integer(None, "null = full ranking over all items; N = rank the target among N sampled negatives "
                             "(never the target or the user's history; a function of train.seed and the user)", min=1, nullable=True),
        "negatives_sampler": choice("uniform", "with eval.negatives: uniform (every item alike: the SASRec / BERT4Rec protocol, "
                                    "RecBole's uni100) | popularity (training-target counts; the CVA paper's App. A)",
                                    ("uniform", "popularity")),
        "valid_metric": text("ndcg@10", "metric for the best checkpoint and early stopping", rule=_metric_at_k),
        "popularity_buckets": integer(10, "break test metrics down by this many target-popularity buckets (0 = off)", min=0),
        "catalogue_chunk": integer(0, "full ranking against the catalogue in chunks of this many items (0 = all at once): memory "
                                   "eval.batch_size x chunk instead of x n_items, twice the scoring work; for very large catalogues", min=0,
                                   identity=False),
    },
    # FLUID staged warmup (`cva-rec warmup`, cva_rec/warmup/): ignored by `cva-rec train`
    "warmup": {
        "stages": listof(list(FLUID), "stages to run, in order, from: " + ", ".join(STAGE_NAMES),
                         _STAGE, min_items=1),
        "id_epochs": integer(20, "stage 0 (ID model) maximum epochs (early stopping applies)", min=1),
        "slice_epochs": integer(10, "stage 1 (+ slice token) maximum epochs", min=1),
        "phase_out_epochs": integer(6, "stage 2 epochs in all: the phase-out span, then ID-free epochs (no early stopping)", min=1),
        "phase_out_span": integer(3, "epochs over which the ID's weight goes from 1 to 0 (<= phase_out_epochs)", min=1),
        "phase_out_schedule": choice("linear", "ID weight schedule over the span: linear | cosine | step", ("linear", "cosine", "step")),
        "phase_out_steps": integer(4, "number of stairs of the step schedule", min=1),
        "retire": choice("candidate", "where the phase-out retires the item ID: candidate (FLUID Eq. 8: the scored item's "
                         "vector; histories keep their ID token) | everywhere (histories too; the ID table is deleted)",
                         ("candidate", "everywhere")),
        "room_epochs": integer(10, "stage 3 (+ room token) maximum epochs", min=1),
        "room_init": choice("slice", "stage 3 room tables: slice (copy the warm slice tables by prefix) | random", ("slice", "random")),
        "add_id_back_epochs": integer(5, "the add-the-ID-back check: maximum epochs", min=1),
        "finetune_lr": number(None, "learning rate of the stages after 'id' (they fine-tune a converged model); null = train.lr", gt=0.0, nullable=True),
        "reuse_run": text(None, "another warmup output folder whose finished stages are reused (ablations that share a prefix of the chain; a stage trained with other data, model, seed, epochs or lr is refused)", nullable=True,
                          identity=False),
        "reuse_stages": listof([], "the leading stages taken from reuse_run instead of trained, e.g. [id] or [id, slice, phase_out]",
                               _STAGE, identity=False),
    },
    "output": {
        "dir": text("runs", "parent folder of run directories", identity=False),
        "name": text(None, "run directory name inside output.dir (null = <dataset>-<model>-<encoder>-<loss>-s<seed>)",
                     nullable=True, rule=_inside_output_dir, identity=False),
    },
}

OPEN_SECTIONS = {"item_encoder", "model"}

#: config switches: (section, key) whose value names a component declared in a catalog
SWITCHES: Dict[Tuple[str, str], Catalog] = {
    ("model", "name"): BACKBONE_CATALOG,
    ("loss", "name"): LOSS_CATALOG,
    ("train", "scheduler"): SCHEDULER_CATALOG,
    ("item_encoder", "name"): ENCODER_CATALOG,
}


@dataclass(frozen=True)
class Job:
    """What one command reads: its own sections (typed keys) and the rules over several of their keys.

    ``recipe=True``: the command also reads a whole cva_rec recipe (every section of :data:`SCHEMA`,
    checked as for training); its YAML file may name that recipe with a top-level ``recipe: PATH``
    (relative to the file), read first like ``base:`` but without its ``output`` section, which is
    this command's own.
    """

    name: str
    commands: str  # how the docs name the commands that read it
    own: Mapping[str, Mapping[str, Key]] = field(default_factory=dict)
    checks: Sequence[Callable[[Dict[str, Any]], None]] = ()
    recipe: bool = False
    about: str = ""  # how its YAML file / command line give these settings (docs/config.md)
    #: the keys its run reads (``section.key``, ``section.*``): only they make a run folder's identity
    #: (:mod:`cva_rec.config.identity`); () = every key of its sections
    reads: Tuple[str, ...] = ()

    @property
    def sections(self) -> Dict[str, Mapping[str, Key]]:
        return {**SCHEMA, **self.own} if self.recipe else dict(self.own)

    def unread(self) -> Tuple[str, ...]:
        """``section.*`` / ``section.key`` of every key of its sections that its run does not read (left out
        of its identity: a recipe section it never reads cannot make its folder another experiment)."""
        if not self.reads:
            return ()
        out: List[str] = []
        for sec, keys in self.sections.items():
            if f"{sec}.*" in self.reads:
                continue
            read = [k for k in keys if f"{sec}.{k}" in self.reads]
            out += [f"{sec}.{k}" for k in keys if k not in read] if read else [f"{sec}.*"]
        return tuple(out)

    def all_checks(self) -> List[Callable[[Dict[str, Any]], None]]:
        return [*(CROSS_CHECKS if self.recipe else ()), *self.checks]


#: every command's settings, by job name; ``load_config(path, job=...)`` reads any of them
JOBS: Dict[str, Job] = {job.name: job for job in (
    Job("train", "cva-rec train, evaluate, warmup, sweep, demo", recipe=True),
    Job("retriever", "cva-rec train-retriever", {"retriever": RETRIEVER}, RETRIEVER_CHECKS, recipe=True,
        about="A retriever recipe is a recipe (every section above) plus this section. Its top-level `recipe: PATH` "
        "names the recipe that gives the dataset, content store and seed (read first, like `base:`, without its "
        "`output`); `output.dir` / `output.name` name the retriever's run folder. `--set` reaches every section.",
        reads=RETRIEVER_READS),
    Job("retrieve", "cva-rec retrieve", {"retrieve": RETRIEVE},
        about="The options of `cva-rec retrieve RUN_DIR` (`--beam 50` is `retrieve.beam`), checked against these keys "
        "before anything is loaded; `--set` there overrides keys of the reranker run's own config."),
    Job("tokenize", "cva-rec tokenize", {"tokenize": TOKENIZE, "output": SCHEMA["output"]}, TOKENIZE_CHECKS,
        about="Read from `cva-rec tokenize -c FILE` (sections `tokenize` and `output`), then its options "
        "(`--levels 3` is `--set tokenize.levels=3`), then `--set`. The run folder is `--out`, else "
        "`output.dir/output.name`."),
    Job("extract_text", "cva-rec extract-text", {"extract_text": EXTRACT_TEXT},
        about="The options of `cva-rec extract-text` (`--window-words 3` is `extract_text.window_words`), checked "
        "against these keys before any work."),
    Job("extract_video", "cva-rec extract-video, prep-frames", {"extract_video": EXTRACT_VIDEO},
        about="The options of `cva-rec extract-video` and `cva-rec prep-frames` (`--n-frames 8` is "
        "`extract_video.n_frames`), checked against these keys before any work."),
    Job("bench", "cva-rec bench", {"bench": BENCH},
        about="`cva-rec bench NAME [-- ARGS]`: the benchmark's own options follow `--`."),
)}


def job_of(job: "str | Job") -> Job:
    if isinstance(job, Job):
        return job
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; jobs: {', '.join(JOBS)}")
    return JOBS[job]


def all_sections() -> Dict[str, Dict[str, Key]]:
    """Every section of every job (docs/config.md lists them all)."""
    out: Dict[str, Dict[str, Key]] = {}
    for job in JOBS.values():
        out.update(job.sections)
    return out


def non_identity_keys() -> List[str]:
    """``section.key`` of every key that does not change what a run computes (see :mod:`cva_rec.config.identity`)."""
    return [f"{sec}.{k}" for sec, keys in all_sections().items() for k, spec in keys.items() if not spec.identity]


def defaults(job: "str | Job" = "train") -> Dict[str, Dict[str, Any]]:
    return {sec: {k: copy.deepcopy(spec.default) for k, spec in keys.items()} for sec, keys in job_of(job).sections.items()}


# -- reading ------------------------------------------------------------------------------------------------
def _merge(base: Dict[str, Any], update: Mapping[str, Any], source: str) -> None:
    """Merge sections into ``base``, whose keys are the job's sections."""
    for sec, values in update.items():
        if sec not in base:
            raise ConfigError(f"{source}: unknown config section {sec!r}{closest(str(sec), base)}; sections: {', '.join(base)}")
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: section {sec!r} must be a mapping, got {type(values).__name__}")
        if sec == "item_encoder" and "name" in values and values.get("name") != base[sec].get("name"):
            base[sec] = {"name": values["name"]}  # switching encoder drops the old encoder's options
        for key, value in values.items():
            base[sec][str(key)] = copy.deepcopy(value)


def parse_override(text_: str) -> tuple[list[str], Any]:
    """``section.key=value`` (value parsed as YAML; ``a.b.c=v`` sets a nested key) -> (path, value)."""
    path, sep, raw = text_.partition("=")
    parts = path.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text_!r}: expected section.key=value, e.g. train.epochs=3")
    try:
        value = load_yaml(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text_!r}: value is not valid YAML ({_yaml_problem(exc)})") from None
    return parts, value


def apply_override(cfg: Dict[str, Any], text_: str) -> None:
    """One ``--set section.key=value`` into ``cfg`` (whose keys are the job's sections)."""
    parts, value = parse_override(text_)
    if parts[0] not in cfg:
        raise ConfigError(f"--set {text_}: unknown config section {parts[0]!r}{closest(parts[0], cfg)}; sections: {', '.join(cfg)}")
    if parts[0] == "item_encoder" and parts[1:] == ["name"] and value != cfg["item_encoder"].get("name"):
        cfg["item_encoder"] = {}  # switching encoder drops the old encoder's options
    node = cfg[parts[0]]
    for p in parts[1:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(exc, 'problem', None) or type(exc).__name__}{where}"


def read_recipe(p: Path) -> Any:
    """One YAML file as recipes are written (1e-4 is a number); unreadable -> one-line ConfigError."""
    try:
        with open(p, encoding="utf-8") as fh:
            return load_yaml(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {_yaml_problem(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text (UTF-8) YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None


def _merge_file(cfg: Dict[str, Any], p: Path, chain: tuple, job: Job) -> None:
    """Merge one recipe file; a top-level ``base: other.yaml`` (relative to this file) is merged first,
    so an ablation recipe states only what differs from the recipe it varies. A job that reads a
    recipe (:attr:`Job.recipe`) may name it with ``recipe: PATH``: merged next, without its output."""
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}" + (f" (base of {chain[-1]})" if chain else ""))
    if p.resolve() in chain:
        raise ConfigError(f"{p}: circular base chain {' -> '.join(map(str, chain))}")
    data = read_recipe(p) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: top level must be a mapping of sections")
    data = dict(data)
    for key in ("base", "recipe"):
        ref = data.pop(key, None)
        if ref is None:
            continue
        if key == "recipe" and not job.recipe:
            raise ConfigError(f"{p}: unknown config section 'recipe'; sections: {', '.join(cfg)}")
        if not isinstance(ref, str):
            raise ConfigError(f"{p}: {key} must be a recipe path, got {ref!r}")
        if key == "base":
            _merge_file(cfg, p.parent / ref, chain + (p.resolve(),), job)
            continue
        recipe = defaults("train")
        _merge_file(recipe, p.parent / ref, chain + (p.resolve(),), JOBS["train"])
        recipe.pop("output")  # where this job writes is its own
        _merge(cfg, recipe, str(p))
    _merge(cfg, data, str(p))


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = (), extra: Mapping | None = None,
                job: "str | Job" = "train") -> Dict[str, Any]:
    """Defaults <- YAML file <- ``extra`` mapping <- ``--set`` overrides, then validated.

    ``job`` names the command whose settings these are (:data:`JOBS`; default: a training recipe)."""
    job = job_of(job)
    cfg = defaults(job)
    if path is not None:
        _merge_file(cfg, Path(path), (), job)
    if extra:
        _merge(cfg, extra, "config")
    for text_ in overrides:
        apply_override(cfg, text_)
    validate(cfg, job)
    return cfg


def validate_section(job: "str | Job", values: Mapping[str, Any], source: str = "config") -> Dict[str, Any]:
    """One job's settings given as a flat mapping of its only section (command-line options): checked
    and returned with every default filled in (e.g. ``validate_section("extract_text", vars(args))``)."""
    job = job_of(job)
    (sec,) = job.own
    cfg = defaults(job)
    _merge(cfg, {sec: dict(values)}, source)
    validate(cfg, job)
    return cfg[sec]


# -- checking -----------------------------------------------------------------------------------------------
def validate(cfg: Dict[str, Any], job: "str | Job" = "train") -> None:
    """Check (and normalise in place: canonical names, ints widened for float keys) a merged config."""
    job = job_of(job)
    sections = job.sections
    for sec, keys in cfg.items():
        if sec not in sections:
            raise ConfigError(f"unknown config section {sec!r}{closest(str(sec), sections)}; sections: {', '.join(sections)}")
        if not isinstance(keys, dict):
            raise ConfigError(f"section {sec!r} must be a mapping, got {type(keys).__name__}")
        if sec in OPEN_SECTIONS and job.recipe:
            continue
        for key in keys:
            if key not in sections[sec]:
                raise ConfigError(f"unknown config key {sec}.{key}{closest(str(key), sections[sec])}; "
                                  f"keys of {sec!r}: {', '.join(sections[sec])}")
    for sec, keys in sections.items():
        for key, spec in keys.items():
            if key in cfg[sec]:
                cfg[sec][key] = spec.check(cfg[sec][key], f"{sec}.{key}")
    if job.recipe:
        for (sec, key), catalog in SWITCHES.items():
            cfg[sec][key] = catalog.canonical(cfg[sec][key])
            _check_ignored_keys(cfg, sec, catalog)
        _check_model_keys(cfg)
        _check_encoder_options(cfg)
    for check in job.all_checks():
        check(cfg)


def _check_ignored_keys(cfg: Mapping[str, Any], sec: str, catalog: Catalog) -> None:
    """A key that some components of this switch read, set (to other than its default) while the
    chosen one does not read it, is an error naming who would."""
    chosen = catalog.get(cfg[sec][catalog.switch.split(".", 1)[1]])
    if chosen.reads is None:
        return
    for key in sorted(catalog.optional_keys()):
        if key in chosen.reads or key not in SCHEMA[sec] or cfg[sec].get(key) == SCHEMA[sec][key].default:
            continue
        readers = catalog.readers(key)
        raise ConfigError(f"{sec}.{key}={cfg[sec][key]!r} is ignored by {catalog.kind} {chosen.name!r}; "
                          f"it is read by {', '.join(readers)} (remove it or choose one of those)")


def _check_model_keys(cfg: Dict[str, Any]) -> None:
    """The open ``model`` section: RecBole's own keys for the chosen model, typed like its defaults."""
    name = cfg["model"]["name"]
    recbole_keys = recbole_model_keys(name)
    allowed = set(recbole_keys) | set(SCHEMA["model"])
    for key in list(cfg["model"]):
        if key not in allowed:
            raise ConfigError(f"unknown config key model.{key} for {name}{closest(str(key), allowed)}; keys: {', '.join(sorted(allowed))}")
        if key not in SCHEMA["model"]:
            cfg["model"][key] = recbole_keys[key].check(cfg["model"][key], f"model.{key} ({name})")


def _check_encoder_options(cfg: Dict[str, Any]) -> None:
    enc = cfg["item_encoder"]["name"]
    options = ENCODER_CATALOG.get(enc).options
    for key in list(cfg["item_encoder"]):
        if key == "name":
            continue
        if key not in options:
            raise ConfigError(f"item_encoder {enc!r} has no option {key!r}{closest(str(key), options)}; options: {', '.join(sorted(options)) or 'none'}")
        cfg["item_encoder"][key] = options[key].check(cfg["item_encoder"][key], f"item_encoder.{key} ({enc})")


def _valid_metric_is_computed(cfg: Mapping[str, Any]) -> None:
    ev = cfg["eval"]
    metric, _, k = ev["valid_metric"].lower().partition("@")
    if metric not in [str(m).lower() for m in ev["metrics"]] or int(k) not in ev["topk"]:
        raise ConfigError(f"eval.valid_metric {ev['valid_metric']!r} is not computed: eval.metrics is {ev['metrics']} "
                          f"and eval.topk is {ev['topk']}")


def _phase_out_fits(cfg: Mapping[str, Any]) -> None:
    w = cfg["warmup"]
    if w["phase_out_span"] > w["phase_out_epochs"]:
        raise ConfigError(f"warmup.phase_out_span ({w['phase_out_span']}) must be <= warmup.phase_out_epochs ({w['phase_out_epochs']})")


def _cloze_loss_has_its_masking(cfg: Mapping[str, Any]) -> None:
    # BERT4Rec's cloze loss reads the masked sequences RecBole's training loader adds (its mask_itemseq
    # transform); the streaming engine's batches carry none
    if cfg["model"]["name"] == "BERT4Rec" and cfg["loss"]["name"] == "full_softmax" and cfg["dataset"]["engine"] == "streaming":
        raise ConfigError("model BERT4Rec with loss.name=full_softmax (its cloze loss) needs dataset.engine=recbole, whose "
                          "training loader masks the sequences; with the streaming engine use inbatch_softmax or sampled_softmax")


#: rules over several keys, run after every key passed its own check; each raises ConfigError
CROSS_CHECKS: List[Callable[[Dict[str, Any]], None]] = [_valid_metric_is_computed, _phase_out_fits, _cloze_loss_has_its_masking]


# -- writing ------------------------------------------------------------------------------------------------
def dump_config(cfg: Mapping[str, Any], path: str | os.PathLike) -> None:
    from cva_rec.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False))


def run_name(cfg: Mapping[str, Any]) -> str:
    if cfg["output"]["name"]:
        return str(cfg["output"]["name"])
    return f"{cfg['dataset']['name']}-{cfg['model']['name']}-{cfg['item_encoder']['name']}-{cfg['loss']['name']}-s{cfg['train']['seed']}"


def config_reference_markdown() -> str:
    """Every config key of every job with its default, meaning and allowed values (docs/config.md is generated from this)."""
    lines = []
    for sec, keys in SCHEMA.items():
        lines += _section_table(sec, keys)
    lines += ["# Other commands", "",
              "These commands read their settings through the same loader and checks as a recipe (same errors, "
              "same `--set section.key=value`).", ""]
    shown = set(SCHEMA)
    for job in JOBS.values():
        for sec, keys in job.own.items():
            if sec in shown:
                continue
            shown.add(sec)
            lines += [f"## `{sec}` ({job.commands})", "", job.about, ""] + _section_table(sec, keys)[2:]
    return "\n".join(lines)


def _section_table(sec: str, keys: Mapping[str, Key]) -> List[str]:
    lines = [f"## `{sec}`", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
    for key, spec in keys.items():
        default = yaml.safe_dump(spec.default, default_flow_style=True).strip().removesuffix("...").strip()
        meaning = spec.meaning.replace("|", "\\|")  # a | inside a table cell would split it
        lines.append(f"| `{sec}.{key}` | `{default}` | {_allowed(sec, key, spec)} | {meaning} |")
    return lines + [""]


def _allowed(sec: str, key: str, spec: Key) -> str:
    catalog = SWITCHES.get((sec, key))
    if catalog is not None:
        return ", ".join(catalog.get(n).name for n in catalog.names() if catalog.get(n).builtin)
    return spec.describe().replace("|", "\\|")


if __name__ == "__main__":  # python -m cva_rec.config.schema > docs/config.md (regenerate the reference)
    print(
        "# Configuration reference\n\n"
        "A recipe is a YAML file with these sections; every key is optional and takes the default below. "
        "Unknown keys are errors, and so are values of the wrong type or out of range (the `allowed` column). "
        "Numbers may be written as people write them (`1e-4`, `3E-4`). Override any key on the command line "
        "with `--set section.key=value`. A recipe may start with `base: other.yaml` (a path relative to the recipe): "
        "that recipe is read first and this one only states what differs.\n\n"
        "A key that only some choices of a component read is an error when set (to other than its default) "
        "with a choice that ignores it, e.g. `loss.temperature` with `loss.name: full_softmax`, "
        "or `train.warmup_steps` with `train.scheduler: none`.\n\n"
        "Two sections are open: `model` also accepts every hyper-parameter RecBole declares for the chosen "
        "model (e.g. `n_layers`, `n_heads`, `inner_size`, `hidden_dropout_prob` for SASRec; `num_layers`, "
        "`dropout_prob` for GRU4Rec; `kernel_size`, `block_num`, `dilations`, `reg_weight` for NextItNet), and "
        "`item_encoder` accepts the options of the chosen encoder (declared with their types and ranges in "
        "`cva_rec/config/components.py`; see docs/encoders.md).\n\n"
        "These keys do not change what a run computes and are left out of the run folder's config identity "
        "(see docs/reliability.md): " + ", ".join(f"`{k}`" for k in non_identity_keys()) + ".\n\n"
        "_Generated by `python -m cva_rec.config.schema > docs/config.md`; a test checks it lists every key._\n"
    )
    print(config_reference_markdown())
