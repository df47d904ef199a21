"""PNG plots of a set of runs: accuracy vs cost, metrics per popularity level, warmup stages.

matplotlib with the Agg backend (no display needed). Each plot is written atomically
(:func:`cva_rec.io.atomic_write`), so a reader never sees half a PNG.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402

from cva_rec.io import atomic_write  # noqa: E402
from cva_rec.report.collect import Group, RunRecord  # noqa: E402
from cva_rec.report.labels import distinct_labels  # noqa: E402

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
COLORS = plt.get_cmap("tab10").colors
#: above this many runs a scatter plot labels one point per group instead of every point
MAX_POINT_LABELS = 24


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` atomically and close it."""
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=130, bbox_inches="tight"), mode="wb")
    finally:
        plt.close(fig)


def _group_labels(groups: Sequence[Group]) -> Dict[int, str]:
    """id(group) -> its variant (``CVA(M=4)-SASRec``), with a differing setting only where two read the same."""
    names = distinct_labels([g.first.variant for g in groups], [g.settings for g in groups])
    return {id(g): n for g, n in zip(groups, names)}


def _place_labels(ax, items: Sequence[Tuple[float, float, str]]) -> None:
    """Annotate points, nudging each label up/down until it overlaps no label placed before."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    offsets = [4, -12, 14, -22, 24, -32, 34, -42, 44, -52]
    for x, y, text in sorted(items, key=lambda t: (t[0], t[1])):
        for dy in offsets:
            ann = ax.annotate(
                text, (x, y), xytext=(6, dy), textcoords="offset points", fontsize=7, color="0.15",
                arrowprops=dict(arrowstyle="-", lw=0.4, color="0.6") if abs(dy) > 14 else None,
            )
            box = ann.get_window_extent(renderer).expanded(1.02, 1.1)
            if not any(box.overlaps(b) for b in placed) or dy == offsets[-1]:
                placed.append(box)
                break
            ann.remove()


def _backbone_styles(groups: Sequence[Group]) -> Dict[str, Tuple[str, tuple]]:
    backbones = list(dict.fromkeys(g.first.backbone for g in groups))
    return {b: (MARKERS[i % len(MARKERS)], COLORS[i % len(COLORS)]) for i, b in enumerate(backbones)}


def accuracy_vs_cost(groups: Sequence[Group], x_of: Callable[[RunRecord], Optional[float]], xlabel: str,
                     title: str, path: str | os.PathLike, metric: str = "ndcg@10") -> Optional[Path]:
    """Scatter: one point per run, x = a cost, y = ``metric`` in percent; marker/colour = backbone."""
    styles = _backbone_styles(groups)
    n_runs = sum(len(g.records) for g in groups)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    labels: List[Tuple[float, float, str]] = []
    xs_all = []
    seen_backbones = set()
    names = _group_labels(groups)
    for g in groups:
        marker, color = styles[g.first.backbone]
        pts = [(x_of(r), r.metrics["test"].get(metric), r) for r in g.records]
        pts = [(x, y * 100, r) for x, y, r in pts if x is not None and y is not None]
        if not pts:
            continue
        legend = g.first.backbone if g.first.backbone not in seen_backbones else None
        seen_backbones.add(g.first.backbone)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=color, s=42,
                   edgecolor="black", linewidth=0.4, label=legend, zorder=3)
        xs_all += [p[0] for p in pts]
        if n_runs <= MAX_POINT_LABELS:
            many = len(g.records) > 1
            labels += [(x, y, names[id(g)] + (f" s{r.seed}" if many else "")) for x, y, r in pts]
        else:
            labels.append((pts[0][0], pts[0][1], names[id(g)]))
    if not xs_all:
        plt.close(fig)
        return None
    if min(xs_all) > 0 and max(xs_all) / min(xs_all) > 20:
        ax.set_xscale("log")  # costs of content encoders span orders of magnitude
    ax.margins(x=0.15, y=0.12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"test {metric.upper()} (%)")
    ax.set_title(title + ("" if n_runs <= MAX_POINT_LABELS else "\n(one label per setting; points are runs)"), fontsize=10)
    ax.grid(True, alpha=0.3, zorder=0)
    ax.legend(title="backbone", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.canvas.draw()
    _place_labels(ax, labels)
    return save_png(fig, path)


def memory_axis(records: Sequence[RunRecord]) -> Tuple[Callable[[RunRecord], Optional[float]], str]:
    """Peak memory getter in MiB or GiB, whichever reads better for these runs."""
    peak = max((r.metrics.get("peak_memory_bytes") or 0) for r in records)
    kinds = {r.metrics.get("peak_memory_kind", "") for r in records}
    what = "GPU max allocated" if kinds == {"cuda_max_allocated"} else "process peak RSS" if kinds == {"process_peak_rss"} else "peak"
    unit, scale = ("GiB", 2**30) if peak >= 2**30 else ("MiB", 2**20)

    def get(r: RunRecord) -> Optional[float]:
        b = r.metrics.get("peak_memory_bytes")
        return None if b is None else b / scale

    return get, f"peak memory ({what}, {unit})"


def popularity_levels(groups: Sequence[Group], path: str | os.PathLike, metrics=("hr@10", "ndcg@10")) -> Optional[Path]:
    """Per backbone: test metrics by target-popularity level, one line per encoder (mean over seeds)."""
    groups = [g for g in groups if g.first.metrics["test"].get("popularity_levels")]
    if not groups:
        return None
    backbones = list(dict.fromkeys(g.first.backbone for g in groups))
    fig, axes = plt.subplots(len(metrics), len(backbones), figsize=(4.2 * len(backbones) + 1.5, 3.0 * len(metrics)),
                             squeeze=False, sharex=True, sharey="row")
    label_colors: Dict[str, tuple] = {}
    names = _group_labels(groups)
    for col, backbone in enumerate(backbones):
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            for g in (g for g in groups if g.first.backbone == backbone):
                label = names[id(g)]
                color = label_colors.setdefault(label, COLORS[len(label_colors) % len(COLORS)])
                levels = sorted(g.first.metrics["test"]["popularity_levels"], key=int)
                means, stds = [], []
                for lv in levels:
                    m, s = g.mean_std(lambda r: (r.metrics["test"].get("popularity_levels") or {}).get(lv, {}).get(metric))
                    means.append(None if m is None else m * 100)
                    stds.append(0.0 if s is None else s * 100)
                xs = [int(lv) for lv in levels]
                ax.plot(xs, [float("nan") if m is None else m for m in means], marker="o", ms=3, color=color, label=label)
                if len(g.records) > 1:
                    lo = [float("nan") if m is None else m - s for m, s in zip(means, stds)]
                    hi = [float("nan") if m is None else m + s for m, s in zip(means, stds)]
                    ax.fill_between(xs, lo, hi, color=color, alpha=0.15, linewidth=0)
            ax.grid(True, alpha=0.3)
            if row == 0:
                ax.set_title(backbone, fontsize=10)
            if col == 0:
                ax.set_ylabel(f"test {metric.upper()} (%)")
            if row == len(metrics) - 1:
                ax.set_xlabel("target popularity level\n(1 = least popular items)")
                ax.set_xticks(xs)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles.keys()), title="encoder", loc="upper left",
               bbox_to_anchor=(1.0, 0.95), fontsize=8, frameon=False)
    fig.suptitle("Test metrics by popularity of the target item (mean over seeds; band = ± std)", fontsize=11)
    fig.tight_layout()
    return save_png(fig, path)


def _stage_points(stages: List[dict], metric: str) -> Tuple[List[str], List[Optional[float]]]:
    names, values = [], []
    for i, st in enumerate(stages):
        st = st if isinstance(st, dict) else {}
        names.append(str(st.get("stage") or st.get("name") or f"stage {i + 1}"))
        test = st.get("test") if isinstance(st.get("test"), dict) else st
        v = test.get(metric)
        values.append(None if v is None else float(v) * 100)
    return names, values


def warmup_stages(records: Sequence[RunRecord], path: str | os.PathLike, metrics=("hr@10", "ndcg@10")) -> Optional[Path]:
    """Per-stage test metrics of warmup runs (``stages.json``), one line per run."""
    records = [r for r in records if r.stages]
    if not records:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics) + 1.5, 3.6), squeeze=False)
    for col, metric in enumerate(metrics):
        ax = axes[0][col]
        for i, r in enumerate(records):
            names, values = _stage_points(r.stages, metric)
            ax.plot(range(len(names)), [float("nan") if v is None else v for v in values], marker="o", ms=4,
                    color=COLORS[i % len(COLORS)], label=f"{r.backbone} {r.run_dir.name} s{r.seed}")  # folder = variant
            ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(f"test {metric.upper()} (%)")
        ax.set_xlabel("warmup stage")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, title="run", loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, frameon=False)
    fig.suptitle("Test metrics after each warmup stage", fontsize=11)
    fig.tight_layout()
    return save_png(fig, path)
