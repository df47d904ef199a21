"""ID-free vs ID on the ml-1m item-cold-start split: train every variant at one budget, print the table.

Variants (recipes under ``recipes/ml1m/``, all with ``dataset.cold_items: 0.1``, the same split,
protocol and codes): the ID model, the ID + content hybrid (ID, slice and room tokens, late fusion),
ID-free from scratch (slice + room, no item-ID parameter anywhere) and the FLUID chain ending ID-free
(``cva-rec warmup``, the ID deleted everywhere); ``idfree_dropout`` is ID-free trained with level
dropout (``item_encoder.level_dropout``: candidates' codes cut at a random depth). Each (variant, seed) is its own run folder
``RUNS/<variant>-s<seed>``; a finished one is read, not retrained, and an interrupted one resumes,
so re-running the same command after a crash repeats nothing. A folder holding another experiment
than this call would train (another seed, ``--budget``, ``--chain`` or recipe; the run folders' rule)
stops the call before anything runs (one line naming the key): one table is of one budget. ``--rules`` also evaluates each
ID-free checkpoint with the other prefix-table rules (``prefix_rows: all``, and
``unseen_prefix: zero``), and each ID + room hybrid checkpoint with ``id_rows: trained`` (a held-out
item's never-trained ID row left out): training is the same, only items outside training differ.

Prints, per variant, mean +- std over the seeds of NDCG@10 / HR@10 / HR@20 overall, on warm and on
cold test targets (users whose test item is held out), the ratios to the ID model (overall and cold)
and the wall time of the call that trained it (the whole chain for FLUID).

    cva-rec bench idfree                                         # 1 seed, the default short budget
    cva-rec bench idfree -- --seeds 2020 2021 2022 --variants id idfree
    cva-rec bench idfree -- --table-only                         # print what is there
    cva-rec bench idfree -- --variants id fluid --ablations room_random room_e2   # warm-up choices, by measurement
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cva_rec.benchmarks import bench_output, project_root
from cva_rec.errors import ConfigError

#: name -> (label, recipe, command[, overrides of that variant]) (cva-rec bench compare trains its tables through
#: the functions below with a mapping of the same shape)
VARIANTS = {
    "id": ("ID SASRec", "cold_sasrec_id.yaml", "train"),
    "hybrid": ("ID + slice + room, late (hybrid)", "cold_hybrid.yaml", "train"),
    "idfree": ("ID-free: slice + room, from scratch", "cold_content_only.yaml", "train"),
    "idfree_dropout": ("ID-free + level dropout 0.5 (unseen: zero)", "cold_content_only_dropout.yaml", "train"),
    "idfree_sum": ("ID-free: room, levels added (compose sum)", "cold_idfree_sum.yaml", "train"),
    "hybrid_sum": ("ID + room, levels added (hybrid, compose sum)", "cold_hybrid_sum.yaml", "train"),
    "fluid": ("FLUID chain -> slice + room, ID deleted", "cold_fluid.yaml", "warmup"),
}
#: extra evaluations of a variant's checkpoints (--rules): variant -> {folder name: (label, overrides)}.
#: Training is the same; only how items outside training read their rows changes.
RULES = {
    "idfree": {
        "eval-rows-all": ("  same checkpoint, prefix_rows: all (untrained rows read)", ["item_encoder.prefix_rows=all"]),
        "eval-zero": ("  same checkpoint, unseen_prefix: zero", ["item_encoder.unseen_prefix=zero"]),
    },
    "hybrid_sum": {
        "eval-id-rows-trained": ("  same checkpoints, id_rows: trained (held-out items: no random ID row)",
                                 ["item_encoder.id_rows=trained"]),
    },
}
#: FLUID chain ablations (--ablations): name -> (label, leading stages reused from fluid-s<seed>, overrides).
#: Each changes one warm-up choice and retrains only the stages it touches (``warmup.reuse_run``).
ABLATIONS = {
    "ft_lr_5e-4": ("chain, fine-tune lr 5e-4 (stages 1-3)", ["id"], ["warmup.finetune_lr=0.0005"]),
    "phase_e2": ("chain, phase-out 2 epochs (span 1)", ["id", "slice"], ["warmup.phase_out_epochs=2"]),
    "room_e2": ("chain, room stage 2 epochs", ["id", "slice", "phase_out"], ["warmup.room_epochs=2"]),
    "phase_e2_room_e2": ("chain, phase-out 2 epochs and room 2 epochs", ["id", "slice"],
                         ["warmup.phase_out_epochs=2", "warmup.room_epochs=2"]),
    "room_random": ("chain, room tables random (not from slice)", ["id", "slice", "phase_out"], ["warmup.room_init=random"]),
    "chain_sum": ("chain, levels added (compose sum)", ["id"], ["item_encoder.compose=sum"]),
    "shared_tables": ("chain, room shares the slice tables", ["id", "slice", "phase_out"], ["item_encoder.shared_tables=true"]),
    "level_wise": ("chain, level-wise decoding (no prefixes)", ["id"], ["item_encoder.decoding=level_wise"]),
}
BUDGET = ["train.epochs=3", "train.limit_train_batches=0.25"]
CHAIN = ["warmup.id_epochs=3", "warmup.slice_epochs=1", "warmup.phase_out_epochs=1", "warmup.phase_out_span=1",
         "warmup.room_epochs=1"]
COLUMNS = [(part, m) for part in ("all", "warm", "cold") for m in ("ndcg@10", "hr@10", "hr@20")]
WALL_FILE = "bench_wall.json"


def _sets(pairs) -> list[str]:
    return [a for kv in pairs for a in ("--set", kv)]


def variant_command(name: str, seed: int, runs: Path, recipes: Path, budget, chain, resume: bool = False, variants=None):
    """(command, recipe, ``--set`` overrides) that train (variant, seed) into ``runs/<name>-s<seed>`` at this
    budget: seed and budget, and for a FLUID chain (or an ablation of it, trained on top of ``fluid-s<seed>``)
    the stage lengths and the ablation's own choice (later overrides win). ``variants``: the table's
    name -> (label, recipe, command[, overrides]) (default :data:`VARIANTS`)."""
    variants = VARIANTS if variants is None else variants
    run = runs / f"{name}-s{seed}"
    if name in ABLATIONS:
        _, reuse, overrides = ABLATIONS[name]
        extra = [*overrides, f"warmup.reuse_run={runs / f'fluid-s{seed}'}", f"warmup.reuse_stages=[{','.join(reuse)}]"]
        _, recipe, command = VARIANTS["fluid"]
        own = []
    else:
        _, recipe, command, *more = variants[name]
        extra, own = [], list(more[0]) if more else []
    # output.dir under --runs for every command: besides a warm-up's folder it holds what a run caches
    # there (the aligned content, .content_cache), which must not land in the recipe's own output.dir
    sets = [*own, f"train.seed={seed}", *budget, f"output.dir={runs}"]
    if command == "train":
        sets += ["train.resume=true"] if resume else []
    else:  # cva-rec warmup resumes on its own; its folder is output.dir / output.name
        sets += [*chain, *extra, f"output.name={run.name}"]
    return command, recipes / recipe, sets


def budget_mismatch(name: str, seed: int, runs: Path, recipes: Path, budget, chain, variants=None) -> list[str]:
    """How the folder's config.yaml differs from the config this call would train (the run folders' rule,
    :func:`cva_rec.config.identity.differences`; empty when there is no folder yet). A finished folder is
    read, not retrained, so a table under another --budget would silently mix budgets (and its header
    would name the wrong one) without this check."""
    from cva_rec.config.schema import load_config
    from cva_rec.config.identity import differences

    path = runs / f"{name}-s{seed}" / "config.yaml"
    if not path.is_file():
        return []
    _, recipe, sets = variant_command(name, seed, runs, recipes, budget, chain, variants=variants)
    try:
        trained = load_config(path)
    except ConfigError as exc:
        return [f"its config.yaml is not a valid config here: {exc}"]
    return differences(trained, load_config(recipe, sets))


def check_budget(name: str, seed: int, runs: Path, recipes: Path, budget, chain, variants=None) -> None:
    """One clear line, nothing touched, when ``runs/<name>-s<seed>`` was trained with other settings."""
    wrong = budget_mismatch(name, seed, runs, recipes, budget, chain, variants)
    if wrong:
        raise SystemExit(f"{runs / f'{name}-s{seed}'} was trained with another config than asked ({'; '.join(wrong)}): "
                         "pass the --budget / --chain it was trained with, or another --runs folder")


def train_variant(name: str, seed: int, runs: Path, recipes: Path, budget, chain, variants=None, tag: str = "idfree") -> Path:
    """Train (or resume) one (variant, seed); returns its folder. A finished folder is left alone.
    ``name`` may be an ablation of the FLUID chain (trained on top of ``fluid-s<seed>``). ``main`` has
    checked every folder it will read against the asked budget (:func:`check_budget`)."""
    if name in ABLATIONS:
        train_variant("fluid", seed, runs, recipes, budget, chain)
    run = runs / f"{name}-s{seed}"
    if (run / "metrics.json").is_file():
        return run
    command, recipe, sets = variant_command(name, seed, runs, recipes, budget, chain, resume=(run / "config.yaml").is_file(),
                                            variants=variants)
    cmd = [sys.executable, "-m", "cva_rec.cli.main", command, "-c", str(recipe), "--no-progress"]
    if command == "train":
        cmd += ["--run-dir", str(run)]
    print(f"[{tag}] {' '.join(cmd[3:] + _sets(sets))}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd + _sets(sets), check=True)
    wall = time.perf_counter() - start
    # the machine's load while it ran (1-, 5- and 15-minute averages at its end): timings on shared cores need it
    (run / WALL_FILE).write_text(json.dumps({"wall_s": wall, "resumed": "train.resume=true" in sets,
                                             "load_average_at_end": list(os.getloadavg())}))
    return run


def evaluate_rules(name: str, run: Path) -> None:
    for folder, (_, overrides) in RULES.get(name, {}).items():
        out = run / folder
        if not (out / "eval_test_best.json").is_file():
            subprocess.run([sys.executable, "-m", "cva_rec.cli.main", "evaluate", str(run), "--no-progress",
                            "--out", str(out), *_sets(overrides)], check=True)


def _test_metrics(run: Path, rule: str = None) -> dict:
    if rule:
        path = run / rule / "eval_test_best.json"
        return json.loads(path.read_text()) if path.is_file() else {}
    path = run / "metrics.json"
    return json.loads(path.read_text())["test"] if path.is_file() else {}


def _stage_tests(run: Path) -> list:
    """[(stage name, test metrics)] of a FLUID chain folder, in stage order (its stages.json)."""
    path = run / "stages.json"
    if not path.is_file():
        return []
    return [(m.get("stage"), m.get("test") or {}) for m in json.loads(path.read_text())["stages"]]


def chain_stages(runs: Path, seeds, name: str = "fluid") -> list:
    """[(stage name, [test metrics of each seed that has the stage])] of the FLUID chain runs (or an ablation's)."""
    per_seed = [_stage_tests(runs / f"{name}-s{s}") for s in seeds]
    names = max(per_seed, key=len, default=[])
    return [(name, [st[i][1] for st in per_seed if len(st) > i]) for i, (name, _) in enumerate(names)]


def _value(test: dict, part: str, metric: str):
    section = test if part == "all" else test.get(part, {})
    return section.get(metric)


def _summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(mean, std, n):
    if mean is None:
        return "-"
    return f"{mean:.4f}" + (f" +- {std:.4f}" if n > 1 else "")


def _ratio(a, b):
    if a is None or b is None:
        return "-"
    return f"{a / b:.2f}x" if b > 0 else ("inf" if a > 0 else "0/0")


def _row(label: str, tests: list, id_means: dict, wall: str = "-", n_cold: str = "-") -> list:
    """One table row: mean +- std of every column over ``tests`` (one test dict per seed), ratios to the ID model."""
    means = {c: _summary([_value(t, *c) for t in tests]) for c in COLUMNS}
    return ([label, str(len(tests))] + [_fmt(*means[c], len(tests)) for c in COLUMNS]
            + [_ratio(means[("all", "ndcg@10")][0], id_means.get(("all", "ndcg@10"))),
               _ratio(means[("cold", "hr@20")][0], id_means.get(("cold", "hr@20"))), wall, n_cold])


def table(runs: Path, variants, seeds, ablations=()) -> str:
    """The markdown table of ``variants`` over ``seeds`` (means +- std; ratios to the ID model's means)."""
    rows = []
    id_tests = [t for s in seeds if (t := _test_metrics(runs / f"id-s{s}"))]
    id_means = {c: _summary([_value(t, *c) for t in id_tests])[0] for c in COLUMNS}
    for name in variants:
        label = VARIANTS[name][0]
        for rule, rule_label in [(None, label)] + [(r, lab) for r, (lab, _) in RULES.get(name, {}).items()]:
            tests = [_test_metrics(runs / f"{name}-s{s}", rule) for s in seeds]
            tests = [t for t in tests if t]
            if not tests:
                continue
            walls = [json.loads(p.read_text())["wall_s"] for s in seeds
                     if (p := runs / f"{name}-s{s}" / WALL_FILE).is_file()] if rule is None else []
            wall = f"{statistics.fmean(walls) / 60:.1f}" if walls else "-"
            rows.append(_row(rule_label, tests, id_means, wall, str(tests[0].get("cold", {}).get("n_users", "-"))))
        if name == "fluid":  # every stage of the chain, the last one being the row above
            rows += [_row(f"  chain stage: {stage}", tests, id_means) for stage, tests in chain_stages(runs, seeds)]
    for name in ablations:
        label, reuse, _ = ABLATIONS[name]
        stages = chain_stages(runs, seeds, name)
        walls = [json.loads(p.read_text())["wall_s"] for s in seeds if (p := runs / f"{name}-s{s}" / WALL_FILE).is_file()]
        wall = f"{statistics.fmean(walls) / 60:.1f}" if walls else "-"
        # the stages it trained (the reused ones are the chain's rows); the last one is the model it ends with
        rows += [_row(f"{label}: {stage}", tests, id_means, wall if i == len(stages) - 1 else "-")
                 for i, (stage, tests) in enumerate(stages) if stage not in reuse and tests]
    head = ["variant", "seeds"] + [f"{p} {m}" for p, m in COLUMNS] + ["/ID ndcg@10", "/ID cold hr@20", "wall min",
                                                                      "cold users"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    root = project_root()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=bench_output("idfree"), help="one folder per (variant, seed) (default: runs/bench/idfree)")
    p.add_argument("--recipes", type=Path, default=root / "recipes" / "ml1m")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[2020])
    p.add_argument("--budget", nargs="*", default=BUDGET, help=f"overrides of every run (default: {' '.join(BUDGET)})")
    p.add_argument("--chain", nargs="*", default=CHAIN, help=f"stage lengths of the FLUID chain (default: {' '.join(CHAIN)})")
    p.add_argument("--ablations", nargs="*", default=[], choices=list(ABLATIONS),
                   help="FLUID chain ablations, one warm-up choice each, trained on top of the fluid runs "
                        "(reusing the stages they do not change): " + "; ".join(f"{k}: {v[0]}" for k, v in ABLATIONS.items()))
    p.add_argument("--rules", action="store_true", help="also evaluate the checkpoints of idfree with the other prefix-table "
                   "rules and of hybrid_sum with id_rows: trained (same training; items outside it read other rows)")
    p.add_argument("--table-only", action="store_true", help="train nothing; print the table of what is there")
    p.add_argument("--plot", type=Path, help="also write NDCG@10 per FLUID stage (mean +- std band over --seeds) to this PNG")
    args = p.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:  # before training anything: the table must be of one budget
        for name in [*args.variants, *args.ablations, *(["fluid"] if args.ablations else [])]:
            check_budget(name, seed, args.runs, args.recipes, args.budget, args.chain)
    if not args.table_only:
        for seed in args.seeds:  # seed-major: the first seed of every variant comes first
            for name in args.variants:
                run = train_variant(name, seed, args.runs, args.recipes, args.budget, args.chain)
                if args.rules:
                    evaluate_rules(name, run)
            for name in args.ablations:
                train_variant(name, seed, args.runs, args.recipes, args.budget, args.chain)
    print(f"budget: {' '.join(args.budget)}; chain: {' '.join(args.chain)}; runs: {args.runs}")
    print(table(args.runs, args.variants, args.seeds, args.ablations))
    if args.plot:
        plot_chain(args.runs, args.seeds, args.plot)
        print(f"wrote {args.plot}")
    return 0


def plot_chain(runs: Path, seeds, path: Path) -> None:
    """NDCG@10 per stage of the FLUID chain (all / warm / cold targets), mean with a +-std band over the
    seeds, with the ID model and the from-scratch ID-free and hybrid runs as horizontal references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cva_rec.io import atomic_write

    stages = chain_stages(runs, seeds)
    if not stages:
        raise SystemExit(f"no FLUID chain under {runs} (fluid-s<seed>/stages.json): run --variants fluid first")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = list(range(len(stages)))
    for ax, parts in ((axes[0], ("all", "warm")), (axes[1], ("cold",))):
        for part, colour in zip(parts, ("tab:blue", "tab:green") if len(parts) == 2 else ("tab:purple",)):
            stats = [_summary([_value(t, part, "ndcg@10") for t in tests]) for _, tests in stages]
            mean = [m if m is not None else float("nan") for m, _ in stats]
            std = [sd or 0.0 for _, sd in stats]
            ax.plot(x, mean, "o-", color=colour, label=f"FLUID chain, {part} targets")
            ax.fill_between(x, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)], color=colour, alpha=0.2)
            for name, style in (("id", ":"), ("idfree_sum", "--"), ("hybrid_sum", "-.")):
                tests = [t for s in seeds if (t := _test_metrics(runs / f"{name}-s{s}"))]
                ref = _summary([_value(t, part, "ndcg@10") for t in tests])[0]
                if ref is not None:
                    ax.axhline(ref, color=colour, ls=style, lw=1, label=f"{VARIANTS[name][0]}, {part} ({len(tests)} seeds)")
        ax.set_xticks(x, [name for name, _ in stages])
        ax.set_ylabel("test NDCG@10")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    axes[0].set_title("all and warm targets")
    axes[1].set_title("cold targets (held-out items)")
    fig.suptitle(f"ml-1m item cold start: NDCG@10 per FLUID stage, mean +- std over {len(seeds)} seeds")
    fig.tight_layout()
    atomic_write(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=110), mode="wb")


if __name__ == "__main__":
    raise SystemExit(main())
