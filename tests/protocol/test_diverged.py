"""A diverged model stops the run with a clear error; no metrics are ever written for NaN scores."""
from __future__ import annotations

import pytest
import torch

from tests.conftest import small_overrides


@pytest.mark.parametrize("extra", [
    ["train.lr=1e6"],
    ["loss.name=inbatch_softmax", "loss.temperature=1e-45"],
])
def test_diverging_training_stops_with_one_line(tmp_path, capsys, extra):
    from cva_rec.cli.main import main

    run = tmp_path / "run"
    code = main(["train", "-c", "recipes/ml100k/sasrec_id.yaml", "--run-dir", str(run), *sum((["--set", o] for o in small_overrides(tmp_path, *extra)), [])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "diverged" in err[-1] and "step" in err[-1], err[-3:]
    assert not (run / "metrics.json").exists()


def test_evaluate_refuses_nan_scores(tmp_path, ml100k_data):
    from cva_rec.config.schema import dump_config, load_config
    from cva_rec.errors import DivergedError
    from cva_rec.training.evaluate import evaluate_run
    from cva_rec.training.run import build_module

    cfg = load_config(None, small_overrides(tmp_path))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    dump_config(cfg, run / "config.yaml")
    module = build_module(cfg, ml100k_data)
    with torch.no_grad():
        next(p for n, p in module.named_parameters() if "item_embedding" in n).fill_(float("nan"))
    torch.save({"state_dict": module.state_dict()}, run / "checkpoints" / "best.ckpt")
    with pytest.raises(DivergedError, match="non-finite scores in test"):
        evaluate_run(run, progress=False)
    assert not list(run.glob("eval_*.json"))
