"""The input artifacts behind each row of the report: short content hashes from ``metrics.json``.

Every run records the fingerprint of each file it read (``artifacts`` in ``metrics.json``, see
:mod:`cva_rec.jobs.provenance`); this section lists them per setting, so a row of the results table can
be traced to the exact feature store or codes file behind it. Seeds of one setting that read
*different* bytes (a store re-extracted between two seeds) get one line per distinct hash, marked:
their mean mixes two experiments.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from cva_rec.report.collect import Group, RunRecord, settings_label
from cva_rec.report.table import markdown_table

SHORT = 12


def run_artifacts(r: RunRecord) -> Dict[str, Mapping[str, Any]]:
    arts = r.metrics.get("artifacts")
    return {k: v for k, v in arts.items() if isinstance(v, Mapping)} if isinstance(arts, Mapping) else {}


def artifacts_cell(r: RunRecord) -> str:
    """``name=sha256 ...`` (full hashes) for ``runs.csv``."""
    return " ".join(f"{name}={fp.get('sha256') or 'missing'}" for name, fp in sorted(run_artifacts(r).items()))


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "-"


def artifacts_markdown(groups: Sequence[Group]) -> str:
    """One line per (setting, artifact, distinct content); '' when no run recorded artifacts."""
    rows: List[Dict[str, str]] = []
    for g in groups:
        names = sorted({name for r in g.records for name in run_artifacts(r)})
        for name in names:
            by_hash: Dict[Any, List[RunRecord]] = {}
            for r in g.records:
                by_hash.setdefault(run_artifacts(r).get(name, {}).get("sha256"), []).append(r)
            for digest, runs in by_hash.items():
                fp = run_artifacts(runs[0]).get(name, {})
                rows.append({
                    "Backbone": g.first.backbone, "Encoder": g.first.encoder_label,
                    "Settings": settings_label(g.settings) or "-", "Artifact": name,
                    "sha256": (digest or "missing")[:SHORT] + (" (differs between seeds)" if len(by_hash) > 1 else ""),
                    "Size": _size(fp.get("bytes")), "Runs": " ".join(r.name for r in runs),
                })
    if not rows:
        return ""
    if all(r["Settings"] == "-" for r in rows):
        for r in rows:
            del r["Settings"]
    return markdown_table(rows, list(rows[0].keys()))
