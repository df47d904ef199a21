"""`cva-rec demo` (the README's main job), on a CPU budget: one ID variant and one LUCID variant."""
from __future__ import annotations

import json
import shutil

from cva_rec.cli.main import main


def test_demo_runs_id_and_lucid_and_writes_report(tmp_path, ml100k_text_store, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "demo"
    shutil.copytree(ml100k_text_store, out / "stores" / "ml-100k-text")  # the demo builds it when absent
    args = ["demo", "--epochs", "1", "--out", str(out), "--no-progress", "--only", "ID-GRU4Rec", "LUCID-room-SASRec",
            "--set", "train.limit_train_batches=3"]  # a CPU budget for CI; the real demo trains whole epochs
    assert main(args) == 0
    lucid = json.loads((out / "LUCID-room-SASRec" / "metrics.json").read_text())
    assert lucid["item_encoder"] == "lucid" and lucid["test"]["n_users"] == 943
    # the recommended codes: aligned, every movie its own code, levels added
    codes = out / "stores" / "ml-100k-codes-aligned-distinct"
    assert (codes / "codes.npz").is_file() and (codes / "alignment.pt").is_file()
    assert json.loads((codes / "metrics.json").read_text())["room"]["collision_rate"] == 0.0
    import yaml

    cfg = yaml.safe_load((out / "LUCID-room-SASRec" / "config.yaml").read_text())
    assert cfg["item_encoder"]["compose"] == "sum" and cfg["train"]["early_stopping_patience"] > 0
    table = (out / "results.md").read_text()
    assert "ID-GRU4Rec" in table and "LUCID-room-SASRec" in table
    assert "Convergence:" in table and "docs/results.md" in table
    assert (out / "report" / "results.md").is_file() and (out / "report" / "accuracy_vs_time.png").is_file()
    # a second call reuses the finished variants instead of training them again
    before = (out / "ID-GRU4Rec" / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "ID-GRU4Rec" / "metrics.json").stat().st_mtime_ns == before
    # other settings are another experiment: that variant is trained again, not reused
    other = ["demo", "--epochs", "1", "--out", str(out), "--no-progress", "--only", "ID-GRU4Rec", "--set", "train.limit_train_batches=2"]
    assert main(other) == 0
    assert (out / "ID-GRU4Rec" / "metrics.json").stat().st_mtime_ns != before


def test_every_demo_variant_trains_on_the_all_positions_objective(tmp_path, ml100k_text_store, ml100k_codes):
    """Each demo variant, at the demo's settings, is a model the all-positions loss accepts (one token per item,
    a state per position) and gives a finite loss on a few users' windows."""
    import torch

    from cva_rec.cli.demo import DEMO_RUNS, DEMO_SETTINGS
    from cva_rec.config.schema import load_config
    from cva_rec.data.dataset import build_data
    from cva_rec.training.build import build_module
    from cva_rec.training.content import load_content

    for label, overrides in DEMO_RUNS:
        content = [f"item_encoder.codes_path={ml100k_codes}"] if "item_encoder.name=lucid" in overrides else (
            [] if "item_encoder.name=id" in overrides else [f"content.store={ml100k_text_store}"])
        cfg = load_config(None, [*DEMO_SETTINGS, "dataset.max_seq_length=10", f"output.dir={tmp_path}", *overrides, *content])
        assert cfg["loss"]["name"] == "microlens_inbatch", label
        data = build_data(cfg)  # RecBole's config carries the backbone's own options
        module = build_module(cfg, data, load_content(cfg, data))
        windows = torch.from_numpy(data.sequences.training_windows(10)[:4])
        assert torch.isfinite(module.loss(module.model, windows)), label
