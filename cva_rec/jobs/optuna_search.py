"""Hyper-parameter search with Optuna over the same run folders as a sweep (``cva-rec sweep --optuna N``).

A grid file's ``search:`` section gives the space, one ``section.key`` each::

    search:
      train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # float
      model.n_layers: {low: 1, high: 4, int: true}        # integer
      model.hidden_size: [32, 64, 128]                    # choice

Each trial is an ordinary run folder ``<out>/trial-<hash of its values>`` trained by ``cva-rec
train`` in a child process (the sweep's own runner), scored by its best validation
``eval.valid_metric`` (maximised). The study lives in ``<out>/optuna.db`` (SQLite), so the sweep's
contract holds: a second call with the same ``N`` trains nothing, a larger ``N`` adds trials, and
a trial killed mid-run is asked again with the same values, whose folder resumes from its last
checkpoint. The report covers every trial folder like any sweep.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from cva_rec.errors import ConfigError, RunFolderError
from cva_rec.jobs.sweep import Grid, SweepResult, SweepRun, train_in_subprocess, yaml_value


def distributions(grid: Grid) -> Dict[str, Any]:
    import optuna.distributions as d

    out = {}
    for key, spec in grid.search.items():
        where = f"{grid.path}: search.{key}"
        if not isinstance(key, str) or "." not in key:
            raise ConfigError(f"{where}: keys look like section.key (e.g. train.lr)")
        if isinstance(spec, list) and spec:
            out[key] = d.CategoricalDistribution(spec)
        elif isinstance(spec, dict) and {"low", "high"} <= set(spec) and set(spec) <= {"low", "high", "log", "int"}:
            if spec.get("int"):
                out[key] = d.IntDistribution(int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
            else:
                out[key] = d.FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
        else:
            raise ConfigError(f"{where}: give a non-empty list of choices or {{low, high[, log][, int]}}")
    if not out:
        raise ConfigError(f"{grid.path}: --optuna needs a search: section")
    return out


def trial_run(grid: Grid, out: Path, params: Dict[str, Any]) -> SweepRun:
    from cva_rec.config.schema import load_config

    key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:10]
    name = f"trial-{key}"
    overrides = [*grid.fixed, *(f"{k}={yaml_value(v)}" for k, v in sorted(params.items()))]
    full = [*overrides, f"output.dir={yaml_value(str(out))}", f"output.name={yaml_value(name)}"]
    try:
        cfg = load_config(grid.base_path, full, extra=grid.base_inline)
    except ConfigError as exc:
        raise ConfigError(f"{grid.path}: trial {params}: {exc}") from None
    return SweepRun(name, overrides, None, out / name, cfg)


def _check_folder(run: SweepRun) -> None:
    """Same params, edited base recipe / ``fixed:``: the folder (and the study's score of it) is not this
    search's result. One line, before anything is trained or told to the study."""
    if (why := run.other_config()) is not None:
        raise RunFolderError(f"{run.run_dir} holds a run of another config than this search gives it ({why}); nothing "
                             f"was run: choose another --out, or delete {run.run_dir.parent} to search again")


def _score(run: SweepRun) -> Optional[float]:
    try:
        metrics = json.loads((run.run_dir / "metrics.json").read_text())
        return float(metrics["valid"][run.config["eval"]["valid_metric"].lower()])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_search(grid: Grid, n_trials: int, out_dir: Optional[str | Path] = None, seed: int = 0,
               printer: Callable[[str], None] = print) -> SweepResult:
    try:
        import optuna
    except ImportError:
        raise ConfigError("--optuna needs optuna: pip install -e .[search]") from None
    if grid.axes or grid.variants:
        raise ConfigError(f"{grid.path}: --optuna searches the search: section; drop grid: and variants: (or run them as a sweep)")
    space = distributions(grid)
    out = Path(out_dir) if out_dir else grid.out or Path("runs") / grid.path.stem
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=grid.path.stem, storage=f"sqlite:///{out / 'optuna.db'}", load_if_exists=True,
                                direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    for earlier in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]):
        _check_folder(trial_run(grid, out, earlier.params))  # the base edited since: its scores are another config's
    for stale in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):  # killed mid-run
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(stale.params)  # asked again with the same values: its folder resumes
    result = SweepResult([])
    done = len(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]))
    for i in range(done, n_trials):
        trial = study.ask(space)
        run = trial_run(grid, out, trial.params)
        result.runs.append(run)
        head = f"[{i + 1}/{n_trials}] {run.name} {trial.params}"
        _check_folder(run)  # a folder left by a study whose optuna.db was removed
        if not run.finished:
            if run.started:
                run.config["train"]["resume"] = True
            printer(f"{head}: {'resuming' if run.started else 'training'} ...")
            code = train_in_subprocess(run, False)
            if code:
                printer(f"{head}: FAILED (exit code {code})")
        score = _score(run)
        if score is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            result.failed.append((run.name, "no validation metric"))
            continue
        study.tell(trial, score)
        result.trained.append(run.name)
        printer(f"{head}: valid {run.config['eval']['valid_metric']} = {score:.4f}")
    if done >= n_trials:
        printer(f"{done} trials finished earlier; nothing to train (raise --optuna to add trials)")
    best = study.best_trial if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) else None
    if best is not None:
        printer(f"best: {best.params} valid = {best.value:.4f}")
    return result
