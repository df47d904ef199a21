"""`cva-rec evaluate` writes into a run folder only holding its lock, and records what it read by content."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.robustness.conftest import write_tiny
from tests.robustness.test_checkpoint_identity import settings


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from cva_rec.cli.main import main

    root = tmp_path_factory.mktemp("evaluate_lock")
    data = write_tiny(root / "data")
    assert main(["train", "--no-progress", *settings(data, root / "out")]) == 0
    return root / "out" / "run"


def _evaluate(capsys, *args):
    from cva_rec.cli.main import main

    capsys.readouterr()
    code = main(["evaluate", *args, "--no-progress"])
    return code, capsys.readouterr().err.strip()


def file_fingerprint(path, name):
    """The fingerprint of one file, computed here from its bytes: sha256 of "name, size, sha256 of the bytes"."""
    data = path.read_bytes()
    return hashlib.sha256(f"{name}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n".encode()).hexdigest()


def test_evaluate_is_refused_while_a_training_run_or_another_evaluation_writes_the_folder(trained_run, tmp_path, capsys):
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.run_folder import claim_run_folder, results_lock

    cfg = load_config(trained_run / "config.yaml")
    before = sorted(p.name for p in trained_run.iterdir())
    # a training run continuing this folder holds it as every training run does; then another evaluation
    for holder in (lambda: claim_run_folder(trained_run, cfg, resume=True), lambda: results_lock(trained_run, cfg, "elsewhere")):
        with holder():
            code, err = _evaluate(capsys, str(trained_run))
            assert code == 2 and "\n" not in err, err
            assert err.startswith(f"cva-rec evaluate: error: run folder {trained_run} is in use by pid {os.getpid()} on ")
            assert err.endswith("wait for it to finish or choose another folder for the results with --out DIR")
            assert sorted(p.name for p in trained_run.iterdir()) == before  # no eval/, no eval_*.json
            # the way out it names works while the folder is held
            assert _evaluate(capsys, str(trained_run), "--out", str(tmp_path / "elsewhere"))[0] == 0
            assert (tmp_path / "elsewhere" / "eval_test_best.json").is_file()
    assert _evaluate(capsys, str(trained_run))[0] == 0  # released: the folder takes its results
    assert (trained_run / "eval_test_best.json").is_file()
    with claim_run_folder(trained_run, cfg, resume=True):  # and evaluate let the lock go when it finished
        pass


def test_evaluate_records_the_config_identity_and_the_checkpoint_by_content(trained_run, tmp_path, capsys):
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.run_folder import config_id

    assert _evaluate(capsys, str(trained_run), "--out", str(tmp_path / "a"), "--set", "eval.topk=[5,10]")[0] == 0
    result = json.loads((tmp_path / "a" / "eval_test_best.json").read_text())
    record = result["provenance"]
    trained = json.loads((trained_run / "metrics.json").read_text())
    assert record["run_config_id"] == trained["config_id"]  # the run the numbers come from, as its metrics.json names it
    assert record["overrides"] == ["eval.topk=[5,10]"] and "hr@5" in result
    assert record["config_id"] == config_id(load_config(trained_run / "config.yaml", ["eval.topk=[5,10]"])) != trained["config_id"]
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    assert record["artifacts"] == {"checkpoint": {"path": str(ckpt), "sha256": file_fingerprint(ckpt, "best.ckpt"),
                                                  "bytes": ckpt.stat().st_size, "files": 1}}
