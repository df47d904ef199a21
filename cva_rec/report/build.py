"""``build_report(runs_dir)``: scan runs, write the Table-4-style Markdown + CSV and the plots.

Output folder (default ``<runs_dir>/report``): ``results.md`` (table + plots inline),
``results.csv`` (one row per setting, mean/std over seeds), ``runs.csv`` (one row per run),
``accuracy_vs_time.png``, ``accuracy_vs_memory.png``, ``popularity_levels.png`` and, when any run
has ``stages.json``, ``warmup_stages.png``; ``lucid.md`` when there are LUCID runs or warmup stages.
``results.md`` has a section of the input artifacts (store, codes, seed) each setting read, by
short content hash, when the runs recorded them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from cva_rec.io import atomic_write_text
from cva_rec.report import paper_table, plots
from cva_rec.report.collect import Group, RunRecord, group_runs, scan_runs


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    out_dir: Path
    records: List[RunRecord]
    groups: List[Group]
    files: Dict[str, Path] = field(default_factory=dict)  # name -> path
    markdown_table: str = ""


def build_report(runs_dir: str | os.PathLike, out_dir: Optional[str | os.PathLike] = None, title: Optional[str] = None,
                 paired_with: Optional[str] = None, intervals: bool = False) -> Report:
    """``intervals`` (or a ``paired_with`` reference): add the paired bootstrap column over users
    (:mod:`cva_rec.report.paired`)."""
    runs_dir = Path(runs_dir)
    out = Path(out_dir) if out_dir else runs_dir / "report"
    records = [r for r in scan_runs(runs_dir) if out not in r.run_dir.parents]
    groups = group_runs(records)
    rep = Report(out, records, groups)
    extra = {}
    if intervals or paired_with:
        from cva_rec.report.paired import COLUMN, paired_cells

        extra[COLUMN] = paired_cells(groups, paired_with)
    rep.markdown_table = paper_table.to_markdown(groups, extra)

    atomic_write_text(out / "results.csv", paper_table.to_csv(groups))
    atomic_write_text(out / "runs.csv", paper_table.runs_csv(records))
    rep.files["results.csv"] = out / "results.csv"
    rep.files["runs.csv"] = out / "runs.csv"

    mem_get, mem_label = plots.memory_axis(records)
    made = {
        "accuracy_vs_time.png": plots.accuracy_vs_cost(
            groups, lambda r: r.train_seconds, "training time (s, fit incl. per-epoch validation)",
            "Accuracy vs training time", out / "accuracy_vs_time.png"),
        "accuracy_vs_memory.png": plots.accuracy_vs_cost(
            groups, mem_get, mem_label, "Accuracy vs peak memory", out / "accuracy_vs_memory.png"),
        "popularity_levels.png": plots.popularity_levels(groups, out / "popularity_levels.png"),
        "warmup_stages.png": plots.warmup_stages(records, out / "warmup_stages.png"),
    }
    rep.files.update({k: v for k, v in made.items() if v is not None})

    datasets = sorted({str(r.metrics.get("dataset")) for r in records})
    lines = [
        f"# {title or 'Results'} ({', '.join(datasets)})", "",
        f"{len(records)} runs in {len(groups)} settings, from `{runs_dir}`. Test split, full ranking; "
        "metrics in percent; `mean ± std` over seeds where a setting has several (sample std). "
        "Time = seconds of training (fit, including per-epoch validation); Mem. = peak memory "
        f"({', '.join(sorted({str(r.metrics.get('peak_memory_kind', '?')) for r in records}))}); "
        "# Param. = trainable parameters of the whole model (# Enc. param.: the item encoder's).", "",
        rep.markdown_table, "",
        *([_interval_note(), ""] if extra else []),
        "Per-setting values with full precision: [results.csv](results.csv); one row per run: [runs.csv](runs.csv).", "",
    ]
    from cva_rec.report.artifacts_table import artifacts_markdown
    from cva_rec.report.lucid_table import lucid_markdown

    artifacts = artifacts_markdown(groups)
    if artifacts:
        lines += ["## Input artifacts", "", "The files each setting's runs read, by content (sha256 of their files, "
                  "first 12 hex digits; full hashes in runs.csv and each run's metrics.json).", "", artifacts, ""]

    lucid = lucid_markdown(records, runs_dir)
    if lucid:
        atomic_write_text(out / "lucid.md", "# LUCID runs and warmup stages\n\n" + lucid + "\n")
        rep.files["lucid.md"] = out / "lucid.md"
        lines += ["## LUCID runs and warmup stages", "", lucid, ""]
    captions = {
        "accuracy_vs_time.png": "Accuracy vs training time (one point per run)",
        "accuracy_vs_memory.png": "Accuracy vs peak memory (one point per run)",
        "popularity_levels.png": "Metrics by target popularity level",
        "warmup_stages.png": "Per-stage metrics of warmup runs",
    }
    for name, caption in captions.items():
        if name in rep.files:
            lines += [f"## {caption}", "", f"![{caption}]({name})", ""]
    atomic_write_text(out / "results.md", "\n".join(lines))
    rep.files["results.md"] = out / "results.md"
    return rep


def _interval_note() -> str:
    from cva_rec.report.bootstrap import MARKER_NOTE

    return MARKER_NOTE[0].upper() + MARKER_NOTE[1:] + "."
