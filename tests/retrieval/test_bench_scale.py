"""`cva-rec bench retrieval`'s scale part on a tiny synthetic catalogue: both retrievers, interleaved ratios."""
import json


def test_scale_part_writes_interleaved_ratios(tmp_path, capsys):
    from cva_rec.benchmarks.bench_retrieval import main

    assert main(["--skip-ml1m", "--scale-items", "3000", "--scale-users", "1", "3", "--scale-beam", "8",
                 "--candidates", "20", "--repeats", "2", "--scale-shapes", "2x16", "--out", str(tmp_path)]) == 0
    (scale,) = json.loads((tmp_path / "results.json").read_text())["scale"]
    assert scale["items"] == 3000 and scale["trie_paths"] <= 3000 * 4
    assert {(r["retriever"], r["users"]) for r in scale["rows"]} == {(k, u) for k in ("reranker-context", "grdr") for u in (1, 3)}
    for row in scale["rows"]:
        assert len(row["ratios"]) == 2 and all(r > 0 for r in row["ratios"]) and len(row["cpu_ratios"]) == 2
        assert min(row["ratios"]) <= row["ratio"] <= max(row["ratios"])
        for kind, ratios in (("wall", row["ratios"]), ("cpu", row["cpu_ratios"])):
            q = row["quantiles"][kind]  # 2 pairs: p-th quantile = lower + p/100 x (upper - lower)
            lo, hi = sorted(ratios)
            for p in (50, 75, 90):
                assert abs(q[f"p{p}"] - (lo + p / 100 * (hi - lo))) < 1e-12
        assert row["mean_recalled"] == 20  # 3,000 items on 256 leaves: 8 beams fill the 20 candidates
    printed = capsys.readouterr().out
    assert "interleaved pairs" in printed and "CPU:" in printed and "p50 / p75 / p90" in printed
