"""``cva-rec demo``: the main job — a small real experiment on RecBole's bundled ml-100k.

Trains ID-SASRec, ID-GRU4Rec and ID-NextItNet, then SASRec reading items through content
encoders over real text-derived content (MiniLM embeddings of each movie's title, year and
genres, built once by ``cva-rec extract-text``): Pooling, CVA, and LUCID semantic codes at the
recommended settings (docs/semantic_ids.md): RQ-KMeans over the same embeddings after a
collaborative alignment on the demo's training interactions, with collision-resolving levels so
every movie has its own code (``cva-rec tokenize --align --distinct``, built once), read with the
prefix levels added (``compose: sum``), as a room token beside the ID and ID-free (room only).

Every variant trains on the all-positions objective of the converged tables (``loss.name:
microlens_inbatch``: one window per user, every position trained; an ml-100k epoch is 943 windows), so it
gets many epochs within the budget. Every run keeps its best validation NDCG@10 epoch and stops after
``PATIENCE`` validations without a better one, within ``--epochs``; the line after the table says how many
stopped (converged at this setting) and where the converged, multi-seed tables with intervals over users
come from. Sized for a few minutes on 2 CPU cores; prints a results table, writes ``<out>/results.md`` and
the full report with plots (``<out>/report/``, as ``cva-rec report`` makes it).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from cva_rec.io import atomic_write_text

# (label, overrides) — one real training run each, on the same data and seed
DEMO_RUNS = [
    ("ID-SASRec", ["model.name=SASRec", "item_encoder.name=id"]),
    ("ID-GRU4Rec", ["model.name=GRU4Rec", "item_encoder.name=id"]),
    ("ID-NextItNet", ["model.name=NextItNet", "item_encoder.name=id"]),
    ("Pooling-SASRec", ["model.name=SASRec", "item_encoder.name=pooling"]),
    ("CVA-SASRec", ["model.name=SASRec", "item_encoder.name=cva", "item_encoder.depth=2"]),
    ("LUCID-ID+room-SASRec", ["model.name=SASRec", "item_encoder.name=lucid", "item_encoder.tokens=[id,room]",
                              "item_encoder.compose=sum", "item_encoder.fusion=early", "item_encoder.early=sum"]),
    ("LUCID-room-SASRec", ["model.name=SASRec", "item_encoder.name=lucid", "item_encoder.tokens=[room]",
                            "item_encoder.compose=sum"]),  # ID-free
]
#: validations without a better NDCG@10 before a run stops (its best epoch is the one tested), within EPOCHS
PATIENCE, EPOCHS = 3, 15
# the all-positions objective of the converged tables (`cva-rec bench compare`): a batch is 32 users, each one
# window of its last 51 training items, every position trained against the batch's items (microlens_inbatch);
# an epoch is one window per user (943), seconds on a CPU. It needs one token per item: the ID + room model
# sums the two (early fusion). Content encoders encode only each batch's items.
# lr 3e-3: ID-SASRec's validation NDCG@10 levels off by epoch 5-7 (at 1e-3 it still climbed at epoch 7)
DEMO_SETTINGS = ["dataset.max_seq_length=50", "train.batch_size=32", "train.lr=0.003", "loss.name=microlens_inbatch",
                 f"train.early_stopping_patience={PATIENCE}", "eval.valid_metric=ndcg@10", "eval.popularity_buckets=10"]
#: the training interactions the codes are aligned on: the demo's dataset (a recipe file for `tokenize --align`)
ALIGN_RECIPE = "dataset: {name: ml-100k, max_seq_length: 10}\n"


def ensure_text_store(path: Path) -> Path:
    """Build (or finish) the ml-100k text feature store once; later demos reuse it."""
    if (path / "meta.json").is_file():
        return path
    from cva_rec.cli.main import main as cli_main  # by command name: cva_rec never imports data_prep
    from cva_rec.data.dataset import bundled_data_path
    from cva_rec.errors import CvaRecError

    items = bundled_data_path() / "ml-100k" / "ml-100k.item"
    print(f"== building text content for ml-100k items -> {path}", flush=True)
    if cli_main(["extract-text", "--items", str(items), "--out", str(path)]) != 0:
        raise CvaRecError("could not build the ml-100k text feature store (see the message above)")
    return path


def ensure_codes(store: Path, path: Path) -> Path:
    """Tokenize the text store once (RQ-KMeans 4 x 64 after an alignment on the demo's training interactions,
    distinct codes; under a minute); later demos reuse it."""
    codes = path / "codes.npz"
    if codes.is_file():
        return codes
    from cva_rec.cli.main import main as cli_main
    from cva_rec.errors import CvaRecError

    print(f"== LUCID codes for ml-100k items (aligned, distinct) -> {path}", flush=True)
    recipe = path.parent / "ml-100k-align.yaml"
    atomic_write_text(recipe, ALIGN_RECIPE)
    if cli_main(["tokenize", str(store), "--out", str(path), "--align", str(recipe), "--align-lr", "5e-3",
                 "--align-epochs", "3", "--distinct"]) != 0:
        raise CvaRecError("could not tokenize the ml-100k text feature store (see the message above)")
    return codes


def _finished_with(metrics_json: Path, cfg, epochs: int) -> bool:
    """The variant's folder holds a finished run of exactly this config (same identity and epoch budget)."""
    import yaml

    from cva_rec.jobs.run_folder import config_id

    if not metrics_json.is_file() or not (metrics_json.parent / "config.yaml").is_file():
        return False
    done = json.loads(metrics_json.read_text())
    trained = yaml.safe_load((metrics_json.parent / "config.yaml").read_text()) or {}
    return (done.get("config_id") == config_id(cfg) and trained.get("train", {}).get("epochs") == epochs
            and done.get("epochs_trained", epochs + 1) <= epochs)


def convergence_line(runs, epochs: int) -> str:
    """How far the demo's runs are from convergence, and where the converged tables are."""
    stopped = [m for m in runs if m.get("epochs_trained", epochs) < epochs]
    best = ", ".join(f"{m['label']} {int(m.get('valid', {}).get('epoch', -1)) + 1}/{m.get('epochs_trained')}" for m in runs)
    return (f"Convergence: each run tested at its best validation NDCG@10 epoch; {len(stopped)} of {len(runs)} stopped early "
            f"(no better epoch in {PATIENCE} validations) within the {epochs}-epoch budget, the others may still be climbing "
            f"(best epoch / epochs run: {best}). One seed, no interval: the converged tables (ml-1m, early stopping, 95% intervals "
            "over users) come from `cva-rec bench compare -- --table idfree|encoders` (docs/evaluation.md); measured ones "
            "are in docs/results.md.")


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main demo: ID / Pooling / CVA / LUCID item encoders on ml-100k, print a results table and report",
        description="A small, real experiment on RecBole's bundled ml-100k (no download): trains each demo "
        "variant with the same data, seed and budget, evaluates with full ranking (history masked) and prints "
        "HR/NDCG@10/20 with seconds per epoch, peak memory and parameters, then writes the report with its "
        "plots to <out>/report/. Takes a few minutes on 2 CPU cores.",
    )
    p.add_argument("--out", default="runs/demo", help="where run directories and results.md go (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=EPOCHS,
                   help=f"most training epochs per run; each stops earlier after {PATIENCE} validations without a better "
                        "NDCG@10 (default: %(default)s)")
    p.add_argument("--only", nargs="+", metavar="LABEL", help="run only these variants (labels as printed)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every variant, e.g. --set train.limit_train_batches=10 "
                        "(a variant finished with other settings is trained again)")
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.config.schema import load_config
    from cva_rec.report.table import markdown_table, row_of
    from cva_rec.training.run import run_experiment

    out = Path(args.out)
    store = ensure_text_store(out / "stores" / "ml-100k-text")
    rows, finished = [], []
    t0 = time.perf_counter()
    for label, overrides in DEMO_RUNS:
        if args.only and label not in args.only:
            continue
        print(f"== {label}", flush=True)
        if "item_encoder.name=lucid" in overrides:
            content = [f"item_encoder.codes_path={ensure_codes(store, out / 'stores' / 'ml-100k-codes-aligned-distinct')}"]
        else:
            content = [f"content.store={store}"] if "item_encoder.name=id" not in overrides else []
        # the encoder's own options come after its name (setting item_encoder.name resets them)
        cfg = load_config(None, [*DEMO_SETTINGS, f"train.epochs={args.epochs}", f"output.dir={out}", f"output.name={label}",
                                 *overrides, *content, *args.overrides])
        done = out / label / "metrics.json"
        if _finished_with(done, cfg, args.epochs):
            print("   finished earlier, reused (delete the folder to re-train)", flush=True)
            metrics = json.loads(done.read_text())
        else:
            # the demo owns its folders: a variant trained with other settings is replaced
            metrics = run_experiment(cfg, enable_progress_bar=not args.no_progress, overwrite=True)
        rows.append({**row_of(metrics), "item_encoder": label})
        finished.append({**metrics, "label": label})
    table = markdown_table(rows, ("item_encoder", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "seconds_per_epoch", "peak_memory_mb", "parameters"))
    table += ("\n\npeak_memory_mb: the demo process's peak RSS up to that run (the variants share one process; "
              "`cva-rec sweep` trains each run in its own process for per-run peaks)\n\n" + convergence_line(finished, args.epochs))
    atomic_write_text(out / "results.md", f"# cva-rec demo (ml-100k, at most {args.epochs} epochs)\n\n{table}\n")
    from cva_rec.report.build import build_report

    report = build_report(out, out / "report", title="cva-rec demo")
    print(f"\n{table}\n\nresults: {out / 'results.md'}   report with plots: {report.files['results.md']}   "
          f"total {time.perf_counter() - t0:.0f} s")
    return 0
