"""The sections of the commands other than training: each key typed once, as in :data:`cva_rec.config.schema.SCHEMA`.

:mod:`cva_rec.config.schema` ties each section to the command that reads it (:data:`cva_rec.config.schema.JOBS`)
and loads it with the one loader (YAML file, ``base:``, ``--set``, one-line errors); docs/config.md
lists these keys with the training ones. The rules over several keys of a section are here too
(``*_CHECKS``: each raises :class:`ConfigError`). Declarations only: no torch, nothing configured.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping

from cva_rec.config.keys import Key, choice, flag, integer, listof, number, text
from cva_rec.errors import ConfigError

_DTYPES = ("float16", "float32", "bfloat16")


def _positive(default, meaning, **kw) -> Key:
    return integer(default, meaning, min=1, **kw)


# -- cva-rec train-retriever (cva_rec/retrieval/) ---------------------------------------------------------
RETRIEVER: Dict[str, Key] = {
    "context": choice("own", "history encoder of the recall stage: own = GRDR's transformer over the history, codes co-trained "
                      "from item content | reranker = the trained run retriever.reranker (its encoder is the context, its "
                      "item table is quantised into the codes; docs/retrieval.md)", ("own", "reranker")),
    "reranker": text(None, "context reranker: the trained cva_rec run directory (relative to the working directory) to use",
                     nullable=True),
    "codes_path": text(None, "null = learn multi-view codes (tokenizer co-trained with the retriever); or a codes file/folder "
                       "(e.g. `cva-rec tokenize` output: single-view RQ-KMeans codes, N_v = 1) whose paths stay fixed",
                       nullable=True),
    "views": _positive(4, "N_v: code paths per item (learned codes)"),
    "levels": _positive(3, "code levels L (learned codes; paper: M = 3)"),
    "codes": integer(64, "codes per level K (learned codes; paper: 128)", min=2),
    "code_dim": _positive(64, "width of the shared codebook / view latents"),
    "tokenizer_hidden": _positive(256, "hidden width of each view's projection and reconstruction MLP"),
    "beta": number(0.25, "commitment weight in L_RQ (Eq. 6)", ge=0.0),
    "tau": number(0.07, "initial temperature of the cosine softmax (learnable)", gt=0.0),
    "hidden": _positive(64, "retriever transformer width (divisible by retriever.heads)"),
    "layers": _positive(2, "retriever transformer blocks"),
    "heads": _positive(2, "retriever attention heads"),
    "max_len": _positive(50, "most recent history items the retriever reads"),
    "dropout": number(0.1, "retriever dropout", ge=0.0, lt=1.0),
    "use_content": flag(True, "add a projection of each item's content vector to its ID embedding in the history"),
    "align_epochs_first": integer(2, "P1 cross-modal alignment epochs at level 1 (Algorithm 1; paper 3)", min=0),
    "align_epochs": integer(1, "P1 epochs at later levels (paper 1)", min=0),
    "train_epochs": integer(3, "P2 co-training epochs per level (paper 4); fixed codes: epochs in all", min=0),
    "lr": number(1e-3, "AdamW learning rate", gt=0.0),
    "weight_decay": number(0.01, "AdamW weight decay", ge=0.0),
    "batch_size": _positive(128, "training windows per step"),
    "max_targets": _positive(2048, "(context, target) pairs per step, sampled from the windows' positions"),
    "extra_windows": integer(1, "random earlier windows per user per epoch besides the most recent", min=0),
    "ce_weight": number(1.0, "lambda_1, L_CE", ge=0.0),
    "hc_weight": number(0.5, "lambda_2, L_HC", ge=0.0),
    "rq_weight": number(1.0, "lambda_3, L_RQ", ge=0.0),
    "rec_weight": number(1.0, "lambda_4, L_Rec", ge=0.0),
    "div_weight": number(0.1, "weight of L_div, the squared cosine between views of one item", ge=0.0),
    "kmeans_iters": _positive(20, "k-means iterations of each level's codebook initialisation"),
    "device": text("cpu", "torch device for training and recall, e.g. cuda"),
}


def _heads_divide_width(cfg: Mapping[str, Any]) -> None:
    r = cfg["retriever"]
    if r["hidden"] % r["heads"]:
        raise ConfigError(f"retriever.hidden ({r['hidden']}) must divide by retriever.heads ({r['heads']})")


def _context_has_what_it_reads(cfg: Mapping[str, Any]) -> None:
    r = cfg["retriever"]
    if r["context"] == "reranker":
        if not r["reranker"]:
            raise ConfigError("retriever.context: reranker needs retriever.reranker, the trained run directory it uses")
        if r["codes_path"] is not None:
            raise ConfigError("retriever.context: reranker fits its codes on the reranker's item table; "
                              "retriever.codes_path must stay null")
    elif r["codes_path"] is None and not cfg["content"]["store"]:
        raise ConfigError("learned multi-view codes need item content: the recipe must set content.store "
                          "(or give retriever.codes_path)")


RETRIEVER_CHECKS: List[Callable[[Mapping[str, Any]], None]] = [_heads_divide_width, _context_has_what_it_reads]
#: what a retriever run reads of its recipe (its identity: :meth:`cva_rec.config.schema.Job.unread`): the data
#: (``dataset``: the split and item ids; ``content``: the item vectors), the seed and the hardware of the
#: co-training's Trainer. The model, loss, item encoder, eval and warm-up sections of the recipe serve the
#: runs it feeds, not the retriever; with ``context: reranker`` the reranker run is read by content (its
#: config.yaml and checkpoint fingerprints)
RETRIEVER_READS = ("retriever.*", "dataset.*", "content.*", "train.seed", "train.accelerator", "train.devices",
                   "train.strategy", "train.num_nodes", "train.deterministic")


# -- cva-rec retrieve (cva_rec/retrieval/two_stage.py) ----------------------------------------------------
RETRIEVE: Dict[str, Key] = {
    "retriever": text(None, "a run directory written by `cva-rec train-retriever` (same dataset as the reranker)", nullable=True),
    "beam": _positive(50, "beam width B: code paths decoded per user"),
    "candidates": _positive(200, "items kept for reranking per user"),
    "split": choice("test", "evaluate on the test targets or on the validation targets", ("test", "valid")),
    "checkpoint": text(None, "reranker checkpoint (null = RUN_DIR/checkpoints/best.ckpt)", nullable=True),
    "device": text("cpu", "torch device for both stages, e.g. cuda"),
}


# -- cva-rec tokenize (cva_rec/semantic_ids/tokenize_job.py) -----------------------------------------------
TOKENIZE: Dict[str, Key] = {
    "source": text(None, "feature store directory, or a .npy file [n, d] / [n, S, d] (the positional SOURCE of "
                   "`cva-rec tokenize`)", nullable=True),
    "levels": _positive(4, "code levels L"),
    "codes": integer(64, "codes per level N", min=2),
    "iters": _positive(25, "k-means iterations per level (epochs with tokenize.batch_size)"),
    "pca": _positive(None, "project to this many dimensions first (e.g. 128); null = none", nullable=True),
    "seed": integer(0, "random seed", min=0, max=2**32 - 1),
    "balanced": flag(False, "balanced (Sinkhorn) assignment: near-equal clusters, fewer collisions"),
    "batch_size": _positive(None, "mini-batch k-means with this batch size (large inputs); null = full batch", nullable=True),
    "device": text("cpu", "torch device, e.g. cuda"),
    "backend": choice("torch", "k-means implementation: torch | faiss", ("torch", "faiss")),
    "tie_break": choice("nearest_mean", "room-code vote tie-break: nearest_mean | smallest (docs/semantic_ids.md)",
                        ("nearest_mean", "smallest")),
    "distinct": flag(False, "append levels with a counter inside each group of items sharing a room code (base-N digits, "
                     "TIGER-style) so every item with content gets a distinct room code; slice codes get 0 there"),
    "align": text(None, "a cva_rec recipe: before quantising, train a linear projection of the content on the training "
                  "interactions of its dataset (its dataset.cold_items stay out), fit RQ-KMeans on projected segments of "
                  "items seen in training and encode every item from its content alone; null = no alignment", nullable=True),
    "align_dim": _positive(128, "with tokenize.align: projected width"),
    "align_epochs": _positive(5, "with tokenize.align: passes over the training pairs"),
    "align_batch_size": _positive(1024, "with tokenize.align: pairs per in-batch softmax"),
    "align_lr": number(1e-3, "with tokenize.align: Adam learning rate", gt=0.0),
    "align_temperature": number(0.07, "with tokenize.align: softmax temperature", gt=0.0),
}


def _tokenize_has_a_source(cfg: Mapping[str, Any]) -> None:
    if not cfg["tokenize"]["source"]:
        raise ConfigError("tokenize.source is not set: give SOURCE (a feature store directory or a .npy file)")


def _batch_holds_the_codes(cfg: Mapping[str, Any]) -> None:
    t = cfg["tokenize"]
    if t["batch_size"] is not None and t["batch_size"] < t["codes"]:
        raise ConfigError(f"tokenize.batch_size ({t['batch_size']}) must be at least tokenize.codes ({t['codes']})")
    if t["backend"] == "faiss" and (t["balanced"] or t["batch_size"] or t["device"] != "cpu"):
        raise ConfigError("tokenize.backend faiss supports neither balanced, batch_size nor a non-CPU device; use torch")


TOKENIZE_CHECKS: List[Callable[[Mapping[str, Any]], None]] = [_tokenize_has_a_source, _batch_holds_the_codes]


# -- cva-rec extract-text (data_prep/cli_text.py) ----------------------------------------------------------
EXTRACT_TEXT: Dict[str, Key] = {
    "items": text(None, "RecBole .item atomic file (first item_id:token column = item token)", nullable=True),
    "out": text(None, "feature store directory to create", nullable=True),
    "fields": listof(None, "columns to embed, in segment order (null = all but the item id)", text(None, "column"),
                     nullable=True),
    "split_fields": listof(["class", "genre", "genres", "tag", "tags", "category", "categories"], "fields giving one segment per space-separated token", text(None, "field")),
    "windows": text(None, "homogeneous segments: overlapping word windows of this field (e.g. movie_title) instead of one "
                    "segment per field / genre token", nullable=True),
    "window_words": _positive(3, "words per window with extract_text.windows"),
    "window_stride": _positive(1, "words between window starts with extract_text.windows"),
    "max_segments": _positive(8, "frames per item in the store"),
    "batch_size": _positive(256, "texts per MiniLM batch"),
    "dtype": choice("float16", "storage dtype", _DTYPES),
    "device": text("cpu", "torch device for MiniLM"),
    "overwrite": flag(False, "replace an existing store / discard an unfinished one", identity=False),
}

# -- cva-rec extract-video / prep-frames (data_prep/cli_video.py) -------------------------------------------
EXTRACT_VIDEO: Dict[str, Key] = {
    "videos": text(None, "directory of video files; item id = file name without extension", nullable=True),
    "out": text(None, "feature store directory to create (prep-frames: output directory)", nullable=True),
    "titles": text(None, "MicroLens titles CSV (videoID,title; no header): needed by sampler title", nullable=True),
    "sampler": text("mid5", "key-frame sampler (data_prep/samplers.py): mid5 | uniform | random | title | codec (codec: "
                    "I-frames always, then the candidates with the most codec motion + residual; falls back to uniform "
                    "for intra-only videos)"),
    "n_frames": _positive(5, "key frames per video, N"),
    "seed": integer(0, "seed of the random sampler and of title corruptions", min=0),
    "clip_checkpoint": text(None, "local CLIP for sampler title: a transformers CLIP directory, or an open_clip weights file",
                            nullable=True),
    "clip_model_name": text(None, "open_clip architecture name for a weights file (e.g. ViT-B-32)", nullable=True),
    "title_mode": choice("clean", "title setting for sampler title (CVA Table 7)", ("clean", "none", "noisy", "mismatched", "masked")),
    "noise_std": number(0.05, "title_mode noisy: std of the Gaussian noise per text-embedding component", ge=0.0),
    "mask_ratio": number(0.5, "title_mode masked: share of title words removed", ge=0.0, le=1.0),
    "short_side": _positive(224, "decode-time resize of the frames' short side, pixels"),
    "decode_method": choice("sequential", "sequential (one decode pass, fast) | seek (per-frame seeks)", ("sequential", "seek")),
    "encoder": text("efficientnet_lite0", "frame encoder: efficientnet_lite0 | dinov2 | dinov3 | vit | clip | timm, or a "
                    "video-level embedder: gve | qwen2_vl (one vector per video/segment)"),
    "checkpoint": text(None, "local checkpoint of the frame encoder (all but efficientnet_lite0 need one)", nullable=True),
    "segments": _positive(1, "encoder gve | qwen2_vl: vectors per video, the chosen frames cut into this many contiguous segments"),
    "instruction": text(None, "encoder gve | qwen2_vl: text after the video in the prompt (null = 'Represent the given video.')",
                        nullable=True),
    "model_name": text(None, "timm model name (encoder timm)", nullable=True),
    "dtype": choice("float16", "storage dtype", _DTYPES),
    "batch_items": _positive(8, "videos per store write / resume checkpoint"),
    "batch_size": _positive(32, "frames per encoder forward"),
    "device": text("cpu", "torch device"),
    "overwrite": flag(False, "replace an existing store / discard an unfinished one", identity=False),
    "quiet": flag(False, "no progress bar", identity=False),
    "num_workers": integer(0, "DataLoader worker processes that decode (PyAV) while the main process encodes; 0 = decode in "
                           "the main process", min=0, identity=False),
    "shard_index": text(None, "extract only this shard (0-based) of num_shards round-robin shares of the sorted video list, "
                        "into <out>.shards/shard-IIIII-of-CCCCC; 'auto' reads the launcher's environment (SLURM, torchrun)",
                        nullable=True, rule=lambda v: None if v == "auto" or v.isdigit() else "must be an integer >= 0 or auto"),
    "num_shards": _positive(None, "number of shards (with an integer shard_index)", nullable=True),
    "patch_tokens": flag(False, "write a codec patch-token store (needs sampler codec): all patches of up to i_frame_share of "
                         "the budget of I-frames, then the most salient patches of the other chosen frames"),
    "token_budget": _positive(256, "patch tokens per video"),
    "patch_ratio": number(0.25, "most patches kept per inter frame, as a share of its grid (paper: 3-25%)", gt=0.0, le=1.0),
    "i_frame_share": number(0.25, "share of the token budget for whole I-frames, at least one", ge=0.0, le=1.0),
}

# -- cva-rec bench (cva_rec/cli/bench.py) -------------------------------------------------------------------
#: `cva-rec bench NAME` -> the module it runs (in cva_rec.benchmarks unless dotted); names only, nothing imported
BENCHMARK_MODULES = {
    "fidelity": "bench_fidelity",
    "extract": "data_prep.bench_extract",  # the offline pipeline's own (cva_rec never imports data_prep)
    "encoders": "bench_encoders",
    "tokenize": "bench_tokenize",
    "retrieval": "bench_retrieval",
    "scale": "bench_scale",
    "fast-path": "bench_fast_path",
    "codes": "bench_codes",
    "idfree": "bench_idfree",
    "compare": "bench_compare",
    "eval": "bench_eval",
    "gpu": "bench_gpu",
}
BENCH: Dict[str, Key] = {
    "name": choice(None, "the benchmark to run; its own options follow `--` (`cva-rec bench NAME -- --help`)",
                   sorted(BENCHMARK_MODULES)),
}
