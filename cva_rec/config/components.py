"""What each configurable component is called and which config options it reads, without importing it.

Config validation (:mod:`cva_rec.config.schema`) reads these catalogs, so loading a recipe never imports
torch or RecBole. The implementations register themselves in their own registries
(``cva_rec.encoders.ENCODERS``, ``cva_rec.training.losses.LOSSES``, ``cva_rec.backbones.BACKBONES``);
those registries are tied to the catalogs here:

* a built-in implementation must be declared here (tests/test_components.py checks each registry
  against its catalog, and ``register_encoder`` checks an encoder's keyword arguments against its
  declared options);
* a plugin registering a name that is not declared is declared on the fly from its object
  (an encoder's signature, a loss class's ``reads``), so ``--plugin`` components validate too.

To add a built-in component: declare it below (its options with type and range), then register
the implementation under the same name.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, Mapping, Optional

from cva_rec.config.keys import Key, anything, choice, flag, fraction, integer, listof, number, text
from cva_rec.errors import ConfigError
from cva_rec.registry import Registry


@dataclass
class Component:
    name: str  # canonical spelling (names are matched case-insensitively)
    #: keys of the catalog's own section this component reads (loss.temperature, ...);
    #: None = unknown (a plugin that did not say): no "ignored key" check
    reads: Optional[FrozenSet[str]] = frozenset()
    #: its own options (open sections such as item_encoder): name -> typed Key
    options: Dict[str, Key] = field(default_factory=dict)
    builtin: bool = True


class Catalog(Registry[Component]):
    """A registry of :class:`Component` declarations for one config switch (e.g. ``loss.name``)."""

    def __init__(self, kind: str, switch: str):
        super().__init__(kind)
        self.switch = switch  # "section.key" whose value picks the component

    def declare(self, name: str, *, reads: Optional[Iterable[str]] = (), options: Optional[Mapping[str, Key]] = None,
                builtin: bool = True) -> Component:
        comp = Component(name, None if reads is None else frozenset(reads), dict(options or {}), builtin)
        self.register(name, comp, overwrite=True)
        return comp

    def canonical(self, name: Any) -> str:
        return self.get(name).name

    def readers(self, key: str) -> list[str]:
        """Names of the components that read ``key`` of the switch's section."""
        return [c.name for c in map(self.get, self.names()) if c.reads is None or key in c.reads]

    def optional_keys(self) -> FrozenSet[str]:
        """Keys of the switch's section that some component reads and others ignore."""
        out: set = set()
        for name in self.names():
            out |= self.get(name).reads or set()
        return frozenset(out)


# -- losses (loss.name): which loss.* keys each reads ------------------------------------------------------
LOSS_CATALOG = Catalog("loss", "loss.name")
_CANDIDATE_SOFTMAX = ("temperature", "logq_correction", "mask_history")
LOSS_CATALOG.declare("full_softmax", reads=())
LOSS_CATALOG.declare("inbatch_softmax", reads=_CANDIDATE_SOFTMAX)
LOSS_CATALOG.declare("sampled_softmax", reads=(*_CANDIDATE_SOFTMAX, "num_negatives", "popularity_alpha"))
LOSS_CATALOG.declare("microlens_inbatch", reads=("logq_correction",))
LOSS_CATALOG.declare("allpos_full_softmax", reads=())
LOSS_CATALOG.declare("window_cloze", reads=())
LOSS_CATALOG.declare("allpos_sampled_softmax", reads=(*_CANDIDATE_SOFTMAX, "num_negatives", "popularity_alpha"))

# -- learning-rate schedules (train.scheduler) ---------------------------------------------------------
SCHEDULER_CATALOG = Catalog("scheduler", "train.scheduler")
SCHEDULER_CATALOG.declare("none", reads=())
SCHEDULER_CATALOG.declare("cosine", reads=("warmup_steps",))
SCHEDULER_CATALOG.declare("linear", reads=("warmup_steps",))

# -- backbones (model.name); their other keys are RecBole's own (its properties/model/<name>.yaml) ----------
BACKBONE_CATALOG = Catalog("model", "model.name")
for _name in ("SASRec", "GRU4Rec", "NextItNet", "NARM", "STAMP", "BERT4Rec", "FMLPRec"):
    BACKBONE_CATALOG.declare(_name)


# -- item encoders (item_encoder.name): each one's options ------------------------------------------------
def _positive(default, meaning="", **kw) -> Key:
    return integer(default, meaning, min=1, **kw)


def _dropout(default=0.0) -> Key:
    return number(default, "dropout probability", ge=0.0, lt=1.0)


_INPUT_DIM = _positive(None, "content feature width (null = read from the store)", nullable=True)
_TIME_ENCODING = choice(None, "frame time encoding", ("sinusoidal", "learned", "none"), nullable=True)
_CODES = {
    "codes_path": text(None, "codes.npz written by `cva-rec tokenize`", nullable=True),
    "mode": choice("remap", "prefix table: remap (observed prefixes) | hash", ("remap", "hash")),
    "decoding": choice("prefix", "prefix | level_wise", ("prefix", "level_wise")),
    "hash_size": _positive(1 << 16, "rows per level with mode=hash"),
    "slice_rule_train": choice("random", "slice used in training", ("random", "first", "middle", "last")),
    "slice_rule_eval": choice("first", "slice used in evaluation", ("first", "middle", "last")),
    "prefix_rows": choice("trained", "table rows an item reads: trained (rows some training item's code uses; an item "
                          "outside training, e.g. a held-out cold item, backs off to its trained prefixes) | all "
                          "(also never-trained rows)", ("trained", "all")),
    "level_dim": _positive(None, "width of each level's table before the projection to the output width (null = "
                           "output width / levels, FLUID Eq. 2's concatenation; the output width gives every level, "
                           "the item's own distinct last level included, a full-width row)", nullable=True),
    "compose": choice("concat", "levels joined: concat (FLUID Eq. 2, then a projection where the widths differ) | sum "
                      "(every level a full-width row, rows added, no projection)", ("concat", "sum")),
    "unseen_prefix": choice("backoff", "a prefix without a (trained) row: backoff (deepest trained prefix's vector) | "
                            "zero (the level is left out)", ("backoff", "zero")),
}

ENCODER_CATALOG = Catalog("item encoder", "item_encoder.name")
ENCODER_CATALOG.declare("id")
ENCODER_CATALOG.declare("pooling", options={"input_dim": _INPUT_DIM})
ENCODER_CATALOG.declare("mlp", options={
    "input_dim": _INPUT_DIM, "hidden": _positive(1536), "layers": _positive(2), "dropout": _dropout(),
    "activation": choice("geglu", "gelu | geglu", ("gelu", "geglu")),
})
ENCODER_CATALOG.declare("perceiver_io", options={
    "input_dim": _INPUT_DIM,
    "ablation": choice("none", "paper ablation", ("none", "no_first_cross", "no_cross", "no_attention")),
    "depth": _positive(4), "num_latents": _positive(32), "latent_dim": _positive(256), "cross_heads": _positive(1),
    "self_heads": _positive(4), "dim_head": _positive(64), "query_dim": _positive(384), "dropout": _dropout(),
    "time_encoding": _TIME_ENCODING,
})
ENCODER_CATALOG.declare("cva", options={
    "input_dim": _INPUT_DIM, "depth": _positive(4), "repeats": _positive(1), "latent_dim": _positive(256),
    "heads": _positive(4), "dim_head": _positive(64), "ff_mult": _positive(4), "dropout": _dropout(),
    "attend": choice("latents", "latents (paper) | frames", ("latents", "frames")),
    "time_encoding": _TIME_ENCODING, "decoder_ffn": flag(False, "GEGLU FFN after the mean"),
})
ENCODER_CATALOG.declare("id_content", options={
    "content_encoder": anything(None, "the content encoder's own options, e.g. {name: cva}"),
    "combine": choice("sum", "sum | concat", ("sum", "concat")),
})
ENCODER_CATALOG.declare("semantic_id", options={
    **_CODES, "which": choice("room", "room | slice", ("room", "slice")),
})
ENCODER_CATALOG.declare("lucid", options={
    **_CODES,
    "tokens": listof(("id", "slice"), "token kinds", text(None, "kind"), min_items=1),
    "fusion": choice("late", "late | early", ("late", "early")),
    "early": choice("concat", "early fusion", ("replace", "sum", "concat", "gate")),
    "gate_input": text("id", "what the gate reads"),
    "shared_tables": flag(False, "slice and room share tables"),
    "id_scale": number(1.0, "weight of the ID token", ge=0.0, le=1.0),
    "level_dropout": number(0.0, "training only: probability that a candidate's slice / room codes are cut at a random "
                            "depth (deeper levels treated as untrained), so items are also ranked by their prefixes, "
                            "as held-out items are", ge=0.0, lt=1.0),
    "candidate_id": flag(True, "the candidate vector includes the item ID (false: retired on the candidate side, FLUID Eq. 8)"),
    "id_rows": choice("all", "ID rows an item reads: all (an item outside training, e.g. a held-out cold item, reads "
                      "its never-trained random row) | trained (its ID vector is zero: it is scored by its codes alone; "
                      "training is unchanged)", ("all", "trained")),
})

#: keyword arguments an encoder's ``__init__`` takes that are given by the framework, not the config
FRAMEWORK_ARGUMENTS = frozenset({"self", "n_items", "output_dim", "content", "item_tokens", "codes", "trained_items"})


def encoder_signature_options(cls: type) -> Dict[str, Any]:
    """The config options (name -> default) an encoder class's ``__init__`` accepts."""
    params = inspect.signature(cls.__init__).parameters
    return {k: (None if p.default is inspect.Parameter.empty else p.default) for k, p in params.items()
            if k not in FRAMEWORK_ARGUMENTS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def declare_encoder_class(name: str, cls: type) -> None:
    """Tie an encoder class to its catalog entry (called by ``register_encoder``).

    A declared (built-in) encoder must accept exactly its declared options with the same defaults:
    a mismatch is a programming error raised at import. An undeclared one (a plugin) is declared
    from its signature, untyped.
    """
    sig = encoder_signature_options(cls)
    if name not in ENCODER_CATALOG:
        ENCODER_CATALOG.declare(name, options={k: anything(v, "") for k, v in sig.items()}, builtin=False)
        return
    declared = ENCODER_CATALOG.get(name).options
    mismatch = sorted(set(sig) ^ set(declared)) or [k for k in sig if _norm(sig[k]) != _norm(declared[k].default)]
    if mismatch:
        raise TypeError(f"encoder {name!r} ({cls.__module__}.{cls.__qualname__}): options {mismatch} differ between its "
                        f"__init__ and its declaration in cva_rec/config/components.py; keep the two in step")


def declare_loss_class(name: str, cls: Any) -> None:
    """A plugin loss (not declared above) reads the loss.* keys in its class attribute ``reads`` (None = unknown)."""
    if name not in LOSS_CATALOG:
        LOSS_CATALOG.declare(name, reads=getattr(cls, "reads", None), builtin=False)


def declare_backbone(name: str, spec: Any) -> None:
    if name not in BACKBONE_CATALOG:
        BACKBONE_CATALOG.declare(getattr(spec, "name", name), builtin=False)


def _norm(v):
    return list(v) if isinstance(v, tuple) else v
