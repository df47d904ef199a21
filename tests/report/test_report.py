"""Report from run directories: table values, mean ± std over seeds, CSV parse-back, plots.

The input is the metrics.json / config.yaml / stages.json file format, so synthetic run
folders written here are the real input (training is exercised in tests/report/test_sweep.py).
"""
import csv
import io
import json
import statistics

import pytest
import yaml

from cva_rec.cli.main import main
from cva_rec.errors import DataError
from cva_rec.report.build import build_report
from cva_rec.report.collect import group_runs, scan_runs


def write_run(root, name, model, encoder, seed, ndcg10, enc_opts=None, lr=0.001, seconds=100.0, mem=2**30, stages=None):
    run = root / name
    run.mkdir(parents=True)
    levels = {str(lv): {"n_users": 10, "hr@10": lv / 20, "ndcg@10": ndcg10 * lv / 5, "hr@20": lv / 15, "ndcg@20": 0.1} for lv in range(1, 6)}
    metrics = {
        "run": name, "model": model, "item_encoder": encoder, "loss": "full_softmax", "dataset": "ml-100k", "seed": seed,
        "valid": {"ndcg@10": ndcg10},
        "test": {"n_users": 50, "hr@10": 2 * ndcg10, "ndcg@10": ndcg10, "hr@20": 3 * ndcg10, "ndcg@20": 1.2 * ndcg10,
                 "popularity_levels": levels, "inductive": {"n_users": 0, "hr@10": None}},
        "epochs_trained": 2, "seconds_per_epoch": seconds / 2, "total_seconds": seconds + 5, "fit_seconds": seconds,
        "peak_memory_bytes": mem, "peak_memory_kind": "process_peak_rss", "parameters": 211008, "encoder_parameters": 107712,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    cfg = {"model": {"name": model}, "item_encoder": {"name": encoder, **(enc_opts or {})}, "loss": {"name": "full_softmax"},
           "train": {"seed": seed, "lr": lr, "resume": seed == 2}, "output": {"dir": str(root), "name": name}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    if stages is not None:
        (run / "stages.json").write_text(json.dumps(stages))
    return run


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    for i, (model, base) in enumerate([("SASRec", 0.06), ("GRU4Rec", 0.05), ("NextItNet", 0.04)]):
        for seed, delta in zip((1, 2, 3), (-0.002, 0.0, 0.004)):
            write_run(root, f"{model}-id-s{seed}", model, "id", seed, base + delta, seconds=100 + 10 * i + seed, mem=(1 + i) * 2**30)
        write_run(root, f"{model}-cva-s1", model, "cva", 1, base + 0.01, enc_opts={"num_latents": 8}, seconds=300 + i,
                  stages=[{"stage": "ids", "test": {"hr@10": 0.1, "ndcg@10": 0.05}}, {"stage": "fusion", "test": {"hr@10": 0.12, "ndcg@10": 0.06}}]
                  if model == "SASRec" else None)
    (root / "broken").mkdir()
    (root / "broken" / "metrics.json").write_text("{not json")
    return root


def test_groups_and_table_values(runs, tmp_path):
    records = scan_runs(runs)
    assert len(records) == 12  # the broken folder is skipped, not fatal
    groups = group_runs(records)
    assert [(g.first.backbone, g.first.encoder_label, len(g.records)) for g in groups][:2] == [
        ("SASRec", "id", 3), ("SASRec", "cva(num_latents=8)", 1)]  # seed and train.resume do not split groups
    rep = build_report(runs, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    sasrec_id = [0.058, 0.06, 0.064]
    mean, std = statistics.fmean(sasrec_id) * 100, statistics.stdev(sasrec_id) * 100
    assert f"| SASRec" in md and f"{mean:.3f} ± {std:.3f}" in md
    cva_line = next(line for line in md.splitlines() if "GRU4Rec" in line and "CVA(M=4" in line)
    assert "6.000" in cva_line and "±" not in cva_line.split("|")[4]  # one seed: no std shown
    assert "211,008" in md and "Settings" not in md  # nothing but seed differs within backbone/encoder

    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "results.csv").read_text())))
    assert len(rows) == 6
    row = next(r for r in rows if r["backbone"] == "SASRec" and r["encoder"] == "id")
    assert float(row["ndcg@10_mean"]) == pytest.approx(statistics.fmean(sasrec_id))
    assert float(row["ndcg@10_std"]) == pytest.approx(statistics.stdev(sasrec_id))
    assert float(row["hr@20_mean"]) == pytest.approx(3 * statistics.fmean(sasrec_id))
    assert row["n_seeds"] == "3" and row["seeds"] == "1 2 3"
    assert float(row["peak_memory_gib_mean"]) == pytest.approx(1.0) and float(row["train_seconds_mean"]) == pytest.approx(102)
    cva = next(r for r in rows if r["backbone"] == "SASRec" and r["encoder"] != "id")
    assert cva["ndcg@10_std"] == "" and int(float(cva["parameters_mean"])) == 211008
    per_run = list(csv.DictReader(io.StringIO((tmp_path / "out" / "runs.csv").read_text())))
    assert len(per_run) == 12

    for name in ("accuracy_vs_time.png", "accuracy_vs_memory.png", "popularity_levels.png", "warmup_stages.png"):
        png = rep.files[name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 15_000, name
        assert f"]({name})" in md
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_differing_settings_get_their_own_column(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "a", "SASRec", "id", 1, 0.05, lr=0.001)
    write_run(root, "b", "SASRec", "id", 1, 0.07, lr=0.01)
    rep = build_report(root)
    assert len(rep.groups) == 2 and rep.out_dir == root / "report"
    md = (root / "report" / "results.md").read_text()
    assert "train.lr=0.01" in md and "train.lr=0.001" in md
    assert "warmup_stages.png" not in rep.files  # no stages.json anywhere
    # a second report over the same folder does not pick up its own output as runs
    assert len(build_report(root).records) == 2


def test_no_runs_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DataError, match="no finished runs"):
        scan_runs(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "runs folder not found" in capsys.readouterr().err


def test_cli_report(runs, tmp_path, capsys):
    assert main(["report", str(runs), "--out", str(tmp_path / "r"), "--title", "ml-100k grid"]) == 0
    out = capsys.readouterr().out
    assert "12 runs, 6 settings" in out and "results.md" in out
    assert (tmp_path / "r" / "results.md").read_text().startswith("# ml-100k grid (ml-100k)")


def test_report_shows_the_input_artifacts_by_short_hash(tmp_path):
    root = tmp_path / "runs"
    store = {"path": "stores/a", "sha256": "ab" * 32, "bytes": 3 * 2**20, "files": 5}
    for seed, codes_hash in ((1, "c1" * 32), (2, "c1" * 32), (3, "d2" * 32)):
        run = write_run(root, f"cva-s{seed}", "SASRec", "cva", seed, 0.05)
        metrics = json.loads((run / "metrics.json").read_text())
        metrics["artifacts"] = {"content.store": store,
                                "item_encoder.codes_path": {"path": "codes.npz", "sha256": codes_hash, "bytes": 10, "files": 1}}
        (run / "metrics.json").write_text(json.dumps(metrics))
    write_run(root, "id-s1", "SASRec", "id", 1, 0.04)  # a run from before artifacts were recorded
    rep = build_report(root, tmp_path / "out")
    md = (tmp_path / "out" / "results.md").read_text()
    section = md.split("## Input artifacts", 1)[1]
    assert "| content.store " in section and "abababababab " in section and "3.0 MiB" in section
    assert "cva-s1 cva-s2 cva-s3" in section  # one line: every seed read the same store
    # the third seed read other codes: one line per content, marked
    assert "c1c1c1c1c1c1 (differs between seeds)" in section and "d2d2d2d2d2d2 (differs between seeds)" in section
    per_run = {r["run"]: r for r in csv.DictReader(io.StringIO((tmp_path / "out" / "runs.csv").read_text()))}
    assert per_run["cva-s3"]["artifacts"] == f"content.store={'ab' * 32} item_encoder.codes_path={'d2' * 32}"
    assert per_run["id-s1"]["artifacts"] == ""
    assert len(rep.records) == 4
