"""docs/results.md is rendered from docs/results/*.json: the page and the JSON files agree.

The page is rendered again here and compared byte for byte, so a figure edited on the page alone,
or a JSON file changed without re-rendering, fails. Each figure names a protocol version that exists
in CHANGELOG.md, and the files it points to exist.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cva_rec.cli.main import main
from cva_rec.errors import DataError
from cva_rec.report.results_page import derive_scale, load_figures, render_page

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "results"


def test_page_equals_its_rendering_from_the_json_files():
    page = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    assert page == render_page(RESULTS, "results/"), (
        "docs/results.md is out of date: cva-rec report --bench docs/results --out docs/results.md")


def test_every_figure_has_its_provenance_and_a_known_protocol():
    versions = set(re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(encoding="utf-8"), flags=re.M))
    figures = load_figures(RESULTS)
    assert len(figures) >= 20
    for fig in figures:
        assert fig.spec["protocol"] in versions, (fig.name, fig.spec["protocol"])
        for name in [fig.spec.get("from"), *fig.spec.get("images", []), (fig.spec.get("plot") or {}).get("file")]:
            if name:
                assert (RESULTS / name).is_file(), (fig.name, name)


def test_scale_table_is_read_from_the_benchmark_output():
    raw = json.loads((RESULTS / "scale_bench.json").read_text())
    columns, rows = derive_scale(raw)
    recbole_10m = raw["sizes"]["10M"]["recbole"]["first"]
    row = next(r for r in rows if r[1] == "RecBole, 1st run" and r[0].startswith("10M"))
    assert row[columns.index("peak RSS MB (anon, sampled)")].startswith(f"{recbole_10m['peak_rss_mb']:,.0f} ")
    assert not any(r[1] == "RecBole, 2nd run" and r[0].startswith("10M") for r in rows)  # a copy, not a run


def test_cli_renders_the_same_page_and_the_plot(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for name in ("idfree_7epochs.json", "fidelity_timing.json"):
        (folder / name).write_text((RESULTS / name).read_text())
    assert main(["report", "--bench", str(folder), "--out", str(tmp_path / "page.md")]) == 0
    assert (tmp_path / "page.md").read_text() == render_page(folder, "results/")
    assert (folder / "idfree_warm_cold.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("command"), "missing command"),
    (lambda s: s.update(date="23 Nov"), "date must be YYYY-MM-DD"),
    (lambda s: s["rows"].append(["only one cell"]), "cells for"),
])
def test_a_malformed_figure_is_one_line_naming_the_file(tmp_path, change, message):
    spec = json.loads((RESULTS / "fidelity_timing.json").read_text())
    change(spec)
    (tmp_path / "bad.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=message) as err:
        load_figures(tmp_path)
    assert "bad.json" in str(err.value) and "\n" not in str(err.value)


def test_eval_table_is_read_from_the_benchmark_output():
    from cva_rec.report.results_page import derive_eval

    raw = json.loads((RESULTS / "eval_bench.json").read_text())
    columns, rows = derive_eval(raw)
    ranking = raw["shapes"][0]["views"]["ranking"]
    row = next(r for r in rows if r[1] == "ranking")
    assert row[columns.index("ratio wall (CPU)")] == f"{ranking['ratio_wall']:.2f}x ({ranking['ratio_cpu']:.2f}x)"


def test_compare_table_is_the_benchmarks_own(tmp_path):
    """A figure file pointing at ``bench compare``'s compare.json renders the table the benchmark prints."""
    from cva_rec.benchmarks.bench_compare import METRICS, PARTS, markdown

    def stats(mean, std):
        return {"mean": mean, "std": std, "per_seed": []}

    rows = [{"variant": v, "label": label, "runs": ["a", "b"], "epochs_trained": [12, 9], "best_epoch": [7, 4],
             "seconds_per_epoch": stats(31.5, 1.0),
             "metrics": {p: {m: stats(base + i / 100, 0.002) for i, m in enumerate(METRICS)} for p in PARTS},
             **({"delta_vs_reference": {"all ndcg@10": {"delta": -0.01, "low": -0.02, "high": 0.001, "includes_zero": True,
                                                        "n_users": 6040}}} if v != "id" else {})}
            for v, label, base in (("id", "ID-SASRec", 0.12), ("idfree_sum", "ID-free: LUCID(room, compose=sum)-SASRec", 0.10))]
    (tmp_path / "compare.json").write_text(json.dumps({"rows": rows, "reference": "id"}))
    (tmp_path / "compare_idfree.json").write_text(json.dumps({
        "title": "t", "order": 1, "about": "a", "command": "cva-rec bench compare -- --table idfree", "machine": "m",
        "date": "2026-12-07", "protocol": "0.2.0", "derive": "compare", "from": "compare.json"}))
    page = render_page(tmp_path, "results/")
    assert markdown(rows, "id") in page  # the benchmark's own table, cell for cell
    assert "-0.0100 [-0.0200, +0.0010] ~0" in page
