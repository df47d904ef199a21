"""The protocol between the staged warm-up and an encoder that carries the item ID next to content.

The warm-up (``cva_rec/warmup``) knows nothing else about such an encoder: it lowers the ID's
weight during the phase-out, then removes the ID, and checks by name that no ID parameter is left
where it must not be. The whole of what the warm-up asks of an encoder is
:class:`cva_rec.encoders.staged_warmup.StagedWarmupEncoder`, which extends this protocol. ``where`` says which side retires the ID:

* ``"candidate"``: only the candidate (scored item) side, FLUID's Eq. 8: the history keeps its ID;
* ``"everywhere"``: histories and candidates; the ID table is deleted at the end.
"""
from __future__ import annotations

from typing import List, Protocol, runtime_checkable

RETIRE_WHERE = ("candidate", "everywhere")


@runtime_checkable
class RetiresItemId(Protocol):
    """Methods only, so that an encoder *class* can be checked (``issubclass``) before anything is built."""

    def id_parameter_names(self) -> List[str]:
        """Names, relative to the encoder, of the parameters that hold the item ID, also when the
        encoder has none (an early 'replace' stage, or after ``drop_id``): the keys a seed's ID
        tensors have, so a stage can say which of them it leaves behind on purpose."""

    def set_id_scale(self, value: float, where: str = "everywhere") -> None:
        """Weight of the ID in [0, 1] on the ``where`` side (1 = as trained, 0 = no effect)."""

    def drop_id(self, where: str = "everywhere") -> None:
        """Remove the ID from the ``where`` side for good, keeping the function it had at weight 0."""
