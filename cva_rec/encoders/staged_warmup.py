"""What the staged warm-up asks of an item encoder: the one, checked, seam between ``cva_rec/warmup`` and
an encoder's own options and tables.

A stage after ``id`` trains an encoder that carries item-side *kinds* (``id``, ``slice``, ``room``:
FLUID sec. 3.4). The warm-up names the kinds a stage trains and the encoder turns them into its own
options (:meth:`StagedWarmupEncoder.stage_options`, before the model is built); it starts new tables
from warm ones (:meth:`~StagedWarmupEncoder.warm_start`) and retires the ID
(:class:`~cva_rec.encoders.id_retirement.RetiresItemId`). :func:`staged_encoder_class` checks an
encoder class against the protocol before anything is trained: one ConfigError line naming what is
missing. ``lucid`` implements it; a plugin encoder may too.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Protocol, Sequence, runtime_checkable

from cva_rec.encoders.id_retirement import RetiresItemId
from cva_rec.errors import ConfigError


@runtime_checkable
class StagedWarmupEncoder(RetiresItemId, Protocol):
    @classmethod
    def stage_options(cls, options: Mapping[str, Any], tokens: Sequence[str], history_id: bool) -> Dict[str, Any]:
        """The recipe's ``item_encoder`` options (``name`` included) for a stage that trains the kinds
        ``tokens``; ``history_id``: the histories keep the item ID although the stage's candidates do not."""

    def warm_start(self, kind: str, source: str) -> None:
        """Start the ``kind`` tables from the warm ``source`` tables (after the previous stage's weights loaded)."""


def protocol_members() -> list[str]:
    """The members an encoder must have (the protocol's own and inherited methods, in a stable order)."""
    protocols = [p for p in StagedWarmupEncoder.__mro__ if getattr(p, "_is_protocol", False) and p is not Protocol]
    return sorted({name for p in protocols for name in vars(p) if not name.startswith("_")})


def staged_encoder_class(name: str, stage: str) -> type:
    """The encoder class registered as ``name``, checked against :class:`StagedWarmupEncoder`."""
    from cva_rec.encoders import ENCODERS

    return require_protocol(ENCODERS.get(name), name, stage)


def require_protocol(cls: type, name: str, stage: str) -> type:
    """``cls`` when it implements :class:`StagedWarmupEncoder`, else one ConfigError line naming what it lacks."""
    if not issubclass(cls, StagedWarmupEncoder):
        missing = [m for m in protocol_members() if not callable(getattr(cls, m, None))]
        raise ConfigError(f"warmup stage {stage!r} needs an item encoder with the staged warm-up protocol "
                          f"(cva_rec.encoders.staged_warmup: {', '.join(protocol_members())}), e.g. lucid; "
                          f"item_encoder {name!r} lacks {', '.join(missing)}")
    return cls
