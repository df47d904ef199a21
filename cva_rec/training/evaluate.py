"""Evaluate a finished run's checkpoint without training."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from cva_rec.config.schema import load_config
from cva_rec.data.dataset import build_data
from cva_rec.errors import CheckpointError, ConfigError
from cva_rec.io import atomic_write_json, atomic_write_text, ensure_writable, load_torch_file
from cva_rec.jobs.provenance import evaluation_provenance
from cva_rec.jobs.run_folder import results_lock
from cva_rec.training.run_identity import check_identity

#: how a refusal of a folder in use names the way out (``evaluate`` and ``retrieve`` both have ``--out``)
RESULTS_ELSEWHERE = "another folder for the results with --out DIR"


def evaluate_run(run_dir: Path, checkpoint: Optional[str] = None, split: str = "test", overrides: Sequence[str] = (),
                 progress: bool = True, per_user: Optional[Path] = None, out_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Rank the held-out items with a checkpoint; writes ``OUT/eval_<split>_<ckpt>.json``: the metrics and
    their ``provenance`` (the config identity, the overrides and the fingerprints of the checkpoint, store
    and codes read: :func:`cva_rec.jobs.provenance.evaluation_provenance`).

    ``out_dir`` (default: the run folder) receives every file evaluation writes, so a read-only
    run folder (someone else's, an archive) can be evaluated; nothing is written into it then. OUT's
    lock (:func:`cva_rec.jobs.run_folder.results_lock`) is held while it writes: a folder a training run
    or another evaluation is writing is refused in one line naming it (once the run's checks passed).

    Works under DDP like training (``--set train.strategy=ddp --set train.devices=N``): each
    process ranks a shard of the users, the rows are gathered, and rank 0 writes the files.
    ``per_user``: also write every evaluated user's ``user_id,target,rank`` (internal ids,
    0-based rank) to this CSV, one line per user, sorted by user.
    """
    from cva_rec.training.datamodule import RecBoleDataModule
    from cva_rec.training.trainer import make_trainer, quiet_lightning

    quiet_lightning()
    cfg, ckpt = run_config_and_checkpoint(run_dir, checkpoint, overrides)
    out = ensure_writable(Path(out_dir) if out_dir else run_dir, "evaluate writes its results there: pass --out DIR to write them elsewhere")
    for logs in (out / "eval", out / "eval" / "tb"):  # its logs stay inside OUT, never written through a link
        if logs.is_symlink():
            raise ConfigError(f"{logs} is a symlink to {os.readlink(logs)}; evaluate writes its logs only inside {out}, "
                              "never through a link: remove the link or pass --out DIR")
    if per_user is not None:
        ensure_writable(Path(per_user).parent, "--per-user writes its CSV there")
    data, module = load_trained_module(cfg, ckpt)
    # every check passed: from here on it writes OUT, which no training run or other evaluation may write meanwhile
    with results_lock(out, cfg, RESULTS_ELSEWHERE):
        provenance = evaluation_provenance(cfg, run_dir, ckpt, overrides)
        trainer = make_trainer(cfg, out / "eval", enable_progress_bar=progress)
        dm = RecBoleDataModule(data, cfg)
        if split == "test":
            trainer.test(module, datamodule=dm, verbose=False)
        else:
            trainer.validate(module, datamodule=dm, verbose=False)
        key = "test" if split == "test" else "valid"
        result = {**module.results[key], "provenance": provenance}
        if trainer.is_global_zero:  # every rank holds the same gathered result; one writer
            atomic_write_json(out / f"eval_{split}_{ckpt.stem}.json", result)
            if per_user is not None:
                users, targets, ranks = module.eval_rows[key]
                lines = ["user_id,target,rank"] + [f"{u},{t},{r}" for u, t, r in zip(users.tolist(), targets.tolist(), ranks.tolist())]
                atomic_write_text(per_user, "\n".join(lines) + "\n")
    return result


def run_config_and_checkpoint(run_dir: Path, checkpoint: Optional[str] = None, overrides: Sequence[str] = ()):
    """(config, checkpoint path) of a trained run folder; the checkpoint is checked (readable,
    weights-only) before minutes of data loading."""
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    _refuse_phase_out_stage(run_dir)
    cfg = load_config(run_dir / "config.yaml", overrides)
    ckpt = Path(checkpoint) if checkpoint else run_dir / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        raise CheckpointError(f"checkpoint not found: {ckpt}")
    # the run the checkpoint records is this folder's run (its config.yaml; the overrides are evaluation
    # settings); its dataset is checked once the data is loaded (load_trained_module)
    check_identity(load_torch_file(ckpt, "checkpoint"), ckpt, cfg=load_config(run_dir / "config.yaml"),
                   against=f"the run folder {run_dir}")
    return cfg, ckpt


def _refuse_phase_out_stage(run_dir: Path) -> None:
    """A warmup phase-out stage trains with the item ID's weight set by a schedule over the epochs
    (a runtime value its config does not record), so rebuilding the model from its config would
    score every checkpoint with the ID at full weight: a wrong number, not an error. Recognised by
    what ``cva-rec warmup`` writes (``metrics.json`` ``stage``, or the ``<i>-phase_out`` folder of a
    warmup output that has ``stages.json`` while the stage is still running)."""
    metrics = run_dir / "metrics.json"
    stage = None
    if metrics.is_file():
        try:
            stage = json.loads(metrics.read_text()).get("stage")
        except (ValueError, AttributeError):
            stage = None
    elif run_dir.name.endswith("-phase_out") and (run_dir.parent / "stages.json").is_file():
        stage = "phase_out"
    if stage == "phase_out":
        raise ConfigError(f"{run_dir} is a warmup phase-out stage: its checkpoints hold the item ID at the weight of the "
                          "phase-out schedule, which its config does not record, so they cannot be re-evaluated as they "
                          "were trained; its test metrics are in its metrics.json (and the warmup's stages.json); evaluate "
                          "the next stage's folder for the ID-free model")


def load_trained_module(cfg, ckpt: Path):
    """(data, module with the checkpoint's weights) for a run's config."""
    from cva_rec.training.build import build_module
    from cva_rec.training.checkpoint_io import load_checkpoint_into
    from cva_rec.training.content import load_content
    from cva_rec.training.memory_budget import check_memory
    from cva_rec.training.run_identity import dataset_fingerprint

    data = build_data(cfg)
    check_memory(cfg, data, training=False)  # the evaluation batch (eval.batch_size may be --set here)
    module = build_module(cfg, data, load_content(cfg, data))
    load_checkpoint_into(module, ckpt, dataset=dataset_fingerprint(data))
    return data, module
