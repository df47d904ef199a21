"""cva-rec sweep --launcher submitit: one job per unfinished run through submitit's local executor,
the local sweep's contract (finished runs skipped, a second sweep trains nothing)."""
import json

import pytest

from cva_rec.cli.main import main
from tests.report.test_sweep import TINY, write_grid

pytest.importorskip("submitit", reason="submitit is not installed (pip install -e .[cluster])")


def test_submitit_local_jobs_train_the_unfinished_runs_then_skip_them(tmp_path, capsys):
    grid = write_grid(tmp_path, base={"model": {"name": "SASRec"}, "item_encoder": {"name": "id"}},
                      fixed={**TINY, "dataset.engine": "streaming"}, grid={"train.seed": [1, 2]})
    out = tmp_path / "runs"
    (out / "s1").mkdir(parents=True)
    (out / "s1" / "metrics.json").write_text(json.dumps({"test": {}}))  # finished earlier
    args = ["sweep", str(grid), "--out", str(out), "--launcher", "submitit", "--cluster", "local", "--no-report"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "[1/2] s1: finished earlier, skipped" in first and "[2/2] s2: submitted as job" in first
    assert "sweep: 1 trained, 1 skipped" in first
    metrics = json.loads((out / "s2" / "metrics.json").read_text())
    assert metrics["seed"] == 2 and metrics["test"]["n_users"] == 943
    assert any((out / ".submitit").iterdir())  # the jobs' logs
    assert main(args) == 0
    assert "sweep: 0 trained, 2 skipped" in capsys.readouterr().out
