"""The "delta NDCG@10 [95% CI]" column of ``cva-rec report``: every setting paired with a reference setting.

The reference is the setting named by ``--paired-with`` (the table's Encoder cell, e.g. ``Pooling``, or
its encoder label, e.g. ``pooling``, any case), or, when not named, the one setting whose item
encoder is ``id``. Settings tested on other users than the reference (another dataset or split) get no
interval; runs without per-user results neither (both logged).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

from cva_rec.errors import DataError
from cva_rec.report import bootstrap
from cva_rec.report.collect import Group, settings_label

log = logging.getLogger("cva_rec")

COLUMN = "delta NDCG@10 [95% CI]"


def group_label(g: Group) -> str:
    """The encoder label, with the settings that set the group apart when there are any."""
    extra = settings_label(g.settings)
    return g.first.encoder_label + (f" [{extra}]" if extra else "")


def _names(g: Group) -> List[str]:
    """What --paired-with may name a setting by: the table's Encoder cell, the encoder label, with settings."""
    shown = getattr(g.first, "variant", None)
    return [g.first.encoder_label, group_label(g), *([shown, shown.rsplit("-", 1)[0]] if shown else [])]


def reference_group(groups: Sequence[Group], paired_with: Optional[str]) -> Group:
    """The setting every other is paired with (one clear line when it is not one setting)."""
    if paired_with:
        want = paired_with.lower()
        found = [g for g in groups if want in {n.lower() for n in _names(g)}]
        if len(found) != 1:
            labels = "; ".join(group_label(g) for g in groups)
            raise DataError(f"--paired-with {paired_with!r} matches {len(found)} settings (one needed); settings: {labels}")
        return found[0]
    found = [g for g in groups if g.first.encoder_label.split("(")[0] == "id"]
    if len(found) != 1:
        raise DataError(f"no single ID setting to pair with ({len(found)} settings with item_encoder id): "
                        "name the reference with --paired-with")
    return found[0]


def paired_cells(groups: Sequence[Group], paired_with: Optional[str], metric: str = "ndcg@10") -> Dict[int, str]:
    """id(group) -> the interval cell of (group - reference) ``metric`` over the reference's users."""
    ref = reference_group(groups, paired_with)
    try:
        ref_runs = bootstrap.load_runs([r.run_dir for r in ref.records])
    except DataError as exc:
        raise DataError(f"the reference setting {group_label(ref)!r}: {exc}") from None
    variants: Dict[int, List[bootstrap.PerUser]] = {}
    for g in groups:
        try:
            runs = bootstrap.load_runs([r.run_dir for r in g.records])
            bootstrap.same_users(runs, ref_runs[0], group_label(g))
        except DataError as exc:
            log.warning("no interval for %s: %s", group_label(g), exc)
            continue
        variants[id(g)] = runs
    intervals = bootstrap.compare(ref_runs, variants, metric) if variants else {}
    cells = {key: bootstrap.interval_cell(iv) for key, iv in intervals.items()}
    cells[id(ref)] = "reference"
    return cells
