"""``cva-rec bench idfree``'s table from finished run folders: means, stds and ratios by hand."""
from __future__ import annotations

import json

from cva_rec.benchmarks.bench_idfree import table


def _run(folder, all_ndcg, cold_hr20, wall=None):
    folder.mkdir(parents=True)
    test = {"ndcg@10": all_ndcg, "hr@10": 0.2, "hr@20": 0.3,
            "warm": {"n_users": 90, "ndcg@10": 0.1, "hr@10": 0.2, "hr@20": 0.3},
            "cold": {"n_users": 10, "ndcg@10": 0.0, "hr@10": 0.0, "hr@20": cold_hr20}}
    (folder / "metrics.json").write_text(json.dumps({"test": test}))
    if wall is not None:
        (folder / "bench_wall.json").write_text(json.dumps({"wall_s": wall}))


def test_table_by_hand(tmp_path):
    _run(tmp_path / "id-s1", 0.10, 0.0, wall=60)
    _run(tmp_path / "id-s2", 0.12, 0.0, wall=120)
    _run(tmp_path / "idfree-s1", 0.09, 0.05)
    _run(tmp_path / "idfree-s2", 0.09, 0.15)
    (tmp_path / "idfree-s1" / "eval-zero").mkdir()
    (tmp_path / "idfree-s1" / "eval-zero" / "eval_test_best.json").write_text(
        json.dumps({"ndcg@10": 0.055, "cold": {"n_users": 10, "hr@20": 0.2}}))
    lines = table(tmp_path, ["idfree", "id"], [1, 2]).splitlines()
    idfree, zero, id_row = (line.split(" | ") for line in lines[2:5])
    assert idfree[1] == "2" and idfree[2] == "0.0900 +- 0.0000"
    assert idfree[-4] == "0.82x" and idfree[-3] == "inf"  # 0.09 / 0.11; cold hr@20 0.10 / 0.0
    assert idfree[-1].startswith("10")
    assert zero[1] == "1" and zero[2] == "0.0550" and zero[-3] == "inf" and zero[-2] == "-"
    assert id_row[2] == "0.1100 +- 0.0141" and id_row[-4] == "1.00x" and id_row[-3] == "0/0" and id_row[-2] == "1.5"
    assert len(lines) == 5  # the rows-all rule has no folder: no row
