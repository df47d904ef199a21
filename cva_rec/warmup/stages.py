"""The stages of FLUID's staged warmup (sec. 3.4.3) and the ``warmup`` config section.

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
``room``       slice + room                ``phase_out``; room tables copied from the warm slice
                                           tables, by prefix (stage 3, FLUID)
``add_id_back``ID + slice + room           ``room`` + a fresh ID table (Table 7's check)
=============  ==========================  ======================================================

The item-encoder options (codes, fusion, decoding, shared tables...) come from the recipe's
``item_encoder`` section (``name: lucid``); each stage sets only ``tokens``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from cva_rec.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    name: str
    tokens: Optional[Tuple[str, ...]]  # None = the plain ``id`` encoder
    epochs_key: str
    what: str
    after_phase_out: bool = False  # with warmup.retire: candidate its histories keep the ID token
    reads: Tuple[str, ...] = ()  # warmup keys the stage reads directly (the others enter through its train config)


STAGES = {
    "id": Stage("id", None, "id_epochs", "stage 0: ID model to convergence"),
    "slice": Stage("slice", ("id", "slice"), "slice_epochs", "stage 1: + slice LUCID"),
    "phase_out": Stage("phase_out", ("id", "slice"), "phase_out_epochs", "stage 2: item ID phased out and removed",
                       reads=("phase_out_span", "phase_out_schedule", "phase_out_steps", "retire")),
    "room": Stage("room", ("slice", "room"), "room_epochs", "stage 3: + room LUCID (FLUID)", after_phase_out=True,
                  reads=("room_init",)),
    "add_id_back": Stage("add_id_back", ("id", "slice", "room"), "add_id_back_epochs", "check: item ID added back"),
}
FLUID = ["id", "slice", "phase_out", "room"]  # the default schedule; keep in sync with config.SCHEMA["warmup"]



def check_warmup(cfg) -> list[Stage]:
    w = cfg["warmup"]
    names = w["stages"]
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise ConfigError(f"warmup.stages: unknown stage(s) {unknown or names}; known: {', '.join(STAGES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"warmup.stages lists a stage twice: {names}")
    if names[0] != "id":
        raise ConfigError("warmup.stages must start with 'id' (reuse a finished one with warmup.reuse_run / reuse_stages)")
    reuse = list(w["reuse_stages"] or [])
    if reuse != names[:len(reuse)] or len(reuse) == len(names):
        raise ConfigError(f"warmup.reuse_stages {reuse} must be leading stages of warmup.stages {names}, leaving one to train")
    if reuse and not w["reuse_run"]:
        raise ConfigError("warmup.reuse_stages needs warmup.reuse_run: the warmup folder they come from")
    if cfg["item_encoder"]["name"] != "lucid" and any(n != "id" for n in names):
        raise ConfigError("warmup stages after 'id' need item_encoder.name: lucid (with codes_path and fusion options)")
    if "phase_out" in names and not 0 < int(w["phase_out_span"]) <= int(w["phase_out_epochs"]):
        raise ConfigError("warmup.phase_out_span must be between 1 and warmup.phase_out_epochs")
    if w["room_init"] not in ("slice", "random"):
        raise ConfigError(f"warmup.room_init must be slice or random, got {w['room_init']!r}")
    order = [n for n in FLUID + ["add_id_back"] if n in names]
    if names != order:
        raise ConfigError(f"warmup.stages must keep the order id, slice, phase_out, room, add_id_back; got {names}")
    return [STAGES[n] for n in names]
