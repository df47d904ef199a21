"""``cva-rec retrieve``: generative recall + dense rerank of a trained run (two-stage evaluation)."""
from __future__ import annotations

import json
from pathlib import Path

from cva_rec.config.jobs import RETRIEVE


def register(sub) -> None:
    p = sub.add_parser(
        "retrieve",
        help="two-stage evaluation: a generative retriever recalls candidates, a trained run reranks them",
        description="The retriever (a `cva-rec train-retriever` run) decodes each evaluated user's top BEAM code paths by "
        "trie-constrained beam search; the paths' items (history dropped, target kept) are cut to CANDIDATES and the "
        "trained run RUN_DIR scores only those, with its history masked as in full ranking. Writes "
        "RUN_DIR/retrieve_<split>_<ckpt>_<retriever>_b<BEAM>_c<CANDIDATES>.json (holding RUN_DIR's lock: a folder a "
        "training run or another evaluation is writing is refused; --out DIR writes elsewhere): the metrics of "
        "`cva-rec evaluate` (a target that was not recalled counts as a miss), plus `candidates` (recall@K of the "
        "candidate set), `timings` (ms per user of recall, mapping and rerank) and `provenance` (both runs' config "
        "identities and the fingerprints of the files read). A retriever fitted with retriever.context: reranker reads "
        "RUN_DIR's own user state (one encoder pass for both stages) and is refused with any other run. "
        "See docs/retrieval.md.",
    )
    p.add_argument("run_dir", help="the reranker: a run directory written by `cva-rec train`")
    p.add_argument("--retriever", required=True, help="a run directory written by `cva-rec train-retriever` (same dataset)")
    # defaults are the schema's (docs/config.md, section retrieve); values are checked there
    p.add_argument("--beam", type=int, default=RETRIEVE["beam"].default,
                   help="beam width B: code paths decoded per user (default: %(default)s)")
    p.add_argument("--candidates", type=int, default=RETRIEVE["candidates"].default,
                   help="items kept for reranking per user (default: %(default)s)")
    p.add_argument("--split", choices=RETRIEVE["split"].choices, default=RETRIEVE["split"].default,
                   help="evaluate on the test targets or on the validation targets (default: %(default)s)")
    p.add_argument("--checkpoint", help="reranker checkpoint (default: RUN_DIR/checkpoints/best.ckpt)")
    p.add_argument("--device", default=RETRIEVE["device"].default,
                   help="torch device for both stages, e.g. cuda (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key of the reranker's config, e.g. eval.batch_size=512")
    p.add_argument("--out", metavar="DIR", help="write the result into DIR instead of RUN_DIR (a read-only run folder, "
                   "or one a training run is writing)")
    p.set_defaults(func=run)


def run(args) -> int:
    from cva_rec.config.schema import validate_section
    from cva_rec.retrieval.two_stage import retrieve_run

    s = validate_section("retrieve", {k: getattr(args, k) for k in RETRIEVE}, "cva-rec retrieve")
    result, out = retrieve_run(Path(args.run_dir), Path(s["retriever"]), s["beam"], s["candidates"], s["split"],
                               s["checkpoint"], args.overrides, s["device"], Path(args.out) if args.out else None)
    summary = {k: v for k, v in result.items() if not isinstance(v, dict)}
    print(json.dumps({**summary, "candidates": result["candidates"], "timings": result["timings"], "written": str(out)}, indent=2))
    return 0
