"""The stages of FLUID's staged warmup (sec. 3.4.3) as objects, and the check of the ``warmup`` section.

Each stage is one Lightning fit whose result seeds the next, changing one item-side component:

=============  ==========================  ======================================================
stage          item-side tokens            starts from
=============  ==========================  ======================================================
``id``         item ID (plain ``id``)      scratch: the converged ID model (stage 0)
``slice``      ID + slice                  ``id``: all weights; slice tables new (stage 1)
``phase_out``  ID + slice -> slice         ``slice``; the ID's weight decays to 0 (schedule), then
                                           the ID is removed (stage 2): from the candidate side
                                           (``warmup.retire: candidate``, FLUID Eq. 8; histories
                                           keep their ID token) or everywhere (table deleted)
``room``       slice + room                ``phase_out``; room tables started from the warm slice
                                           tables, by prefix (stage 3, FLUID)
``add_id_back``ID + slice + room           ``room`` + a fresh ID table (Table 7's check)
=============  ==========================  ======================================================

A stage declares what it changes in the config (:meth:`Stage.configure`), which callbacks train it
(:meth:`Stage.callbacks`), what it does once the previous stage's weights are loaded
(:meth:`Stage.before_fit`) and after training (:meth:`Stage.after_fit`); the runner calls these and
knows no stage by name. A stage reaches the item encoder only through the checked protocol
:class:`cva_rec.encoders.staged_warmup.StagedWarmupEncoder` (``lucid`` implements it): the item-encoder
options (codes, fusion, decoding, shared tables, ...) come from the recipe, and the encoder turns the
stage's kinds into its own options.

:data:`STAGES` is keyed by :data:`cva_rec.config.warmup_stages.STAGE_NAMES` (the names config validates);
:func:`register_stage` adds a stage from code, and its name to the names config accepts. This module imports no torch: the stages' hooks run on
the objects the runner hands them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from cva_rec.config.warmup_stages import FLUID, STAGE_NAMES, add_stage_name, remove_stage_name  # noqa: F401 (FLUID: the default chain)
from cva_rec.errors import ConfigError

log = logging.getLogger("cva_rec")


@dataclass(frozen=True)
class Stage:
    """One fit of the chain; the base class is a stage that trains the item-side kinds ``tokens``."""

    name: str
    what: str
    epochs_key: str  # the warmup key giving its maximum epochs
    tokens: Optional[Tuple[str, ...]] = None  # item-side kinds; None = the plain ``id`` encoder
    history_id: bool = False  # with warmup.retire: candidate its histories keep the ID token (after the phase-out)
    reads: Tuple[str, ...] = ()  # warmup keys the stage reads directly (the others enter through its train config)
    fine_tunes: bool = True  # starts from a converged model: warmup.finetune_lr applies
    test_on: str = "best"  # the checkpoint its test metrics come from: best | last

    @property
    def needs_staged_encoder(self) -> bool:
        """Its item encoder must implement the staged warm-up protocol (checked before anything trains)."""
        return self.tokens is not None

    def check(self, cfg: Mapping[str, Any]) -> None:
        """Rules of this stage on the ``warmup`` section (one ConfigError line); run before anything trains."""

    def configure(self, cfg: Mapping[str, Any], stage_cfg: Dict[str, Any]) -> None:
        """Turn ``stage_cfg`` (a copy of the recipe ``cfg``) into this stage's config."""
        w = cfg["warmup"]
        stage_cfg["train"] = {**stage_cfg["train"], "epochs": int(w[self.epochs_key]), "resume": True}
        if self.fine_tunes and w["finetune_lr"] is not None:
            stage_cfg["train"]["lr"] = float(w["finetune_lr"])
        stage_cfg["item_encoder"] = self._item_encoder(cfg)

    def _item_encoder(self, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        from cva_rec.encoders.staged_warmup import staged_encoder_class

        encoder = staged_encoder_class(cfg["item_encoder"]["name"], self.name)
        keep_history_id = self.history_id and cfg["warmup"]["retire"] == "candidate"
        return encoder.stage_options(cfg["item_encoder"], self.tokens, keep_history_id)

    def callbacks(self, cfg: Mapping[str, Any], encoder, model) -> List[Any]:
        """Lightning callbacks of this stage's fit."""
        return []

    def before_fit(self, cfg: Mapping[str, Any], encoder) -> None:
        """Called once the previous stage's weights are loaded, before training."""

    def after_fit(self, cfg: Mapping[str, Any], encoder, module) -> Dict[str, Any]:
        """Called after training and testing, before the stage's weights are saved; returns what the stage
        adds to its metrics.json."""
        return {}


@dataclass(frozen=True)
class IdStage(Stage):
    """Stage 0: the plain ``id`` encoder, trained from scratch at the recipe's learning rate."""

    fine_tunes: bool = False

    @property
    def needs_staged_encoder(self) -> bool:
        return False

    def _item_encoder(self, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        return {"name": "id"}


@dataclass(frozen=True)
class PhaseOutStage(Stage):
    """Stage 2: the ID's weight follows the schedule to 0 on the ``warmup.retire`` side (no early stopping:
    the schedule must run to the end; tested on the last, ID-free weights), then the ID is removed."""

    test_on: str = "last"

    def check(self, cfg: Mapping[str, Any]) -> None:
        w = cfg["warmup"]
        if not 0 < int(w["phase_out_span"]) <= int(w["phase_out_epochs"]):
            raise ConfigError("warmup.phase_out_span must be between 1 and warmup.phase_out_epochs")

    def configure(self, cfg: Mapping[str, Any], stage_cfg: Dict[str, Any]) -> None:
        super().configure(cfg, stage_cfg)
        stage_cfg["train"]["early_stopping_patience"] = 0

    def callbacks(self, cfg: Mapping[str, Any], encoder, model) -> List[Any]:
        from cva_rec.warmup.schedule import IdPhaseOut

        w = cfg["warmup"]
        if w["retire"] == "everywhere" and encoder.tokens_per_item > 1 and not getattr(model, "fades_tokens", False):
            log.warning("%s reads a token fully or not at all: with warmup.retire everywhere and late fusion its scores "
                        "jump when the ID token leaves at the end of the phase-out (retire: candidate has no jump)",
                        cfg["model"]["name"])
        return [IdPhaseOut(encoder, int(w["phase_out_span"]), w["phase_out_schedule"], int(w["phase_out_steps"]),
                           where=w["retire"])]

    def after_fit(self, cfg: Mapping[str, Any], encoder, module) -> Dict[str, Any]:
        from cva_rec.errors import CheckpointError
        from cva_rec.warmup.seeds import id_parameter_keys

        retire = cfg["warmup"]["retire"]
        encoder.set_id_scale(0.0, retire)
        encoder.drop_id(retire)
        left = [k for k in module.state_dict() if k in id_parameter_keys(module)]
        if retire == "everywhere" and left:
            raise CheckpointError(f"ID parameters still present after phase-out: {left}")
        return {"id_retired": retire}  # where the model ended ID-free


@dataclass(frozen=True)
class RoomStage(Stage):
    """Stage 3: + the room token; with ``warmup.room_init: slice`` its tables start from the warm slice tables."""

    def check(self, cfg: Mapping[str, Any]) -> None:
        if cfg["warmup"]["room_init"] not in ("slice", "random"):
            raise ConfigError(f"warmup.room_init must be slice or random, got {cfg['warmup']['room_init']!r}")

    def before_fit(self, cfg: Mapping[str, Any], encoder) -> None:
        if cfg["warmup"]["room_init"] == "slice":
            encoder.warm_start("room", "slice")


#: name -> stage, in the order a chain keeps them (:data:`STAGE_NAMES`, then stages registered from code)
STAGES: Dict[str, Stage] = {s.name: s for s in (
    IdStage("id", "stage 0: ID model to convergence", "id_epochs"),
    Stage("slice", "stage 1: + slice LUCID", "slice_epochs", ("id", "slice")),
    PhaseOutStage("phase_out", "stage 2: item ID phased out and removed", "phase_out_epochs", ("id", "slice"),
                  reads=("phase_out_span", "phase_out_schedule", "phase_out_steps", "retire")),
    RoomStage("room", "stage 3: + room LUCID (FLUID)", "room_epochs", ("slice", "room"), history_id=True,
              reads=("room_init",)),
    Stage("add_id_back", "check: item ID added back", "add_id_back_epochs", ("id", "slice", "room")),
)}
if tuple(STAGES) != STAGE_NAMES:  # the names config validates and the stages that exist are one list
    raise ImportError(f"warmup stages {tuple(STAGES)} are not cva_rec.config.warmup_stages.STAGE_NAMES {STAGE_NAMES}")


def register_stage(stage: Stage) -> Stage:
    """Add a stage from code: recipes may then name it in ``warmup.stages`` (after the built-in ones)."""
    if stage.name in STAGES:
        raise ConfigError(f"warmup stage {stage.name!r} exists already")
    STAGES[stage.name] = stage
    add_stage_name(stage.name)
    return stage


def unregister_stage(name: str) -> None:
    """Remove a stage added by :func:`register_stage` (the built-in ones stay)."""
    if name in STAGE_NAMES:
        raise ConfigError(f"warmup stage {name!r} is built in")
    STAGES.pop(name, None)
    remove_stage_name(name)


def check_warmup(cfg) -> list[Stage]:
    """The stages ``warmup.stages`` names, checked (one ConfigError line) before anything is claimed or trained."""
    w = cfg["warmup"]
    names = w["stages"]
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise ConfigError(f"warmup.stages: unknown stage(s) {unknown or names}; known: {', '.join(STAGES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"warmup.stages lists a stage twice: {names}")
    if STAGES[names[0]].fine_tunes:  # the chain starts from scratch
        first = " or ".join(repr(n) for n, s in STAGES.items() if not s.fine_tunes)
        raise ConfigError(f"warmup.stages must start with {first} (reuse a finished one with warmup.reuse_run / reuse_stages)")
    reuse = list(w["reuse_stages"] or [])
    if reuse != names[:len(reuse)] or len(reuse) == len(names):
        raise ConfigError(f"warmup.reuse_stages {reuse} must be leading stages of warmup.stages {names}, leaving one to train")
    if reuse and not w["reuse_run"]:
        raise ConfigError("warmup.reuse_stages needs warmup.reuse_run: the warmup folder they come from")
    order = [n for n in STAGES if n in names]
    if names != order:
        raise ConfigError(f"warmup.stages must keep the order {', '.join(STAGES)}; got {names}")
    stages = [STAGES[n] for n in names]
    for stage in stages:
        if stage.needs_staged_encoder:
            from cva_rec.encoders.staged_warmup import staged_encoder_class

            staged_encoder_class(cfg["item_encoder"]["name"], stage.name)
        stage.check(cfg)
    return stages
