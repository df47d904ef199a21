"""``cva-rec tokenize``: content vectors -> RQ-KMeans tokenizer + slice/room codes + diagnostics.

The pipeline is :mod:`cva_rec.semantic_ids.tokenize_job`; its settings are the ``tokenize`` section of
the one config schema. This file maps the command line onto it: ``-c FILE`` (sections ``tokenize``,
``output``), then SOURCE and the options (``--levels 3`` is ``--set tokenize.levels=3``), then ``--set``.
"""
from __future__ import annotations

from cva_rec.cli.common import add_key_options, add_set_arg, given_keys
from cva_rec.config.jobs import TOKENIZE

RQ_OPTIONS = ("levels", "codes", "iters", "pca", "seed", "balanced", "batch_size", "device", "backend", "tie_break", "distinct")
ALIGN_OPTIONS = ("align", "align_dim", "align_epochs", "align_batch_size", "align_lr", "align_temperature")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tokenize",
        help="fit RQ-KMeans semantic IDs (LUCID) on content vectors; write tokenizer, slice/room codes, diagnostics",
        description="Residual k-means over L levels x N codes (FLUID sec. 3.2) on every content segment of a "
        "feature store (or a .npy array), then slice codes per segment, room codes by per-level majority vote, "
        "and a diagnostics table (unique codes, collisions, utilisation, perplexity, quantisation error). "
        "--distinct appends collision-resolving levels so every item gets its own room code; --align RECIPE first "
        "projects the content with a map trained on that recipe's training interactions (held-out items excluded). "
        "OUT is claimed like a training run folder (a lock while it runs; the same settings may run again and replace "
        "their files, other settings are refused unless --overwrite). Outputs: OUT/config.yaml, OUT/tokenizer.pt, "
        "OUT/codes.npz, OUT/diagnostics.json (+ OUT/alignment.pt with --align), and last OUT/metrics.json. "
        "Every option is a key of the `tokenize` section (docs/config.md).",
    )
    p.add_argument("source", nargs="?", default=None, help="feature store directory, or a .npy file [n, d] / [n, S, d] "
                   "(tokenize.source)")
    p.add_argument("--out", default=None, help="output (run) folder (default: output.dir/output.name of the config)")
    p.add_argument("-c", "--config", default=None, help="tokenize settings YAML (sections tokenize, output)")
    add_set_arg(p, "--set tokenize.levels=3 --set tokenize.balanced=true")
    p.add_argument("--overwrite", action="store_true", help="replace a run of other settings that OUT holds")
    add_key_options(p, "tokenize", TOKENIZE, RQ_OPTIONS)
    add_key_options(p.add_argument_group("collaborative alignment (cva_rec/semantic_ids/alignment.py)"), "tokenize", TOKENIZE,
                    ALIGN_OPTIONS)
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.config.schema import load_config
    from cva_rec.semantic_ids.diagnostics import format_table
    from cva_rec.semantic_ids.tokenize_job import run_tokenize, tokenize_folder

    given = given_keys(args, "tokenize", TOKENIZE)
    if args.source is not None:
        given["tokenize"]["source"] = args.source
    cfg = load_config(args.config, args.overrides, given, job="tokenize")
    out = tokenize_folder(cfg, args.out)
    result = run_tokenize(cfg, out, overwrite=args.overwrite)
    print(format_table(result["slice"], f"slice codes ({result['n_slices']} segments), fit {result['fit_seconds']:.1f} s"))
    print()
    extra_note = f", {result['extra_levels']} collision-resolving level(s) appended" if cfg["tokenize"]["distinct"] else ""
    print(format_table(result["room"], f"room codes ({result['items_with_content']} items with content{extra_note})"))
    print(f"\nwrote {out / 'tokenizer.pt'}, {out / 'codes.npz'}, {out / 'diagnostics.json'}, {out / 'metrics.json'}")
    return 0
