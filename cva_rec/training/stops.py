"""What a fit or test that was asked to stop (SIGTERM, SIGINT) says: where it was and what is saved.

Lightning turns SIGTERM into ``SIGTERMException`` (a ``SystemExit`` without a code: exit 0, as if the run had
finished) at the next batch end, and Ctrl+C into ``sys.exit(1)``. The CLI installs a SIGTERM handler that
raises :class:`~cva_rec.errors.Stopped` (Lightning calls it beside its own); :func:`stop_report` turns each
of these into one :class:`~cva_rec.errors.Stopped` naming the epoch and the checkpoints on disk, and the
CLI prints it with the command that resumes and exits 143 / 130.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from cva_rec.errors import Stopped


def stop_signal(exc: BaseException) -> Optional[int]:
    """The signal behind ``exc`` when it is a stop request, else None."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(exc, Stopped):
        return exc.signum
    if isinstance(exc, SIGTERMException):
        return int(signal.SIGTERM)
    if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit) and isinstance(exc.__context__, KeyboardInterrupt)):
        return int(signal.SIGINT)  # Lightning's fit / test end a KeyboardInterrupt with sys.exit(1)
    return None


def saved_checkpoints(trainer, run_dir: Path) -> str:
    """What a resume of ``run_dir`` starts from, in words."""
    ckpts = Path(run_dir) / "checkpoints"
    last, best = ckpts / "last.ckpt", ckpts / "best.ckpt"
    hpc = sorted(ckpts.glob("hpc_ckpt_*.ckpt"), key=lambda p: p.stat().st_mtime)
    if trainer.state.fn is not None and trainer.state.fn.value == "test":
        return f"training finished ({last} and {best}); metrics.json not written"
    done = int(trainer.current_epoch)
    parts = [f"{last} ({done} epoch{'s' if done != 1 else ''} done)"] if last.is_file() else []
    parts += [f"{hpc[-1]} (mid-epoch, SLURM requeue)"] if hpc else []
    return " and ".join(parts) if parts else "nothing yet (no epoch finished)"


def where_stopped(trainer) -> str:
    fn = trainer.state.fn.value if trainer.state.fn is not None else ""
    if fn == "test":
        return "while testing"
    epoch = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
    total = trainer.num_training_batches
    step = trainer.fit_loop.epoch_loop.batch_progress.current.completed
    if not isinstance(total, int):
        return f"during {epoch}"
    # Lightning resets the stage on the way out; every step done means the epoch was validating
    return f"during {epoch}, step {step}/{total}" + (" (validating)" if step >= total else "")


@contextmanager
def stop_report(trainer, run_dir: Optional[Path]) -> Iterator[None]:
    """Around ``trainer.fit`` / ``trainer.test``: a stop request leaves as :class:`Stopped` with its report
    (``run_dir`` None: a temporary folder, nothing is kept)."""
    try:
        yield
    except BaseException as exc:
        signum = stop_signal(exc)
        if signum is None:
            raise
        saved = saved_checkpoints(trainer, run_dir) if run_dir is not None else "nothing (a fit in a temporary folder)"
        raise Stopped(signum, where_stopped(trainer), saved) from None
