"""cva-rec sweep --optuna N: trials are run folders, the study resumes, finished trials are not re-trained."""
import json

import pytest

from cva_rec.cli.main import main
from cva_rec.errors import ConfigError
from tests.report.test_sweep import TINY, write_grid

pytest.importorskip("optuna", reason="optuna is not installed (pip install -e .[search])")


def test_search_trains_trials_into_run_folders_and_resumes_the_study(tmp_path, capsys):
    grid = write_grid(tmp_path, base={"model": {"name": "SASRec"}, "item_encoder": {"name": "id"}},
                      fixed={**TINY, "dataset.engine": "streaming"},
                      search={"train.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}, "model.hidden_size": [16, 32]})
    out = tmp_path / "search"
    args = ["sweep", str(grid), "--out", str(out), "--no-report", "--optuna"]
    assert main([*args, "2"]) == 0
    first = capsys.readouterr().out
    assert "search: 2 trials scored, 0 failed" in first and "best:" in first
    folders = sorted(out.glob("trial-*/metrics.json"))
    assert len(folders) == 2
    for path in folders:
        cfg = json.loads(path.read_text())
        assert cfg["valid"]["ndcg@10"] >= 0
    assert main([*args, "2"]) == 0  # the study is resumed: nothing left to train
    assert "nothing to train" in capsys.readouterr().out
    assert len(list(out.glob("trial-*/metrics.json"))) == 2


def test_search_space_errors_are_one_line(tmp_path):
    from cva_rec.jobs.optuna_search import run_search
    from cva_rec.jobs.sweep import load_grid

    with pytest.raises(ConfigError, match="low, high"):
        run_search(load_grid(write_grid(tmp_path, search={"train.lr": {"min": 1}})), 1, tmp_path / "o")
    with pytest.raises(ConfigError, match="drop grid"):
        run_search(load_grid(write_grid(tmp_path, search={"train.lr": [0.1]}, grid={"train.seed": [1]})), 1, tmp_path / "o")


def test_a_trial_killed_mid_run_is_asked_again_with_its_values(tmp_path):
    import optuna

    from cva_rec.jobs.optuna_search import distributions, run_search, trial_run
    from cva_rec.jobs.sweep import load_grid

    grid = load_grid(write_grid(tmp_path, base={"model": {"name": "SASRec"}, "item_encoder": {"name": "id"}},
                                fixed={**TINY, "dataset.engine": "streaming"}, search={"model.hidden_size": [16, 32]}))
    out = tmp_path / "search"
    out.mkdir()
    study = optuna.create_study(study_name=grid.path.stem, storage=f"sqlite:///{out / 'optuna.db'}", direction="maximize")
    killed = study.ask(distributions(grid))  # a process asked, started its folder, and died
    trial_run(grid, out, killed.params).run_dir.mkdir()
    lines = []
    result = run_search(grid, 1, out, printer=lines.append)
    assert result.trained == [trial_run(grid, out, killed.params).name]
    assert "resuming" in lines[0]


def test_an_edited_base_does_not_reuse_the_studys_trials(tmp_path, capsys):
    """Trial folders are named by their params only: after the base recipe changes, the finished trials (and the
    study's scores of them) are another config's; one line, nothing trained, nothing lost."""
    spec = dict(base={"model": {"name": "SASRec"}, "item_encoder": {"name": "id"}}, search={"model.hidden_size": [16]})
    out = tmp_path / "search"
    args = ["sweep", str(tmp_path / "grid.yaml"), "--out", str(out), "--no-report", "--optuna", "1"]
    write_grid(tmp_path, fixed={**TINY, "dataset.engine": "streaming"}, **spec)
    assert main(args) == 0
    capsys.readouterr()
    (metrics,) = out.glob("trial-*/metrics.json")
    stamp = metrics.stat().st_mtime_ns
    write_grid(tmp_path, fixed={**TINY, "dataset.engine": "streaming", "train.lr": 0.01}, **spec)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a run of another config than this search gives it" in err[0], err
    assert "train.lr" in err[0] and metrics.stat().st_mtime_ns == stamp
