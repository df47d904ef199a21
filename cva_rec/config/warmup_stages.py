"""The names of the staged warm-up's stages, in the order a chain keeps them.

The one list of stage names: the ``warmup`` config section validates against it (:data:`STAGE_CHOICES`),
and the stage objects (what each stage changes in the config and does before and after training,
``cva_rec/warmup/stages.py``) are keyed by it, which that module checks when imported; a stage registered
from code (``cva_rec.warmup.register_stage``) adds its name here. Names only: config does not import
what it configures.
"""
from __future__ import annotations

from collections.abc import Sequence

#: the built-in stages
STAGE_NAMES = ("id", "slice", "phase_out", "room", "add_id_back")
#: the default chain (FLUID sec. 3.4.3): ID model, + slice, ID phased out, + room
FLUID = ("id", "slice", "phase_out", "room")
_registered: list[str] = []  # stages added from code, after the built-in ones


def stage_names() -> tuple[str, ...]:
    return STAGE_NAMES + tuple(_registered)


def add_stage_name(name: str) -> None:
    if name not in stage_names():
        _registered.append(name)


def remove_stage_name(name: str) -> None:
    if name in _registered:
        _registered.remove(name)


class _StageNames(Sequence):
    """The stage names as they are when read (built-in and registered): the ``choices`` of the
    ``warmup.stages`` / ``warmup.reuse_stages`` elements, so a registered stage is a valid name."""

    def __getitem__(self, i):
        return stage_names()[i]

    def __len__(self) -> int:
        return len(stage_names())


STAGE_CHOICES: Sequence[str] = _StageNames()
