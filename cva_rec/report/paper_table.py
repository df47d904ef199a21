"""The CVA paper's Table 4 layout from grouped runs: Markdown for people, CSV for programs.

Markdown shows metrics in percent (as the paper does) with ``mean ± std`` over seeds when a
group has several; the CSV keeps raw fractions with separate ``_mean`` / ``_std`` columns so it
parses back without string handling. ``runs.csv`` has one row per run.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Dict, List, Optional, Sequence

from cva_rec.report.artifacts_table import artifacts_cell
from cva_rec.report.collect import TABLE_METRICS, Group, RunRecord, settings_label
from cva_rec.report.table import markdown_table

GIB = 2**30


def _metric(name: str):
    return lambda r: r.metrics["test"].get(name)


def _memory_gib(r: RunRecord) -> Optional[float]:
    b = r.metrics.get("peak_memory_bytes")
    return None if b is None else b / GIB


#: (csv column stem, Markdown header, getter, percent?, decimals)
COLUMNS = [
    *[(m, f"{m.upper()} (%)", _metric(m), True, 3) for m in TABLE_METRICS],
    ("train_seconds", "Time (s)", lambda r: r.train_seconds, False, 0),
    ("peak_memory_gib", "Mem. (GiB)", _memory_gib, False, 2),
    ("parameters", "# Param.", lambda r: r.metrics.get("parameters"), False, None),
    ("encoder_parameters", "# Enc. param.", lambda r: r.metrics.get("encoder_parameters"), False, None),
]


def _cell(mean: Optional[float], std: Optional[float], percent: bool, decimals: Optional[int]) -> str:
    if mean is None:
        return "-"
    scale = 100.0 if percent else 1.0
    if decimals is None:  # counts: integers with thousands separators
        text = f"{round(mean):,}"
        return text if std is None or std == 0 else f"{text} ± {round(std):,}"
    text = f"{mean * scale:.{decimals}f}"
    return text if std is None else f"{text} ± {std * scale:.{decimals}f}"


def markdown_rows(groups: Sequence[Group], extra: Optional[Dict[str, Dict[int, str]]] = None) -> List[Dict[str, str]]:
    """One dict per group, keyed by the Markdown headers; ``extra``: header -> {id(group): cell} columns
    added at the end (a missing cell is ``-``)."""
    with_settings = any(g.settings for g in groups)
    rows = []
    for g in groups:
        row = {"Backbone": g.first.backbone, "Encoder": g.first.variant.rsplit("-", 1)[0]}  # CVA(M=4), as the papers
        if with_settings:
            row["Settings"] = settings_label(g.settings) or "-"
        for _, header, get, percent, decimals in COLUMNS:
            row[header] = _cell(*g.mean_std(get), percent, decimals)
        row["Seeds"] = str(len(g.records))
        for header, cells in (extra or {}).items():
            row[header] = cells.get(id(g), "-")
        rows.append(row)
    return rows


def to_markdown(groups: Sequence[Group], extra: Optional[Dict[str, Dict[int, str]]] = None) -> str:
    rows = markdown_rows(groups, extra)
    return markdown_table(rows, list(rows[0].keys())) if rows else "(no runs)"


def to_csv(groups: Sequence[Group]) -> str:
    """One row per group: identity, n_seeds, seeds, then ``<metric>_mean`` / ``<metric>_std``."""
    buf = io.StringIO()
    header = ["backbone", "encoder", "loss", "dataset", "settings", "n_seeds", "seeds", "runs"]
    for stem, *_ in COLUMNS:
        header += [f"{stem}_mean", f"{stem}_std"]
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for g in groups:
        r = g.first
        row: List[Any] = [
            r.backbone, r.encoder_label, r.metrics.get("loss"), r.metrics.get("dataset"), settings_label(g.settings),
            len(g.records), " ".join(str(x.seed) for x in g.records), " ".join(x.name for x in g.records),
        ]
        for _, _, get, _, _ in COLUMNS:
            mean, std = g.mean_std(get)
            row += ["" if mean is None else repr(mean), "" if std is None else repr(std)]
        writer.writerow(row)
    return buf.getvalue()


def runs_csv(records: Sequence[RunRecord]) -> str:
    """One row per run (raw values), for people who want to aggregate differently."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "run_dir", "backbone", "encoder", "loss", "dataset", "seed", *(c[0] for c in COLUMNS), "epochs_trained",
                     "artifacts"])
    for r in records:
        vals = [get(r) for _, _, get, _, _ in COLUMNS]
        writer.writerow([
            r.name, str(r.run_dir), r.backbone, r.encoder_label, r.metrics.get("loss"), r.metrics.get("dataset"), r.seed,
            *("" if v is None else repr(v) if isinstance(v, float) else v for v in vals), r.metrics.get("epochs_trained", ""),
            artifacts_cell(r),
        ])
    return buf.getvalue()
