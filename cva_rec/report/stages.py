"""The per-stage table of a staged warmup, read from the ``stages.json`` the warmup writes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

from cva_rec.io import atomic_write_text
from cva_rec.report.table import markdown_table

STAGE_COLUMNS = ("stage", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "inductive hr@10", "pop 1-3 ndcg@10", "pop 8-10 ndcg@10",
                 "parameters", "epochs")


def stage_row(m: Mapping[str, Any]) -> Dict[str, Any]:
    test = m.get("test", {}) or {}
    levels = test.get("popularity_levels", {}) or {}

    def level_mean(keys, metric="ndcg@10"):
        vals = [(levels[k]["n_users"], levels[k].get(metric, 0.0)) for k in keys if k in levels and levels[k]["n_users"]]
        n = sum(v[0] for v in vals)
        return sum(a * b for a, b in vals) / n if n else None

    return {
        "stage": m.get("stage"),
        **{k: test.get(k) for k in ("hr@10", "ndcg@10", "hr@20", "ndcg@20")},
        "inductive hr@10": (test.get("inductive") or {}).get("hr@10") if (test.get("inductive") or {}).get("n_users") else None,
        "pop 1-3 ndcg@10": level_mean(["1", "2", "3"]),
        "pop 8-10 ndcg@10": level_mean(["8", "9", "10"]),
        "parameters": m.get("parameters"),
        "epochs": m.get("epochs_trained"),
        # dataset.cold_items: targets that are held-out items vs the rest (absent otherwise)
        **{f"{part} {metric}": (test.get(part) or {}).get(metric) for part, metric in COLD_COLUMNS},
    }


#: (part, metric) shown when some stage has the warm / cold breakdown of dataset.cold_items
COLD_COLUMNS = (("warm", "ndcg@10"), ("cold", "ndcg@10"), ("cold", "hr@20"))


def stage_table(stages: Sequence[Mapping[str, Any]]) -> str:
    rows = [stage_row(m) for m in stages]
    cold = any((m.get("test") or {}).get("cold") for m in stages)
    columns = STAGE_COLUMNS[:-2] + tuple(f"{p} {k}" for p, k in COLD_COLUMNS) + STAGE_COLUMNS[-2:] if cold else STAGE_COLUMNS
    return markdown_table(rows, columns)


def write_stages_md(warmup_dir: Path) -> Path:
    """``stages.md`` beside a warmup folder's ``stages.json``."""
    stages = json.loads((Path(warmup_dir) / "stages.json").read_text())["stages"]
    return atomic_write_text(Path(warmup_dir) / "stages.md", "# warmup stages (test metrics; pop = target-popularity bucket, "
                             "1 = least popular)\n\n" + stage_table(stages) + "\n")
