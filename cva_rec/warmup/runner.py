"""Run FLUID's staged warmup: one Lightning fit per stage, each seeded by the previous one.

Layout of the output folder (``output.dir/output.name``)::

    config.yaml            the resolved recipe
    0-id/ 1-slice/ ...     one ordinary run directory per stage (config, tb/, checkpoints/, metrics.json)
    <stage>/seed.pt        the weights handed to the next stage (written atomically, last)
    stages.json            per-stage overall + cold-start metrics (what `cva-rec report` plots)
    stages.md              the same as a table (written by ``cva-rec warmup`` through cva_rec.report.stages)
    metrics.json           the last stage's metrics (so the folder is also a run for reports)

**Resuming**: a stage is finished when its ``seed.pt`` exists; finished stages are skipped, an
interrupted stage continues from its own ``checkpoints/last.ckpt``. So after a crash the same
command picks up where it stopped, at any stage.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from cva_rec.backbones import item_encoder_of
from cva_rec.errors import ConfigError
from cva_rec.io import atomic_write_json
from cva_rec.jobs.run_folder import claim_run_folder, folder_inside
from cva_rec.training.run_identity import RunIdentity
from cva_rec.warmup.seeds import SEED_FILE, id_parameter_keys, init_from_seed, load_seed, save_seed  # noqa: F401
from cva_rec.warmup.stages import Stage, check_warmup

log = logging.getLogger("cva_rec")



def stage_config(cfg: Mapping[str, Any], stage: Stage, out: Path, index: int) -> Dict[str, Any]:
    """The recipe as ``stage`` changes it, written to ``out/<index>-<stage>``."""
    c = copy.deepcopy(dict(cfg))
    stage.configure(cfg, c)
    c["output"] = {"dir": str(out), "name": f"{index}-{stage.name}"}
    return c


# -- one stage ------------------------------------------------------------------------------------
def _prepare(stage: Stage, cfg, prev_seed: Optional[Path], dataset: Optional[Mapping[str, Any]] = None):
    def prepare(module):
        encoder = item_encoder_of(module.model)
        if prev_seed is not None:
            # a stage without the ID (early 'replace') leaves the previous stage's ID table behind on purpose
            fresh = init_from_seed(module, load_seed(prev_seed, dataset), allow_unused=id_parameter_keys(module))
            log.info("stage %s: initialised from %s; new parameters: %s", stage.name, prev_seed,
                     sorted({k.rsplit(".", 1)[0] for k in fresh}) or "none")
        stage.before_fit(cfg, encoder)

    return prepare


def run_stage(cfg, stage: Stage, index: int, out: Path, prev_seed: Optional[Path], data, progress: bool) -> Dict[str, Any]:
    from cva_rec.training.run import build_module, load_content, run_experiment

    scfg = stage_config(cfg, stage, out, index)
    run_dir = folder_inside(out, scfg["output"]["name"], "its warmup folder")  # a stage writes only inside it
    module = build_module(scfg, data, load_content(scfg, data))
    encoder = item_encoder_of(module.model)
    identity = RunIdentity(scfg, data)
    metrics = run_experiment(scfg, run_dir, progress, data=data, prepare=_prepare(stage, cfg, prev_seed, identity.dataset),
                             callbacks=stage.callbacks(cfg, encoder, module.model), test_on=stage.test_on, module=module,
                             inputs={"warmup.seed": prev_seed} if prev_seed is not None else None)
    added = stage.after_fit(cfg, encoder, module)
    metrics["stage"] = stage.name
    metrics["stage_what"] = stage.what
    metrics["item_encoder"] = {k: v for k, v in scfg["item_encoder"].items() if k != "codes_path"}  # the item side trained
    metrics["id_retired"] = None  # where the stage ended ID-free (a phase-out says)
    metrics.update(added)
    metrics["parameters"] = sum(p.numel() for p in module.model.parameters() if p.requires_grad)
    atomic_write_json(run_dir / "metrics.json", metrics)
    save_seed(module, run_dir / SEED_FILE, identity)
    return metrics


# -- the whole schedule ---------------------------------------------------------------------------------
def run_warmup(cfg: Mapping[str, Any], progress: bool = True) -> Dict[str, Any]:
    from cva_rec.data.dataset import build_data

    stages = check_warmup(cfg)
    reuse = set(cfg["warmup"]["reuse_stages"] or [])
    # reused stages are checked before anything is claimed or written
    reused = {s.name: _reused_stage(cfg, s, i) for i, s in enumerate(stages) if s.name in reuse}
    out = folder_inside(Path(cfg["output"]["dir"]), cfg["output"]["name"] or f"{cfg['dataset']['name']}-{cfg['model']['name']}-warmup")
    # one writer per warmup folder; re-running resumes, so only the same config may (warmup.stages may
    # grow: each stage folder checks its own config)
    with claim_run_folder(out, cfg, resume=True, ignore=("warmup.stages",), elsewhere="another output.name",
                          replace_flag=None) as claim:
        data = build_data(cfg)
        claim.commit_config()
        return _run_stages(cfg, stages, out, data, progress, reused)


def _run_stages(cfg, stages: List[Stage], out: Path, data, progress: bool, reused) -> Dict[str, Any]:
    results: List[Dict[str, Any]] = []
    prev_seed: Optional[Path] = None
    for index, stage in enumerate(stages):
        if stage.name in reused:
            prev_seed, metrics = reused[stage.name]
            print(f"== warmup stage {index} ({stage.name}): reused from {prev_seed.parent}", flush=True)
            results.append(metrics)
            continue
        run_dir = out / f"{index}-{stage.name}"
        seed = run_dir / SEED_FILE
        if seed.is_file() and (run_dir / "metrics.json").is_file():
            print(f"== warmup stage {index} ({stage.name}): finished earlier, skipped", flush=True)
            metrics = json.loads((run_dir / "metrics.json").read_text())
        else:
            print(f"== warmup stage {index} ({stage.name}): {stage.what}", flush=True)
            metrics = run_stage(cfg, stage, index, out, prev_seed, data, progress)
        results.append(metrics)
        prev_seed = seed
        _write_summary(out, results)
    final = {**results[-1], "run": out.name, "label": f"warmup:{'/'.join(s.name for s in stages)}"}
    atomic_write_json(out / "metrics.json", final)
    return {"out": str(out), "stages": results}


def _reused_stage(cfg, stage: Stage, index: int):
    """A finished stage of ``warmup.reuse_run``, refused when this chain would have trained it differently."""
    source = Path(cfg["warmup"]["reuse_run"])
    stage_dir = source / f"{index}-{stage.name}"
    if not (stage_dir / SEED_FILE).is_file() or not (stage_dir / "metrics.json").is_file():
        raise ConfigError(f"warmup.reuse_run: no finished stage at {stage_dir} (run that warmup first)")
    _check_reused_config(stage_dir, stage_config(cfg, stage, source, index), stage)
    metrics = json.loads((stage_dir / "metrics.json").read_text())
    return stage_dir / SEED_FILE, {**metrics, "reused_from": str(stage_dir)}


def _check_reused_config(stage_dir: Path, expected: Mapping[str, Any], stage: Stage) -> None:
    """The data, split, model, loss, evaluation, item side and this stage's training (seed, epochs, lr)
    must be the ones this chain would give the stage: a stage from another seed, budget or composition
    would silently mix two experiments. Warm-up keys enter through the stage's own config, except those
    the stage reads directly (``Stage.reads``); item-side options that the stage's kinds do not read are
    not in its config (the encoder's ``stage_options``: an ablation of them reuses the stages before)."""
    from cva_rec.config.identity import differences, same_experiment
    from cva_rec.config.schema import load_config

    try:
        old = load_config(stage_dir / "config.yaml")
    except ConfigError as exc:
        raise ConfigError(f"warmup.reuse_run: {stage_dir / 'config.yaml'} cannot be read ({exc})") from None
    ignore = [f"warmup.{k}" for k in expected["warmup"] if k not in stage.reads]
    if not same_experiment(old, expected, ignore):
        raise ConfigError(f"warmup.reuse_run: stage {stage.name} at {stage_dir} was trained with another config "
                          f"({'; '.join(differences(old, expected, ignore))}); reuse only the stages this chain "
                          "would train the same way")


def _write_summary(out: Path, results) -> None:
    """``stages.json``: what each stage was and what it scored (``cva-rec report`` / ``report.stages`` read it)."""
    keys = ("stage", "stage_what", "item_encoder", "id_retired", "test", "valid", "parameters", "epochs_trained", "run")
    stages = [{("what" if k == "stage_what" else k): m.get(k) for k in keys} for m in results]
    atomic_write_json(out / "stages.json", {"stages": stages})
