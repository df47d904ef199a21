"""Paper-style results tables (CVA Table 4 layout) from ``metrics.json`` dicts."""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Sequence

COLUMNS = ("model", "item_encoder", "loss", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "seconds_per_epoch", "peak_memory_mb", "parameters")


def row_of(metrics: Mapping[str, Any]) -> Dict[str, Any]:
    test = metrics.get("test", {})
    return {
        "run": metrics.get("run"),
        "model": metrics.get("model"),
        "item_encoder": metrics.get("label") or metrics.get("item_encoder"),
        "loss": metrics.get("loss"),
        "seed": metrics.get("seed"),
        **{k: test.get(k) for k in ("hr@10", "ndcg@10", "hr@20", "ndcg@20")},
        "seconds_per_epoch": metrics.get("seconds_per_epoch"),
        "total_seconds": metrics.get("total_seconds"),
        "peak_memory_mb": (metrics.get("peak_memory_bytes") or 0) / 2**20,
        "parameters": metrics.get("parameters"),
    }


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int) and v >= 10000:
        return f"{v:,}"
    return str(v)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Iterable[str] = COLUMNS) -> str:
    columns = list(columns)
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out: List[str] = [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)
