"""Sweeps: grid expansion and naming, skip-finished / resume, bad keys fail before training,
and one real tiny training run on ml-100k that a second sweep skips."""
import json

import pytest
import yaml

from cva_rec.cli.main import main
from cva_rec.errors import ConfigError
from cva_rec.jobs.sweep import expand, load_grid, run_names, run_sweep

TINY = {"dataset.max_seq_length": 5, "train.epochs": 1, "train.batch_size": 1024,
        "train.limit_train_batches": 3, "train.early_stopping_patience": 0, "eval.popularity_buckets": 5}


def write_grid(tmp_path, **spec):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_grid_expansion_and_names(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {name: SASRec}\ntrain: {epochs: 7}\n")
    grid = load_grid(write_grid(
        tmp_path, base="base.yaml", fixed={"train.lr": 0.01},
        variants={"id": {"item_encoder.name": "id"}, "pool": ["item_encoder.name=pooling"]},
        grid={"model.name": ["SASRec", "GRU4Rec", "NextItNet"], "train.seed": [1, 2]},
    ))
    runs = expand(grid, tmp_path / "out")
    assert len(runs) == 2 * 3 * 2
    assert [r.name for r in runs[:3]] == ["id-SASRec-s1", "id-SASRec-s2", "id-GRU4Rec-s1"]
    assert runs[-1].name == "pool-NextItNet-s2"
    r = runs[-1]
    assert r.config["model"]["name"] == "NextItNet" and r.config["item_encoder"]["name"] == "pooling"
    assert r.config["train"]["seed"] == 2 and r.config["train"]["lr"] == 0.01 and r.config["train"]["epochs"] == 7
    assert r.config["output"]["name"] == r.name and r.run_dir == tmp_path / "out" / r.name
    assert [x.name for x in expand(grid, tmp_path / "out")] == [x.name for x in runs]  # deterministic
    # default folder: the grid's own `out:` else runs/<grid file stem>
    assert expand(grid)[0].run_dir.parent.name == "grid"


def test_names_fall_back_to_full_keys_when_short_ones_collide():
    points = [(None, [("model.hidden_size", 32), ("item_encoder.hidden_size", 64)]),
              (None, [("model.hidden_size", 64), ("item_encoder.hidden_size", 32)])]
    assert run_names(points) == ["model.hidden_size32-item_encoder.hidden_size64", "model.hidden_size64-item_encoder.hidden_size32"]
    with pytest.raises(ConfigError, match="same name"):
        run_names([(None, [("train.lr", 0.1)]), (None, [("train.lr", 0.1)])])


@pytest.mark.parametrize("spec, message", [
    ({"grid": {"train.epoch": [1, 2]}}, "unknown config key train.epoch"),
    ({"grid": {"model.name": ["SASRec", "Transformer"]}}, "run Transformer: unknown model"),
    ({"grid": {"model.name": []}}, "non-empty list"),
    ({"grid": {"seed": [1]}}, "must look like section.key"),
    ({"base": "missing.yaml"}, "base recipe not found"),
    ({"grids": {}}, "unknown grid key"),
    ({"variants": {"x": ["item_encoder.name=cva", "item_encoder.depht=2"]}}, "has no option 'depht'"),
])
def test_bad_grid_fails_before_training(tmp_path, monkeypatch, spec, message):
    calls = []
    monkeypatch.setattr("cva_rec.jobs.sweep.train_in_subprocess", lambda run, progress: calls.append(run) or 0)
    with pytest.raises(ConfigError, match=message):
        run_sweep(load_grid(write_grid(tmp_path, **spec)), tmp_path / "out")
    assert not calls and not (tmp_path / "out").exists()


def test_skip_finished_and_resume_started(tmp_path, monkeypatch):
    calls = []

    def fake_train(run, progress):
        calls.append((run.name, run.config["train"]["resume"]))
        run.run_dir.mkdir(parents=True, exist_ok=True)
        (run.run_dir / "metrics.json").write_text(json.dumps({"test": {"hr@10": 0.5}}))
        return 0

    monkeypatch.setattr("cva_rec.jobs.sweep.train_in_subprocess", fake_train)
    grid = load_grid(write_grid(tmp_path, grid={"model.name": ["SASRec", "GRU4Rec", "NextItNet"]}))
    out = tmp_path / "out"
    (out / "SASRec").mkdir(parents=True)
    (out / "SASRec" / "metrics.json").write_text("{}")  # finished earlier
    (out / "GRU4Rec" / "checkpoints").mkdir(parents=True)  # killed mid-run
    lines = []
    result = run_sweep(grid, out, printer=lines.append)
    assert calls == [("GRU4Rec", True), ("NextItNet", False)]
    assert result.skipped == ["SASRec"] and result.trained == ["GRU4Rec", "NextItNet"]
    assert lines[0] == "[1/3] SASRec: finished earlier, skipped" and lines[2].startswith("[2/3] GRU4Rec: done in")
    calls.clear()
    assert run_sweep(grid, out, printer=lines.append).skipped == ["SASRec", "GRU4Rec", "NextItNet"] and not calls


def test_failed_run_does_not_stop_the_sweep(tmp_path, monkeypatch):
    monkeypatch.setattr("cva_rec.jobs.sweep.train_in_subprocess", lambda run, progress: 1)
    result = run_sweep(load_grid(write_grid(tmp_path, grid={"train.seed": [1, 2]})), tmp_path / "out", printer=lambda s: None)
    assert [name for name, _ in result.failed] == ["s1", "s2"] and "exit code 1" in result.failed[0][1]


def test_real_tiny_sweep_then_skipped(tmp_path, capsys):
    """SASRec + id on ml-100k, trained in a child process; the second sweep trains nothing."""
    grid = write_grid(tmp_path, base={"model": {"name": "SASRec"}, "item_encoder": {"name": "id"}}, fixed=TINY,
                      grid={"model.name": ["SASRec"], "train.seed": [3]})
    out = tmp_path / "runs"
    assert main(["sweep", str(grid), "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert "[1/1] SASRec-s3: training ..." in first and "sweep: 1 trained, 0 skipped" in first
    metrics_path = out / "SASRec-s3" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert metrics["model"] == "SASRec" and metrics["seed"] == 3 and metrics["test"]["n_users"] == 943
    assert 0.0 <= metrics["test"]["ndcg@10"] <= metrics["test"]["hr@10"] <= 1.0
    stamp = metrics_path.stat().st_mtime_ns
    report = (out / "report" / "results.md").read_text()
    assert "| SASRec" in report and f"{metrics['test']['hr@10'] * 100:.3f}" in report
    assert (out / "report" / "accuracy_vs_memory.png").stat().st_size > 10_000

    assert main(["sweep", str(grid), "--out", str(out), "--no-report"]) == 0
    second = capsys.readouterr().out
    assert "[1/1] SASRec-s3: finished earlier, skipped" in second and "0 trained, 1 skipped" in second
    assert metrics_path.stat().st_mtime_ns == stamp
    assert main(["sweep", str(grid), "--out", str(out), "--dry-run"]) == 0
    assert "SASRec-s3 (finished)" in capsys.readouterr().out

    # the grid edited since (same folder names): the finished run is another config's, not skipped as this one's
    for fixed, diff in (({**TINY, "train.limit_train_batches": 4}, "train.limit_train_batches 3 -> 4"),
                        ({**TINY, "train.epochs": 2}, "train.epochs 1 -> 2")):
        edited = write_grid(tmp_path, base={"model": {"name": "SASRec"}, "item_encoder": {"name": "id"}}, fixed=fixed,
                            grid={"model.name": ["SASRec"], "train.seed": [3]})
        assert main(["sweep", str(edited), "--out", str(out), "--no-report"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "run folder SASRec-s3 holds a run of another config" in err[0] and diff in err[0], err
        assert metrics_path.stat().st_mtime_ns == stamp  # nothing trained, nothing lost
        assert main(["sweep", str(edited), "--out", str(out), "--dry-run"]) == 0
        assert f"SASRec-s3 (finished, but holds another config: {diff})" in capsys.readouterr().out


def test_a_finished_run_that_read_other_codes_under_the_same_path_stops_the_sweep(tmp_path, monkeypatch):
    """Folder names come from the grid point, so re-written codes under the same path find the same folders:
    their finished runs read other bytes and must not be skipped as this grid's."""
    from cva_rec.config.schema import dump_config
    from cva_rec.errors import RunFolderError
    from cva_rec.jobs.provenance import ARTIFACTS_FILE, config_artifacts, fingerprint_artifacts

    monkeypatch.setattr("cva_rec.jobs.sweep.train_in_subprocess", lambda run, progress: pytest.fail("trained"))
    codes = tmp_path / "codes.npz"
    codes.write_bytes(b"codes, first tokenization")
    grid = load_grid(write_grid(tmp_path, fixed={"item_encoder.name": "semantic_id", "item_encoder.codes_path": str(codes)},
                                grid={"train.seed": [1]}))
    out = tmp_path / "out"
    (run,) = expand(grid, out)
    run.run_dir.mkdir(parents=True)
    dump_config(run.config, run.run_dir / "config.yaml")
    (run.run_dir / ARTIFACTS_FILE).write_text(json.dumps(fingerprint_artifacts(config_artifacts(run.config))))
    (run.run_dir / "metrics.json").write_text(json.dumps({"test": {"hr@10": 0.5}}))
    assert run_sweep(grid, out, printer=lambda line: None).skipped == [run.name]  # the same bytes: finished
    codes.write_bytes(b"codes, second tokenization")
    with pytest.raises(RunFolderError, match=r"holds a run of another config than the grid gives it \(input files "
                                             r"changed: item_encoder.codes_path sha256 [0-9a-f]{12} -> sha256 [0-9a-f]{12}\)"):
        run_sweep(grid, out, printer=lambda line: None)
