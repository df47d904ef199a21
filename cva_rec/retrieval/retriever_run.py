"""A retriever run directory: train it from a retriever recipe, load it back for recall.

A retriever recipe is read by ``load_config(path, job="retriever")`` (:data:`cva_rec.config.schema.JOBS`):
the sections of a cva_rec recipe (dataset, content, seed: the data the retriever serves) plus
``retriever``. The run folder is claimed like a training run's (:mod:`cva_rec.jobs.run_folder`: a lock
while it runs; one config per folder, whose identity is only what the retriever reads of the recipe,
:data:`cva_rec.config.jobs.RETRIEVER_READS`; ``--set train.resume=true`` continues a stopped co-training
from ``checkpoints/last.ckpt``) and holds ``config.yaml`` (the resolved retriever config),
``retriever.pt`` (weights), ``codes.npz`` (every item's code paths per view, ``MultiViewCodes``,
rows = the dataset's internal ids), ``checkpoints/last.ckpt`` and ``tb/`` of the co-training (a fit of the
training runs' Trainer, :func:`cva_rec.retrieval.cotrain.cotrain`) and, last, ``metrics.json`` (per-epoch
losses, code diagnostics per view, trie size, seconds, the config identity).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
import yaml

import cva_rec
from cva_rec.config.schema import load_config
from cva_rec.errors import CheckpointError, ConfigError
from cva_rec.io import atomic_torch_save, load_torch_file
from cva_rec.retrieval.cotrain import CotrainSettings, cotrain
from cva_rec.retrieval.generative_retriever import GenerativeRetriever
from cva_rec.retrieval.grdr import GRDR
from cva_rec.retrieval.multiview_codes import MultiViewCodes
from cva_rec.retrieval.multiview_tokenizer import MultiViewTokenizer, SharedCodebook
from cva_rec.retrieval.reranker_context import RerankerContextRetriever, fit_table_codes, table_fingerprint
from cva_rec.retrieval.trie import CodeTrie
from cva_rec.jobs.run_folder import RunClaim, claim_run_folder

log = logging.getLogger(__name__)
FORMAT = "cva_rec.grdr_retriever"


def load_retriever_recipe(path: Optional[str | Path], overrides=(), extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """A retriever recipe (or a retriever run's ``config.yaml``), validated by the one schema."""
    return load_config(path, overrides, extra, job="retriever")


def cotrain_settings(cfg: Mapping[str, Any]) -> CotrainSettings:
    r = cfg["retriever"]
    return CotrainSettings(**{k: r[k] for k in CotrainSettings.__dataclass_fields__ if k in r}, seed=int(cfg["train"]["seed"]))


def run_dir_for(cfg: Mapping[str, Any]) -> Path:
    """``output.dir/output.name``, or ``output.dir/<dataset>-<grdr|ctx>-v<views>-s<seed>``."""
    r = cfg["retriever"]
    views = 1 if r["codes_path"] else r["views"]
    kind = "ctx" if r["context"] == "reranker" else "grdr"
    return Path(cfg["output"]["dir"]) / (cfg["output"]["name"] or f"{cfg['dataset']['name']}-{kind}-v{views}-s{cfg['train']['seed']}")


RESUME_HINT = "--set train.resume=true continues it"


def retriever_config_id(cfg: Mapping[str, Any]) -> str:
    """A retriever run's identity (its ``metrics.json`` ``config_id``): what it reads of its recipe only."""
    from cva_rec.config.schema import JOBS
    from cva_rec.jobs.run_folder import config_id

    return config_id(cfg, JOBS["retriever"].unread())


def claim_retriever_folder(run_dir: Path, cfg: Mapping[str, Any], overwrite: bool = False) -> RunClaim:
    """Lock ``run_dir`` for this retriever config: another config is refused, and so is a run of this one unless
    ``train.resume`` continues it (from ``checkpoints/last.ckpt``; a finished one is left as it is)."""
    return claim_run_folder(run_dir, cfg, overwrite=overwrite, job="retriever", resume_hint=RESUME_HINT,
                            elsewhere="another output.name / --out")


def finished_metrics(claim: RunClaim) -> Dict[str, Any]:
    """A resumed retriever run that had finished: its ``metrics.json``, the folder left as it is."""
    import json

    log.info("%s: the run had finished; nothing to train (its metrics.json is kept)", claim.run_dir)
    return json.loads((claim.run_dir / "metrics.json").read_text(encoding="utf-8"))


def content_vectors(cfg: Mapping[str, Any], data) -> Optional[torch.Tensor]:
    """Each item's mean content vector [n_items, d], standardised over the items (row 0: zeros), or None."""
    if not cfg["content"]["store"]:
        return None
    from cva_rec.training.run import load_content

    content = load_content(cfg, data)
    out = torch.zeros(content.n_items, content.dim)
    for start in range(0, content.n_items, 8192):
        ids = torch.arange(start, min(start + 8192, content.n_items))
        frames, mask, _ = content.gather(ids)
        w = mask.float()[..., None]
        out[ids] = (frames * w).sum(1) / w.sum(1).clamp_min(1.0)
    # standardised per dimension over the items: sentence/frame embeddings share a large common
    # direction, and an MLP on raw vectors maps every item near one point (one code for all)
    body = out[1:]
    out[1:] = (body - body.mean(0)) / body.std(0).clamp_min(1e-6)
    return out


def build_grdr(r: Mapping[str, Any], n_items: int, content: Optional[torch.Tensor], fixed: Optional[MultiViewCodes]) -> GRDR:
    """The model a ``retriever`` section describes."""
    if fixed is not None:
        codebook = SharedCodebook(fixed.levels, fixed.n_codes, r["code_dim"], r["tau"])
        tokenizer = None
    else:
        codebook = SharedCodebook(r["levels"], r["codes"], r["code_dim"], r["tau"])
        tokenizer = MultiViewTokenizer(content.shape[1], codebook, r["views"], r["tokenizer_hidden"], r["beta"])
    content_dim = content.shape[1] if (content is not None and r["use_content"]) else None
    retriever = GenerativeRetriever(n_items, codebook.dim, codebook.levels, content_dim, r["hidden"], r["layers"], r["heads"],
                                    r["max_len"], r["dropout"])
    return GRDR(codebook, retriever, tokenizer, None if fixed is None else fixed.codes, content)


def _fixed_codes(r, data) -> Optional[MultiViewCodes]:
    path = r["codes_path"]
    return None if path is None else MultiViewCodes.load(path).for_dataset(data.item_tokens)


def code_report(codes: MultiViewCodes, trie: CodeTrie) -> Dict[str, Any]:
    from cva_rec.semantic_ids.diagnostics import code_diagnostics

    per_view = {name: code_diagnostics(codes.codes[1:, v], None, codes.n_codes) for v, name in enumerate(codes.view_names)}
    c = codes.codes[1:]
    same = [(c[:, a] == c[:, b]).all(1).float().mean().item() for a in range(codes.views) for b in range(a + 1, codes.views)]
    return {
        "views": codes.views, "levels": codes.levels, "n_codes": codes.n_codes,
        "per_view": {k: {"unique_fraction": v["unique_fraction"], "collision_rate": v["collision_rate"],
                         "largest_collision_group": v["largest_collision_group"]} for k, v in per_view.items()},
        "same_path_across_views": float(np.mean(same)) if same else None,
        "trie_paths": trie.n_paths, "trie_bytes": trie.nbytes(), "trie_bytes_per_item": trie.nbytes() / max(trie.n_items, 1),
    }


def build_trie(codes: MultiViewCodes) -> CodeTrie:
    """The trie of every real item's paths (row 0, the padding item, left out)."""
    return CodeTrie.build(codes.codes[1:], codes.n_codes, items=np.arange(1, codes.n_items))


def train_retriever(cfg: Mapping[str, Any], run_dir: Path, data=None, reranker_module=None, overwrite: bool = False) -> Dict[str, Any]:
    """Train the retriever a recipe (:func:`load_retriever_recipe`) describes into ``run_dir``, claimed
    first (:func:`claim_retriever_folder`; ``overwrite`` replaces a run it holds).
    ``data`` / ``reranker_module``: already loaded (the dataset; for ``context: reranker`` the module
    of ``retriever.reranker`` with its checkpoint), to skip loading them again."""
    from cva_rec.data.dataset import build_data

    if cfg["retriever"]["context"] == "reranker":
        return _fit_reranker_context(cfg, run_dir, data, reranker_module, overwrite)
    r = cfg["retriever"]
    s = cotrain_settings(cfg)
    with claim_retriever_folder(run_dir, cfg, overwrite) as claim:
        if claim.nothing_to_train:
            return finished_metrics(claim)
        t0 = time.perf_counter()
        data = data or build_data(cfg)
        content = content_vectors(cfg, data)
        fixed = _fixed_codes(r, data)
        claim.commit_config()  # data, content and codes read: the folder now says which config it holds
        torch.manual_seed(s.seed)
        model = build_grdr(r, data.n_items, content, fixed)
        if fixed is not None:
            model.codebook.freeze_below(0)
        hist = data.valid_history  # items before each user's validation target: the training part
        device = r["device"]
        records = cotrain(model, hist.indptr, hist.items, s, device, run_dir=run_dir, train=cfg["train"], resume=claim.resume)
        model.eval()
        codes = MultiViewCodes(model.item_codes().cpu(), model.codebook.codes, data.item_tokens,
                               list(fixed.view_names) if fixed is not None else [])
        codes.codes[0] = -1  # the padding item has no path
        codes.save(run_dir / "codes.npz")
        trie = build_trie(codes)
        atomic_torch_save({"format": FORMAT, "state_dict": model.state_dict(), "n_items": data.n_items,
                           "content_dim": None if content is None else content.shape[1]}, run_dir / "retriever.pt")
        return claim.write_metrics({
            "run": run_dir.name, "kind": "retriever", "dataset": cfg["dataset"]["name"], "seed": cfg["train"]["seed"],
            "mode": "fixed" if fixed is not None else "learned", "codes": code_report(codes, trie), "epochs": records,
            "total_seconds": round(time.perf_counter() - t0, 2), "parameters": sum(p.numel() for p in model.parameters()),
            "cva_rec_version": cva_rec.__version__})


def reranker_item_table(module) -> torch.Tensor:
    """The rows the reranker's full ranking multiplies with (its encoder's all-items table, eval mode)."""
    module.eval()
    with torch.no_grad():
        return module.model.item_embedding.weight.detach().float().cpu()


def with_reranker_data(cfg: Mapping[str, Any]) -> tuple[Dict[str, Any], Path]:
    """``context: reranker``: (the retriever config with the reranker run's own recipe sections, so recall
    and rerank read one dataset split; the reranker's checkpoint)."""
    from cva_rec.training.evaluate import run_config_and_checkpoint

    r = cfg["retriever"]
    own, ckpt = run_config_and_checkpoint(Path(r["reranker"]))
    if own["dataset"]["name"] != cfg["dataset"]["name"]:
        raise ConfigError(f"retriever recipe is for {cfg['dataset']['name']!r}, reranker {r['reranker']} "
                          f"was trained on {own['dataset']['name']!r}")
    merged = {**{k: v for k, v in own.items() if k != "output"}, "retriever": dict(r), "output": dict(cfg["output"])}
    return load_retriever_recipe(None, extra=merged), ckpt


def _fit_reranker_context(cfg: Mapping[str, Any], run_dir: Path, data=None, module=None, overwrite: bool = False) -> Dict[str, Any]:
    """``context: reranker``: RQ-KMeans codes of the trained reranker's item table (``reranker_context.py``)."""
    from cva_rec.training.evaluate import load_trained_module

    cfg, ckpt = with_reranker_data(cfg)
    r = cfg["retriever"]
    with claim_retriever_folder(run_dir, cfg, overwrite) as claim:
        if claim.nothing_to_train:
            return finished_metrics(claim)
        t0 = time.perf_counter()
        if module is None or data is None:
            data, module = load_trained_module(cfg, ckpt)
        table = reranker_item_table(module)
        claim.commit_config()
        centroids, item_codes = fit_table_codes(table, r["levels"], r["codes"], r["views"], int(cfg["train"]["seed"]),
                                                r["kmeans_iters"])
        codes = MultiViewCodes(item_codes, r["codes"], data.item_tokens, [])
        codes.save(run_dir / "codes.npz")
        fingerprint = table_fingerprint(table)
        atomic_torch_save({"format": FORMAT, "context": "reranker", "centroids": centroids, "table_sha256": fingerprint,
                           "n_items": data.n_items, "content_dim": None, "checkpoint": str(ckpt)}, run_dir / "retriever.pt")
        recon = sum(centroids[level][item_codes[1:, 0, level]] for level in range(r["levels"]))
        rel_error = float(((table[1:] - recon).norm(dim=1) / table[1:].norm(dim=1).clamp_min(1e-12)).mean())
        return claim.write_metrics({
            "run": run_dir.name, "kind": "retriever", "dataset": cfg["dataset"]["name"], "seed": cfg["train"]["seed"],
            "mode": "reranker", "reranker": str(r["reranker"]), "checkpoint": str(ckpt), "table_sha256": fingerprint,
            "codes": code_report(codes, build_trie(codes)), "view0_relative_reconstruction_error": rel_error,
            "total_seconds": round(time.perf_counter() - t0, 2), "parameters": 0, "cva_rec_version": cva_rec.__version__})


def read_retriever_config(run_dir: Path) -> Dict[str, Any]:
    """A retriever run's ``config.yaml``, validated (a folder written in the older nested layout, with the
    data recipe under ``recipe:``, is read too)."""
    path = run_dir / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as a retriever run config ({exc})") from None
    if not isinstance(raw, dict) or "retriever" not in raw:
        raise ConfigError(f"{path} is not a retriever run config (no retriever section)")
    if isinstance(raw.get("recipe"), dict):  # nested layout: {recipe: <data recipe>, retriever, output}
        raw = {**{k: v for k, v in raw.pop("recipe").items() if k != "output"}, **raw}
    return load_retriever_recipe(None, extra=raw)


def load_retriever(run_dir: Path, data) -> tuple[GRDR | RerankerContextRetriever, Dict[str, Any], MultiViewCodes]:
    """(model in eval mode, its run config (recipe sections + ``retriever``), its item codes aligned to ``data``)."""
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "retriever.pt").is_file():
        raise ConfigError(f"{run_dir} is not a retriever run directory (needs config.yaml and retriever.pt; "
                          "train one with `cva-rec train-retriever`)")
    rc = read_retriever_config(run_dir)
    r = rc["retriever"]
    state = load_torch_file(run_dir / "retriever.pt", "retriever checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{run_dir / 'retriever.pt'}: not a cva_rec retriever checkpoint")
    if state["n_items"] != data.n_items:
        raise ConfigError(f"retriever {run_dir} was trained on {state['n_items']} items, the dataset has {data.n_items}: "
                          "retriever and reranker must use the same dataset and filters")
    codes = MultiViewCodes.load(run_dir / "codes.npz").for_dataset(data.item_tokens)
    if state.get("context") == "reranker":
        return RerankerContextRetriever(state["centroids"], state["table_sha256"]).eval(), rc, codes
    content = content_vectors(rc, data) if state["content_dim"] else None
    fixed = codes if r["codes_path"] is not None else None
    model = build_grdr(r, data.n_items, content, fixed)
    from cva_rec.training.checkpoint_io import check_fits  # lightning, imported when needed

    check_fits(model, state["state_dict"], run_dir / "retriever.pt", what="retriever checkpoint")
    model.load_state_dict(state["state_dict"], strict=False)
    model.eval()
    return model, rc, codes
