"""The LUCID ablation table (FLUID Tables 5 / 7 analogue): every warmup stage and every LUCID run
of a runs folder in one table, with the code-quality diagnostics of the codes they used.

Rows: each stage of each warmup folder (``stages.json``) and each ``cva-rec train`` run whose item
encoder is ``lucid`` or ``semantic_id``; columns: how the item side was built (tokens, fusion,
decoding, shared tables) and the overall and cold-start test metrics. The diagnostics come from
``diagnostics.json`` beside each ``codes.npz`` (written by ``cva-rec tokenize``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from cva_rec.report.collect import RunRecord
from cva_rec.report.stages import stage_row
from cva_rec.report.table import markdown_table

COLUMNS = ("variant", "stage", "item side", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "inductive hr@10",
           "pop 1-3 ndcg@10", "pop 8-10 ndcg@10", "parameters")
LUCID_ENCODERS = ("lucid", "semantic_id")


def _item_side(enc: Mapping[str, Any], stage: Optional[str], record: Optional[Mapping[str, Any]] = None) -> str:
    """How the item side was built, from the run's config or (a warmup stage) what ``stages.json`` recorded."""
    record = record or {}
    if stage == "id" or enc.get("name") == "id":
        return "ID"
    if enc.get("name") != "lucid":
        return str(enc.get("name"))
    stage_enc = {**enc, **(record.get("item_encoder") or {})}
    tokens = list(stage_enc.get("tokens") or [])
    retired = record.get("id_retired")
    if retired == "everywhere" or (stage_enc.get("fusion") == "early" and stage_enc.get("early") == "replace"):
        tokens = [t for t in tokens if t != "id"]
    if retired == "candidate" or stage_enc.get("candidate_id") is False:
        tokens = ["id(history)" if t == "id" else t for t in tokens]  # FLUID: the candidate-side ID is retired
    parts = ["+".join(tokens) or "-", str(stage_enc.get("fusion", "late"))]
    if stage_enc.get("fusion") == "early":
        parts.append(str(stage_enc.get("early")) + (f"({stage_enc.get('gate_input')})" if stage_enc.get("early") == "gate" else ""))
    if stage_enc.get("decoding") == "level_wise":
        parts.append("level-wise")
    if stage_enc.get("shared_tables"):
        parts.append("shared tables")
    return ", ".join(parts)


def _row(variant: str, stage: Optional[str], enc: Mapping[str, Any], test: Mapping[str, Any], params,
         record: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    row = stage_row({"stage": stage, "test": test, "parameters": params})
    row.update(variant=variant, stage=stage or "train", **{"item side": _item_side(enc, stage, record)})
    return row


def lucid_rows(records: Sequence[RunRecord], root: Path) -> List[Dict[str, Any]]:
    rows = []
    for r in records:
        enc = (r.config or {}).get("item_encoder", {})
        variant = str(r.run_dir.relative_to(root)) if root in r.run_dir.parents else r.run_dir.name
        if r.stages:
            extra = (r.config or {}).get("warmup", {})
            for st in r.stages:
                stage = st.get("stage")
                row = _row(variant, stage, enc, st.get("test") or {}, st.get("parameters"), st)
                if stage == "room" and extra.get("room_init") == "random":
                    row["item side"] += ", room tables random"
                rows.append(row)
        elif enc.get("name") in LUCID_ENCODERS:
            rows.append(_row(variant, None, enc, r.metrics.get("test") or {}, r.metrics.get("parameters")))
    return rows


def code_diagnostics_rows(records: Sequence[RunRecord]) -> List[Dict[str, Any]]:
    seen, rows = set(), []
    for r in records:
        path = ((r.config or {}).get("item_encoder") or {}).get("codes_path")
        if not path or path in seen:
            continue
        seen.add(path)
        diag_path = Path(path).parent / "diagnostics.json"
        if not diag_path.is_file():
            continue
        diag = json.loads(diag_path.read_text())
        for which in ("slice", "room"):
            d = diag.get(which)
            if not isinstance(d, dict):
                continue
            rows.append({
                "codes": path, "level": which, "items": d.get("n_items"), "L x N": f"{d.get('levels')} x {d.get('codebook_size')}",
                "unique": d.get("unique_fraction"), "collision rate": d.get("collision_rate"),
                "largest group": d.get("largest_collision_group"),
                "utilisation": " / ".join(f"{lv.get('utilisation', 0):.2f}" for lv in d.get("per_level", [])),
                "perplexity": " / ".join(f"{lv.get('perplexity', 0):.1f}" for lv in d.get("per_level", [])),
                "bytes/item": d.get("bytes_per_item"),
            })
    return rows


def lucid_markdown(records: Sequence[RunRecord], root: Path) -> Optional[str]:
    rows = lucid_rows(records, root)
    if not rows:
        return None
    out = ["Test metrics (full ranking, history masked). inductive = targets never seen in training; "
           "pop a-b = targets in popularity buckets a..b of 10 (1 = least popular).", "",
           markdown_table(rows, COLUMNS)]
    diag = code_diagnostics_rows(records)
    if diag:
        out += ["", "Code quality (from `cva-rec tokenize`'s diagnostics.json; utilisation / perplexity per level):", "",
                markdown_table(diag, list(diag[0].keys()))]
    return "\n".join(out)
