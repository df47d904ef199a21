"""Grids of experiments: expand a grid YAML into runs, skip finished ones, run the rest.

Grid file::

    base: sasrec_id.yaml            # recipe path relative to this file, or inline config sections
    fixed:                          # overrides for every run (mapping or list of "key=value")
      train.epochs: 2
    variants:                       # optional: named override sets that change together
      id: {item_encoder.name: id}
      cva_m8: {item_encoder.name: cva, item_encoder.num_latents: 8}
    grid:                           # section.key -> values; the runs are the Cartesian product
      model.name: [SASRec, GRU4Rec, NextItNet]
      train.seed: [1, 2, 3]
    out: runs/my_grid               # optional default output folder (relative to the working dir)

Overrides apply in the order base <- fixed <- variant <- grid point. Each run's directory name is
derived from its variant and grid values (``cva_m8-SASRec-s1``), so re-running the grid finds the
same folders: a folder with ``metrics.json`` is finished and skipped; one without is re-run with
``train.resume=true`` (Lightning continues from ``checkpoints/last.ckpt``). A folder whose
``config.yaml`` is another config than the grid now gives it stops the sweep before anything runs
(:func:`check_folders_match`); each folder is checked again when its run starts (another process may
have trained it meanwhile): a run another process finished with this config is skipped, one of
another config is reported as failed, never as this grid's.

Every run is trained in its own child process (``cva-rec train``) by default: the process's peak
memory is then that run's alone (peak RSS only grows within a process), and a crash in one run
does not end the sweep. ``cva-rec sweep --launcher submitit`` hands those child runs to a cluster
instead (SLURM through submitit, or its local executor), one job per unfinished run, with the same
contract (:func:`submit_runs`).
"""
from __future__ import annotations

import itertools
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from cva_rec.config.identity import RESUME_MAY_CHANGE, differences
from cva_rec.config.schema import load_config, read_recipe
from cva_rec.errors import ConfigError, CvaRecError, RunFolderError

log = logging.getLogger("cva_rec")

GRID_KEYS = {"base", "fixed", "variants", "grid", "out", "search"}


@dataclass
class SweepRun:
    """One point of the grid."""

    name: str
    overrides: List[str]  # fixed + variant + grid point, as "section.key=value"
    variant: Optional[str]
    run_dir: Path
    config: Dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return (self.run_dir / "metrics.json").is_file()

    @property
    def started(self) -> bool:
        return self.run_dir.is_dir() and not self.finished

    @property
    def status(self) -> str:
        return "finished" if self.finished else "resume" if self.started else "new"

    def other_config(self) -> Optional[str]:
        """Why the folder's ``config.yaml`` is not this run's (None when it is, or when there is none).

        Folder names come from the grid point only, so an edited base recipe or ``fixed:`` finds the
        same folders: a finished one would be skipped and reported as if it were this config's. The
        rule is the run folder's (:mod:`cva_rec.config.identity`): an unfinished run is resumed, and a
        resumed run may be given more epochs, as ``cva-rec train`` allows."""
        path = self.run_dir / "config.yaml"
        if not path.is_file():
            return None
        try:
            old = load_config(path)
        except ConfigError as exc:
            return f"its config.yaml is not a valid config here: {exc}"
        why = "; ".join(differences(old, self.config, () if self.finished else RESUME_MAY_CHANGE))
        if why or not (self.finished or any((self.run_dir / "checkpoints").glob("*.ckpt"))):
            return why or None
        from cva_rec.jobs.provenance import folder_changes

        # the same config on other bytes (a store re-extracted under its path): another experiment
        changed = folder_changes(self.run_dir, self.config)
        return f"input files changed: {'; '.join(changed)}" if changed else None


def check_folders_match(runs: Sequence[SweepRun]) -> None:
    """Raise one line, before anything runs, when run folders hold runs of another config than the grid
    now gives them (see :meth:`SweepRun.other_config`)."""
    stale = [(run, why) for run in runs if (why := run.other_config())]
    if stale:
        run, why = stale[0]
        more = f" and {len(stale) - 1} more" if len(stale) > 1 else ""
        raise RunFolderError(f"{run.run_dir.parent}: run folder {run.name}{more} holds a run of another config than the grid gives it "
                             f"({why}); nothing was run: choose another --out, or delete those folders to train "
                             "them again")


@dataclass
class Grid:
    """A parsed grid file."""

    path: Path
    base_path: Optional[Path]
    base_inline: Optional[Dict[str, Any]]
    fixed: List[str]
    variants: Dict[str, List[str]]
    axes: List[Tuple[str, List[Any]]]
    out: Optional[Path]
    search: Dict[str, Any] = field(default_factory=dict)  # section.key -> Optuna search space (cva_rec/jobs/optuna_search.py)


def yaml_value(value: Any) -> str:
    """A value as it must appear after ``=`` in an override (parsed back with YAML)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _overrides(spec: Any, where: str) -> List[str]:
    """A mapping ``{key: value}`` or a list of ``"key=value"`` strings -> override strings."""
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        return [f"{k}={yaml_value(v)}" for k, v in spec.items()]
    if isinstance(spec, list) and all(isinstance(s, str) and "=" in s for s in spec):
        return list(spec)
    raise ConfigError(f"{where} must be a mapping of section.key: value or a list of 'section.key=value' strings")


def load_grid(path: str | os.PathLike) -> Grid:
    """Read and check the grid file's own structure (the configs are checked by :func:`expand`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file not found: {path}")
    data = read_recipe(path) or {}  # a grid is YAML as recipes are written (1e-4 is a number)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping with base / fixed / variants / grid")
    unknown = set(data) - GRID_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown grid key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(GRID_KEYS))}")
    base = data.get("base")
    base_path = base_inline = None
    if isinstance(base, str):
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise ConfigError(f"{path}: base recipe not found: {base_path}")
    elif isinstance(base, Mapping):
        base_inline = dict(base)
    elif base is not None:
        raise ConfigError(f"{path}: base must be a recipe path or a mapping of config sections")
    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{path}: grid must map section.key to a list of values")
    axes = []
    for key, values in grid.items():
        if not isinstance(key, str) or "." not in key:
            raise ConfigError(f"{path}: grid key {key!r} must look like section.key (e.g. model.name)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid.{key} must be a non-empty list of values")
        axes.append((key, values))
    variants_spec = data.get("variants") or {}
    if not isinstance(variants_spec, Mapping):
        raise ConfigError(f"{path}: variants must map a name to its overrides")
    variants = {str(name): _overrides(spec, f"{path}: variants.{name}") for name, spec in variants_spec.items()}
    out = Path(data["out"]) if data.get("out") else None
    search = data.get("search") or {}
    if not isinstance(search, Mapping):
        raise ConfigError(f"{path}: search must map section.key to a range or a list of choices")
    return Grid(path, base_path, base_inline, _overrides(data.get("fixed"), f"{path}: fixed"), variants, axes, out, dict(search))


def _name_part(key: str, value: Any, label: str) -> str:
    """How one grid value shows in a run name: backbones and encoders bare, seeds as s<N>, else <label><value>."""
    if key in ("model.name", "item_encoder.name", "dataset.name", "loss.name"):
        return _safe(str(value))
    if key == "train.seed":
        return f"s{value}"
    return f"{label}{yaml_value(value)}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=@+-]+", "_", name).strip("_") or "run"


def run_names(points: Sequence[Tuple[Optional[str], Sequence[Tuple[str, Any]]]]) -> List[str]:
    """Deterministic, readable, unique directory names for (variant, grid values) points.

    A grid key shows by its last part (``lr0.01``) unless another grid key ends the same way
    (``model.hidden_size`` / ``item_encoder.hidden_size``): then both show in full.
    """
    keys = list(dict.fromkeys(k for _, values in points for k, _ in values))
    tails = [k.rsplit(".", 1)[-1] for k in keys]
    label = {k: (k if tails.count(t) > 1 else t) for k, t in zip(keys, tails)}
    names = [_safe("-".join(([variant] if variant else []) + [_name_part(k, v, label[k]) for k, v in values]))
             for variant, values in points]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"grid gives several runs the same name ({', '.join(dup[:3])}); make the grid values distinct")
    return names


def expand(grid: Grid, out_dir: Optional[str | os.PathLike] = None) -> List[SweepRun]:
    """All runs of the grid, each config loaded and validated (bad keys fail here, before any training)."""
    out = Path(out_dir) if out_dir else grid.out or Path("runs") / grid.path.stem
    variants = list(grid.variants.items()) or [(None, [])]
    points = []
    for (variant, var_overrides), combo in itertools.product(variants, itertools.product(*(vals for _, vals in grid.axes))):
        values = list(zip((k for k, _ in grid.axes), combo))
        points.append((variant, var_overrides, values))
    names = run_names([(v, vals) for v, _, vals in points])
    runs = []
    for name, (variant, var_overrides, values) in zip(names, points):
        overrides = [*grid.fixed, *var_overrides, *(f"{k}={yaml_value(v)}" for k, v in values)]
        run_dir = out / name
        full = [*overrides, f"output.dir={yaml_value(str(out))}", f"output.name={yaml_value(name)}"]
        try:
            cfg = load_config(grid.base_path, full, extra=grid.base_inline)
        except ConfigError as exc:
            raise ConfigError(f"{grid.path}: run {name}: {exc}") from None
        runs.append(SweepRun(name, overrides, variant, run_dir, cfg))
    return runs


def train_in_subprocess(run: SweepRun, progress: bool) -> int:
    """``cva-rec train`` on the run's resolved config in a child process; returns its exit code."""
    from cva_rec.config.schema import dump_config

    check_inside(run)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = run.run_dir / "sweep_config.yaml"
    dump_config(run.config, cfg_path)
    cmd = [sys.executable, "-m", "cva_rec.cli.main", "train", "-c", str(cfg_path), "--run-dir", str(run.run_dir)]
    if not progress:
        cmd.append("--no-progress")
    return subprocess.call(cmd)


def train_in_process(run: SweepRun, progress: bool) -> int:
    """Train in this process (faster start; peak memory then is the sweep's so far, not the run's)."""
    from cva_rec.training.run import run_experiment

    check_inside(run)
    run_experiment(run.config, run.run_dir, enable_progress_bar=progress)
    return 0


def check_inside(run: SweepRun) -> None:
    """A run folder that a symlink leads out of the sweep's folder is refused before anything is written
    (the sweep names its folders by the grid; a link there would send a run's writes elsewhere)."""
    parent = run.run_dir.parent
    if parent.resolve() not in run.run_dir.resolve().parents:
        raise RunFolderError(f"run folder {run.run_dir} leads out of {parent} (a symlink to {run.run_dir.resolve()}); "
                             "a sweep writes only inside its folder: remove the link")


@dataclass
class SweepResult:
    runs: List[SweepRun]
    trained: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (name, reason)


def _unfinished(runs: List[SweepRun], result: SweepResult, printer: Callable[[str], None]):
    """(progress head, run) of each run to train; finished runs are recorded as skipped, and a killed
    run (a folder without metrics.json) is set to continue from its last checkpoint."""
    for i, run in enumerate(runs, 1):
        head = f"[{i}/{len(runs)}] {run.name}"
        # checked again when the run starts: another process (a second sweep on this grid, a `train` by
        # hand) may have written the folder since the sweep began
        if why := run.other_config():
            reason = f"its folder holds a run of another config than the grid gives it ({why}); not trained"
            result.failed.append((run.name, reason))
            printer(f"{head}: FAILED ({reason})")
            continue
        if run.finished:
            result.skipped.append(run.name)
            printer(f"{head}: finished earlier, skipped")
            continue
        if run.started:
            run.config["train"]["resume"] = True
        yield head, run


def run_sweep(grid: Grid, out_dir: Optional[str | os.PathLike] = None, progress: bool = False, in_process: bool = False,
              printer: Callable[[str], None] = print, cluster: Optional[Mapping[str, Any]] = None) -> SweepResult:
    """Expand, validate every config, then train each unfinished run (failures are reported, not fatal).

    ``cluster``: hand the unfinished runs to a cluster through submitit instead (see :func:`submit_runs`).
    """
    runs = expand(grid, out_dir)
    check_folders_match(runs)
    result = SweepResult(runs)
    if cluster is not None:
        return submit_runs(runs, result, cluster, printer)
    train = train_in_process if in_process else train_in_subprocess
    for head, run in _unfinished(runs, result, printer):
        printer(f"{head}: {'resuming' if run.started else 'training'} ...")
        t0 = time.perf_counter()
        try:
            code = train(run, progress)
            reason = None if code == 0 and run.finished else f"exit code {code}" if code else "no metrics.json written"
        except CvaRecError as exc:
            reason = str(exc)
        dt = time.perf_counter() - t0
        if reason:
            result.failed.append((run.name, reason))
            printer(f"{head}: FAILED after {dt:.0f} s ({reason})")
            continue
        result.trained.append(run.name)
        printer(f"{head}: done in {dt:.0f} s{_summary(run)}")
    return result


def submit_runs(runs: List[SweepRun], result: SweepResult, cluster: Mapping[str, Any],
                printer: Callable[[str], None] = print) -> SweepResult:
    """One submitit job per unfinished run (each job runs ``cva-rec train`` in a child, as the local
    sweep does), all submitted at once, then waited for. The contract is the local sweep's: finished
    runs are skipped, a killed run (a folder without metrics.json) resumes from its last checkpoint,
    and a job that fails is reported, not fatal. ``cluster``: ``cluster`` (``auto`` = SLURM when
    available, ``local``, ``debug``), ``folder`` for submitit's logs, and submitit's executor
    parameters (``timeout_min``, ``slurm_partition``, ``gpus_per_node``, ...)."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("--launcher submitit needs submitit: pip install -e .[cluster]") from None
    options = dict(cluster)
    kind = options.pop("cluster", "auto")
    folder = options.pop("folder", None) or (runs[0].run_dir.parent / ".submitit" if runs else ".submitit")
    executor = submitit.AutoExecutor(folder=str(folder), cluster=None if kind == "auto" else kind)
    try:
        executor.update_parameters(**options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"submitit refused the launcher options {options}: {exc}") from None
    jobs = []
    for head, run in _unfinished(runs, result, printer):
        job = executor.submit(train_in_subprocess, run, False)
        jobs.append((head, run, job))
        printer(f"{head}: {'resuming' if run.started else 'submitted'} as job {job.job_id}")
    for head, run, job in jobs:
        try:
            code = job.result()
            reason = None if code == 0 and run.finished else f"exit code {code}" if code else "no metrics.json written"
        except Exception as exc:  # the job died (killed, node failure, timeout): report, keep going
            reason = f"job {job.job_id} failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"
        if reason:
            result.failed.append((run.name, reason))
            printer(f"{head}: FAILED ({reason})")
        else:
            result.trained.append(run.name)
            printer(f"{head}: done{_summary(run)}")
    return result


def _summary(run: SweepRun) -> str:
    import json

    try:
        test = json.loads((run.run_dir / "metrics.json").read_text())["test"]
        return ", " + ", ".join(f"{k}={test[k]:.4f}" for k in ("hr@10", "ndcg@10") if isinstance(test.get(k), float))
    except (OSError, ValueError, KeyError):
        return ""
