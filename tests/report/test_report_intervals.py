"""`cva-rec report --intervals / --paired-with`: the "delta NDCG@10 [95% CI]" column from the runs' per-user files."""
import numpy as np
import pytest

from cva_rec.cli.main import main
from cva_rec.report import bootstrap
from tests.report.test_report import write_run

TOKENS = np.array([f"u{i}" for i in range(40)])


def _per_user(run, ranks):
    np.savez(run / "per_user_test.npz", user=np.arange(40), user_token=TOKENS, target=np.ones(40, dtype=np.int64),
             rank=np.asarray(ranks), n_candidates=np.full(40, 1000), cold=np.zeros(40, bool))


def test_interval_column_pairs_every_setting_with_the_id_one(tmp_path, capsys):
    root = tmp_path / "runs"
    rng = np.random.default_rng(1)
    ranks = {}
    for enc, shift in (("id", 0), ("pooling", 8), ("cva", 0)):
        for seed in (1, 2):
            r = rng.integers(0, 12, 40) + shift  # pooling ranks its targets lower for every user
            _per_user(write_run(root, f"{enc}-s{seed}", "SASRec", enc, seed, 0.05), r)
            ranks[(enc, seed)] = r
    assert main(["report", str(root), "--intervals", "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "delta NDCG@10 [95% CI]" in out and "reference" in out and "the interval includes 0" in out
    nd = lambda r: np.where(r < 10, 1 / np.log2(r + 2.0), 0.0)  # noqa: E731
    delta = (nd(ranks[("pooling", 1)]) + nd(ranks[("pooling", 2)])) / 2 - (nd(ranks[("id", 1)]) + nd(ranks[("id", 2)])) / 2
    delta = delta[np.argsort(TOKENS)]  # users in the order of their ids, as every run's rows are paired
    expected = bootstrap.interval_cell(bootstrap.paired_interval(delta, bootstrap.resample_indices(40)))
    pooling_line = next(line for line in out.splitlines() if "| pooling " in line.lower())
    assert expected in pooling_line and not expected.endswith("~0")  # clearly worse than ID
    # another reference by name: the ID row is then paired with pooling
    assert main(["report", str(root), "--paired-with", "Pooling", "--out", str(tmp_path / "rep2")]) == 0
    id_line = next(line for line in capsys.readouterr().out.splitlines() if "| id " in line.lower())
    assert bootstrap.interval_cell(bootstrap.paired_interval(-delta, bootstrap.resample_indices(40))) in id_line


def test_a_missing_reference_is_one_line(tmp_path, capsys):
    root = tmp_path / "runs"
    write_run(root, "id-s1", "SASRec", "id", 1, 0.05)  # no per-user file
    assert main(["report", str(root), "--intervals", "--out", str(tmp_path / "rep")]) == 2
    assert "per_user_test.npz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(root), "--paired-with"])
