"""Find finished runs under a folder and aggregate them over seeds.

A run is any directory holding ``metrics.json`` (written by ``run_experiment``); its
``config.yaml`` (when present) tells which settings it used, and ``stages.json`` (warmup runs)
holds per-stage test metrics. Runs whose configs differ only in ``train.seed`` form one group
(the run folders' rule of :mod:`cva_rec.config.identity` with the seed left out, so keys that do
not change the result, such as ``output.*``, ``train.resume`` or ``train.num_workers``, never
split a group): the report shows the group's mean and standard deviation.
"""
from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from cva_rec.config.identity import REPORT_GROUPS_ACROSS, config_identity
from cva_rec.errors import DataError

log = logging.getLogger("cva_rec")

#: metrics averaged over seeds (test split); names as in metrics.json["test"]
TABLE_METRICS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")
#: row order of the paper's tables (anything else after, alphabetically)
BACKBONE_ORDER = ("SASRec", "GRU4Rec", "NextItNet")
ENCODER_ORDER = ("id", "pooling", "mlp", "perceiver_io", "cva", "id_content", "semantic_id")


@dataclass
class RunRecord:
    """One finished run: its folder, metrics.json, resolved config (or None) and stages (or None)."""

    run_dir: Path
    metrics: Dict[str, Any]
    config: Optional[Dict[str, Any]] = None
    stages: Optional[List[Dict[str, Any]]] = None

    @property
    def name(self) -> str:
        return str(self.metrics.get("run") or self.run_dir.name)

    @property
    def backbone(self) -> str:
        return str(self.metrics.get("model") or (self.config or {}).get("model", {}).get("name", "?"))

    @property
    def seed(self) -> Any:
        return self.metrics.get("seed")

    @property
    def encoder_label(self) -> str:
        """Encoder name with its non-default options, e.g. ``cva(num_latents=8)``."""
        enc = dict((self.config or {}).get("item_encoder") or {})
        name = str(enc.pop("name", None) or self.metrics.get("item_encoder", "?"))
        enc = {k: v for k, v in enc.items() if not k.endswith("_path")}  # file locations are not settings
        if not enc:
            return name
        return f"{name}(" + ",".join(f"{k}={_short(v)}" for k, v in sorted(enc.items())) + ")"

    @property
    def variant(self) -> str:
        """The run as the papers name it, e.g. ``CVA(M=4)-SASRec`` (:mod:`cva_rec.report.labels`)."""
        from cva_rec.report.labels import variant_label

        enc = dict((self.config or {}).get("item_encoder") or {})
        name = str(enc.pop("name", None) or self.metrics.get("item_encoder", "?"))
        return variant_label(name, enc, self.backbone)

    @property
    def train_seconds(self) -> Optional[float]:
        """Seconds of ``trainer.fit`` (training + per-epoch validation), as the paper's Time(s)."""
        v = self.metrics.get("fit_seconds")
        return float(v) if v is not None else _float(self.metrics.get("total_seconds"))

    def flat_config(self) -> Dict[str, Any]:
        """``section.key`` -> value of the config's identity without the seed (what groups runs)."""
        if self.config is None:  # no config.yaml: the identity metrics.json carries
            return {f"metrics.{k}": self.metrics.get(k) for k in ("dataset", "model", "item_encoder", "loss")}
        # the warmup section is ignored by `cva-rec train`: not a setting of an ordinary run
        ignore = (*REPORT_GROUPS_ACROSS, *(() if self.stages else ("warmup.*",)))
        identity = config_identity(self.config, ignore)
        flat = {}
        for sec, values in identity.items():
            flat.update({f"{sec}.{k}": v for k, v in values.items()} if isinstance(values, Mapping) else {sec: values})
        return flat


@dataclass
class Group:
    """Runs that differ only in their seed."""

    records: List[RunRecord]
    settings: Dict[str, Any] = field(default_factory=dict)  # config keys that set this group apart from others

    @property
    def first(self) -> RunRecord:
        return self.records[0]

    def values(self, get) -> List[float]:
        """``get(record)`` for every run, skipping runs where it is missing or NaN."""
        out = []
        for r in self.records:
            v = _float(get(r))
            if v is not None:
                out.append(v)
        return out

    def mean_std(self, get) -> Tuple[Optional[float], Optional[float]]:
        """Mean and sample standard deviation (None with fewer than two values)."""
        vals = self.values(get)
        if not vals:
            return None, None
        return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def _float(v: Any) -> Optional[float]:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _short(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def _read_json(path: Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def load_run(run_dir: Path) -> RunRecord:
    """Read one run directory; unreadable ``metrics.json`` -> DataError."""
    run_dir = Path(run_dir)
    try:
        metrics = _read_json(run_dir / "metrics.json")
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{run_dir / 'metrics.json'} is unreadable ({exc})") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict):
        raise DataError(f"{run_dir / 'metrics.json'} has no 'test' metrics: not a cva_rec run")
    config = None
    if (run_dir / "config.yaml").is_file():
        try:
            with open(run_dir / "config.yaml", encoding="utf-8") as fh:
                config = yaml.safe_load(fh) or None
        except (OSError, ValueError, yaml.YAMLError) as exc:  # binary, not UTF-8, not YAML
            raise DataError(f"{run_dir / 'config.yaml'} is unreadable ({' '.join(str(exc).split())[:160]})") from None
        if not isinstance(config, dict):
            raise DataError(f"{run_dir / 'config.yaml'} is not a cva_rec config (a YAML mapping)")
    stages = None
    if (run_dir / "stages.json").is_file():
        try:
            raw = _read_json(run_dir / "stages.json")
        except (OSError, ValueError) as exc:
            raise DataError(f"{run_dir / 'stages.json'} is unreadable ({exc})") from None
        stages = raw.get("stages") if isinstance(raw, dict) else raw
    return RunRecord(run_dir, metrics, config, stages if isinstance(stages, list) else None)


def scan_runs(root: str | Path) -> List[RunRecord]:
    """Every run directory under ``root`` (``root`` itself included), sorted by path.

    Unreadable runs are skipped with a warning (a half-written folder must not hide the rest);
    no run at all is a DataError.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"runs folder not found: {root}")
    records = []
    for path in sorted(root.rglob("metrics.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if _inside_warmup(path.parent, root):
            continue  # a warmup stage: reported through its warmup folder's stages.json
        try:
            records.append(load_run(path.parent))
        except DataError as exc:
            log.warning("skipping %s", exc)
    if not records:
        raise DataError(f"no finished runs (folders with metrics.json) under {root}")
    return records


def _inside_warmup(run_dir: Path, root: Path) -> bool:
    """True for the stage folders of a warmup output folder (a parent holding stages.json)."""
    for parent in run_dir.parents:
        if (parent / "stages.json").is_file():
            return True
        if parent == root:
            return False
    return False


def group_runs(records: Sequence[RunRecord]) -> List[Group]:
    """Group runs that share every setting but the seed; rows in the paper's backbone / encoder order."""
    groups: Dict[str, Group] = {}
    flats = {id(r): r.flat_config() for r in records}
    for r in records:
        key = json.dumps(flats[id(r)], sort_keys=True, default=str)
        groups.setdefault(key, Group([])).records.append(r)
    out = list(groups.values())
    # settings that differ between groups, other than backbone and encoder (shown in their own columns)
    all_keys = sorted({k for g in out for k in flats[id(g.first)]})
    shown_elsewhere = ("model.name", "item_encoder.", "metrics.model", "metrics.item_encoder")
    varying = [
        k for k in all_keys
        if not k.startswith(shown_elsewhere)
        and len({json.dumps(flats[id(g.first)].get(k), sort_keys=True, default=str) for g in out}) > 1
    ]
    for g in out:
        g.settings = {k: flats[id(g.first)].get(k) for k in varying}
        g.records.sort(key=lambda r: (str(r.seed), r.name))
    out.sort(key=lambda g: (_rank(BACKBONE_ORDER, g.first.backbone), _rank(ENCODER_ORDER, g.first.encoder_label.split("(")[0]),
                            g.first.encoder_label, settings_label(g.settings)))
    return out


def _rank(order: Sequence[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


def settings_label(settings: Mapping[str, Any]) -> str:
    """``loss.name=inbatch_softmax, train.lr=0.01`` (empty when nothing differs)."""
    return ", ".join(f"{k}={_short(v)}" for k, v in settings.items())
