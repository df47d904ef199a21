"""Runs are named by their variant (``CVA(M=4)-SASRec``), not by the config fragments that differ."""
import json

import yaml

from cva_rec.report.collect import group_runs, scan_runs
from cva_rec.report.labels import distinct_labels, encoder_display, variant_label
from cva_rec.report.plots import _group_labels


def test_encoder_names_as_the_papers_write_them():
    assert variant_label("cva", {}, "SASRec") == "CVA(M=4)-SASRec"
    assert variant_label("cva", {"depth": 2, "repeats": 4, "attend": "frames"}, "GRU4Rec") == "CVA(M=2, R=4, frames)-GRU4Rec"
    assert variant_label("id", {}, "NextItNet") == "ID-NextItNet"
    assert encoder_display("perceiver_io", {"ablation": "no_cross"}) == "Perceiver IO(no_cross)"
    assert encoder_display("lucid", {"tokens": ["id", "slice", "room"], "codes_path": "c.npz"}) == "LUCID(id+slice+room)"
    assert encoder_display("id_content", {"content_encoder": {"name": "cva", "depth": 4}}) == "ID+content(CVA(M=4))"


def test_settings_only_where_two_variants_read_the_same():
    assert distinct_labels(["ID-SASRec", "ID-SASRec", "CVA(M=4)-SASRec"],
                           [{"train.lr": 0.1}, {"train.lr": 0.2}, {"train.lr": 0.1}]) == [
        "ID-SASRec [lr=0.1]", "ID-SASRec [lr=0.2]", "CVA(M=4)-SASRec"]


def test_report_legends_name_variants_not_content_settings(tmp_path):
    # the ID run has no content store, the CVA run has one: the legend used to read "id [content.store=null]"
    for name, enc, store in (("id-s1", {"name": "id"}, None), ("cva-s1", {"name": "cva", "depth": 4}, "store/")):
        run = tmp_path / name
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"run": name, "model": "SASRec", "item_encoder": enc["name"], "seed": 1,
                                                      "test": {"ndcg@10": 0.1}}))
        (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "SASRec"}, "item_encoder": enc,
                                                         "content": {"store": store}, "train": {"seed": 1}}))
    groups = group_runs(scan_runs(tmp_path))
    assert any(g.settings for g in groups)  # content.store differs between the groups ...
    assert sorted(_group_labels(groups).values()) == ["CVA(M=4)-SASRec", "ID-SASRec"]  # ... and is not in the names
