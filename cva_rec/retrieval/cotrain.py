"""Progressive co-training of the multi-view tokenizer and the generative retriever (GRDR Algorithm 1).

For each codebook level ``m = 1..L``: freeze the codebooks of the earlier levels; **P1 alignment**
(``align_epochs``): ``L_CL`` (Eq. 9) pulls the view latent ``z_v`` of each training target towards
the retriever's cumulative decoder feature ``h^(m)`` of its context, against the batch's other
targets, plus ``L_HC`` (Eq. 10) for ``m > 1``; then the level-``m`` codebook starts from k-means on
the residuals of every item's views; **P2 co-training** (``train_epochs``): Eq. 12,
``l1 L_CE + l2 L_HC + l3 L_RQ + l4 L_Rec`` (+ ``l_div L_div``).

Recommendation has no text queries: the "query" of a (history, next item) pair is the user's
context, and the paper's query intents (k-means clusters of a video's queries, one per view) become
an online hard assignment: each pair trains the view whose latent is closest to its context in
``L_CL``, so each view is pulled towards the users that reach the item through it.

**Every view is a valid target**: the retriever's likelihood of an item is the marginal over its
views, ``P(item | u) = sum_v P(path_v | u)``. Its gradient is ``sum_v w_v grad log P(path_v | u)``
with ``w_v`` the posterior of view ``v`` (detached), which splits exactly into the paper's two
terms: ``L_CE`` on level ``m`` and ``L_HC`` on the levels before it, both weighted by ``w_v``.
In fixed-codes mode (single-view RQ-KMeans codes) there is no tokenizer: the loss is that
marginal over all levels at once.

The whole schedule is one fit of the training runs' Lightning Trainer (:mod:`cva_rec.training.loop_fit`:
progress, ``checkpoints/last.ckpt``, signals, DDP, anomaly detection off); each epoch's windows, their
order, the steps' target subsamples and dropout are seeded by ``(seed, epoch)`` (and the DDP rank).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from cva_rec.retrieval.grdr import GRDR
from cva_rec.retrieval.multiview_tokenizer import MultiViewTokenizer
from cva_rec.retrieval.sequences import training_windows
from cva_rec.training.loop_fit import EpochBatches, epoch_generators, epoch_seed, fit_loop, loop_config

log = logging.getLogger(__name__)


@dataclass
class CotrainSettings:
    align_epochs_first: int = 2  # P1 epochs at level 1 (paper: 3)
    align_epochs: int = 1  # P1 epochs at later levels (paper: 1)
    train_epochs: int = 3  # P2 epochs per level (paper: 4)
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 128  # training windows per step
    max_targets: int = 2048  # (context, target) pairs per step, sampled from the windows' positions
    extra_windows: int = 1  # random earlier windows per user per epoch, besides the most recent one
    max_len: int = 50
    ce_weight: float = 1.0  # lambda_1
    hc_weight: float = 0.5  # lambda_2
    rq_weight: float = 1.0  # lambda_3
    rec_weight: float = 1.0  # lambda_4
    div_weight: float = 0.1  # L_div (ours: explicit anti-collapse term)
    kmeans_iters: int = 20
    seed: int = 0


def _pairs(model: GRDR, windows: torch.Tensor, lengths: torch.Tensor, max_targets: int, gen: torch.Generator):
    """Windows -> (user contexts [N, H], targets [N]) at every position that has a next item."""
    inp, tgt = windows[:, :-1], windows[:, 1:]
    states = model.retriever.sequence_states(inp, model.content)
    valid = tgt > 0
    u, targets = states[valid], tgt[valid]
    if len(targets) > max_targets:
        pick = torch.randperm(len(targets), generator=gen)[:max_targets].to(targets.device)
        u, targets = u[pick], targets[pick]
    return u, targets


def _path_log_probs(model: GRDR, u: torch.Tensor, codes: torch.Tensor, upto: int) -> torch.Tensor:
    """log P(c_l | c_<l, u) of each view's path, levels 0..upto-1: codes [N, V, >=upto] -> [N, V, upto]."""
    n, v = codes.shape[:2]
    u_rep = u[:, None, :].expand(-1, v, -1).reshape(n * v, -1)
    flat = codes.reshape(n * v, -1)
    out = [model.retriever.level_log_probs(u_rep, flat[:, :level], model.codebook).gather(1, flat[:, level:level + 1])
           for level in range(upto)]
    return torch.cat(out, 1).reshape(n, v, upto)


def _cumulative_features(model: GRDR, u: torch.Tensor, codes: torch.Tensor, upto: int) -> torch.Tensor:
    """h^(m) = sum_{l<=m} h_l along each view's path prefix: [N, V, dim] (m = upto - 1)."""
    n, v = codes.shape[:2]
    u_rep = u[:, None, :].expand(-1, v, -1).reshape(n * v, -1)
    flat = codes.reshape(n * v, -1)
    h = sum(model.retriever.level_feature(u_rep, flat[:, :level], model.codebook) for level in range(upto))
    return h.reshape(n, v, -1)


def contrastive_alignment(h: torch.Tensor, z: torch.Tensor, inverse: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """L_CL (Eq. 9) with the hard view assignment: h [N, V, d] cumulative decoder features along
    each view, z [n_t, V, d] the batch's target latents, inverse [N] -> row of each pair's target."""
    hn, zn = F.normalize(h, dim=-1), F.normalize(z, dim=-1)
    own = (hn * zn[inverse]).sum(-1)  # [N, V]
    view = own.argmax(1).detach()  # the view that serves this context best
    h_sel = hn[torch.arange(len(view), device=h.device), view]  # [N, d]
    logits = torch.einsum("nd,jvd->njv", h_sel, zn).gather(2, view[:, None, None].expand(-1, zn.shape[0], 1)).squeeze(2)
    return F.cross_entropy(logits / tau, inverse)


def batch_loss(model: GRDR, s: CotrainSettings, windows, lengths, level: int, phase: str, gen) -> Dict[str, torch.Tensor]:
    u, targets = _pairs(model, windows, lengths, s.max_targets, gen)
    uniq, inverse = torch.unique(targets, return_inverse=True)
    out: Dict[str, torch.Tensor] = {}
    if model.tokenizer is None:  # fixed codes: the marginal likelihood of all levels
        lp = _path_log_probs(model, u, model.fixed_codes[uniq][inverse], model.codebook.levels).sum(-1)
        out["ce"] = -torch.logsumexp(lp, 1).mean()
        out["total"] = out["ce"]
        return out
    f = model.content[uniq]
    z = model.tokenizer.encode(f)
    if phase == "align":
        q = MultiViewTokenizer.quantise(z, model.codebook, level)
        codes = q.codes[inverse]
        h = _cumulative_features(model, u, codes, level + 1)  # h^(m) along each view's prefix c_<m
        out["cl"] = contrastive_alignment(h, z, inverse, model.codebook.tau)
        total = out["cl"]
        if level:
            lp = _path_log_probs(model, u, codes, level)
            w = torch.softmax(lp.sum(-1), 1).detach()
            tok = model.tokenizer.losses(f, z, q, model.codebook, level)
            out["hc"] = -(w * lp.sum(-1)).sum(1).mean() + tok["hc_tok"]
            total = total + s.hc_weight * out["hc"]
        out["total"] = total
        return out
    q = MultiViewTokenizer.quantise(z, model.codebook, level + 1)
    lp = _path_log_probs(model, u, q.codes[inverse], level + 1)  # [N, V, level + 1]
    w = torch.softmax(lp.sum(-1), 1).detach()  # posterior of each view: every view is a valid target
    tok = model.tokenizer.losses(f, z, q, model.codebook, level)
    out["ce"] = -(w * lp[..., level]).sum(1).mean()
    out["hc"] = -(w * lp[..., :level].sum(-1)).sum(1).mean() + tok["hc_tok"]
    out["rq"], out["rec"], out["div"] = tok["rq"], tok["rec"], tok["div"]
    out["total"] = (s.ce_weight * out["ce"] + s.hc_weight * out["hc"] + s.rq_weight * out["rq"]
                    + s.rec_weight * out["rec"] + s.div_weight * out["div"])
    return out


@torch.no_grad()
def init_codebook_level(model: GRDR, level: int, s: CotrainSettings) -> None:
    """Algorithm 1, line 10: C^(m) <- k-means on the residuals r^(m) of every item's views."""
    from cva_rec.semantic_ids.rq_kmeans import RQKMeans

    z = model.tokenizer.encode(model.content[1:])
    q = MultiViewTokenizer.quantise(z, model.codebook, level)
    residual = (z - q.z_hat).reshape(-1, z.shape[-1])
    km = RQKMeans(levels=1, codes=model.codebook.codes, iters=s.kmeans_iters, seed=s.seed + level,
                  device=str(residual.device)).fit(residual)
    model.codebook.books[level].data.copy_(km.centroids[0].to(residual.device))


def schedule(model: GRDR, s: CotrainSettings) -> List[tuple]:
    """(level, phase, epoch within the phase) of each training epoch, in Algorithm 1's order (levels from 0)."""
    if model.tokenizer is None:
        return [(model.codebook.levels - 1, "train", e) for e in range(s.train_epochs)]
    return [(level, phase, e) for level in range(model.codebook.levels)
            for phase, n in (("align", s.align_epochs_first if level == 0 else s.align_epochs), ("train", s.train_epochs))
            for e in range(n)]


class _WindowBatches:
    """One epoch's batches of training windows: ``order`` split into ``batch_size`` rows, indexed on demand."""

    def __init__(self, windows: torch.Tensor, lengths: torch.Tensor, order: torch.Tensor, batch_size: int):
        self.windows, self.lengths, self.parts = windows, lengths, order.split(batch_size)

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, i: int):
        idx = self.parts[i]
        return self.windows[idx], self.lengths[idx]


class CotrainFit(L.LightningModule):
    """Algorithm 1 as one Lightning fit: epoch ``e`` is ``schedule[e]``; at its start the codebooks below its
    level are frozen and any level whose P1 alignment is over gets its k-means initialisation. One AdamW over
    every parameter for the whole fit (frozen ones keep their state and skip updates: no gradient)."""

    def __init__(self, model: GRDR, s: CotrainSettings):
        super().__init__()
        self.model, self.s = model, s
        self.plan = schedule(model, s)
        self.records: List[dict] = []
        self.initialised = 0  # levels whose codebook came from k-means (Algorithm 1, line 10)
        self._sums: Dict[str, float] = {}
        self._steps, self._t0, self._pair_gen = 0, 0.0, None

    def configure_optimizers(self):
        return torch.optim.AdamW(list(self.model.parameters()), lr=self.s.lr, weight_decay=self.s.weight_decay)

    def initialise_codebooks(self, upto: int) -> None:
        """k-means initialisation of every level below ``upto`` not initialised yet (learned codes only)."""
        while self.model.tokenizer is not None and self.initialised < upto:
            init_codebook_level(self.model, self.initialised, self.s)
            self.initialised += 1

    def on_train_epoch_start(self) -> None:
        level, phase, _ = self.plan[self.current_epoch]
        if self.model.tokenizer is not None:
            self.initialise_codebooks(level + (phase == "train"))
            self.model.codebook.freeze_below(level)
        self.model.train()
        # the (context, target) subsample of each step and dropout: per epoch and rank, so that a resumed fit
        # draws what an uninterrupted one would (Lightning's checkpoints hold no RNG state)
        self._pair_gen = epoch_generators(self.s.seed, self.current_epoch, 1, self.global_rank)[1]
        torch.manual_seed(epoch_seed(self.s.seed, self.current_epoch, 2, self.global_rank))
        self._sums, self._steps, self._t0 = {}, 0, time.perf_counter()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        level, phase, _ = self.plan[self.current_epoch]
        losses = batch_loss(self.model, self.s, batch[0], batch[1], level, phase, self._pair_gen)
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v.detach())
        self._steps += 1
        self.log(f"cotrain/{phase}_total", losses["total"], prog_bar=True, batch_size=len(batch[0]))
        return losses["total"]

    def on_train_epoch_end(self) -> None:
        level, phase, epoch = self.plan[self.current_epoch]
        losses = {k: v / max(self._steps, 1) for k, v in self._sums.items()}
        self.records.append({"level": level + 1, "phase": phase, "epoch": epoch + 1,
                             "seconds": round(time.perf_counter() - self._t0, 2), **{k: round(v, 5) for k, v in losses.items()}})
        log.info("level %d %s epoch %d: %s", level + 1, phase, epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["cotrain"] = {"records": list(self.records), "initialised": self.initialised}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("cotrain", {})
        self.records, self.initialised = list(state.get("records", [])), int(state.get("initialised", 0))


def window_batches(indptr: np.ndarray, items: np.ndarray, s: CotrainSettings, epoch_of) -> EpochBatches:
    """Each epoch: every user's windows (``training_windows``) in a random order, both seeded by ``(seed, epoch)``."""
    def draw(epoch: int) -> _WindowBatches:
        rng, gen = epoch_generators(s.seed, epoch)
        windows, lengths = training_windows(indptr, items, s.max_len, s.extra_windows, rng)
        return _WindowBatches(windows, lengths, torch.randperm(len(windows), generator=gen), s.batch_size)

    users = int((np.diff(indptr) >= 2).sum())
    return EpochBatches(draw, -(-users * (1 + s.extra_windows) // s.batch_size), epoch_of)


def cotrain(model: GRDR, indptr: np.ndarray, items: np.ndarray, s: CotrainSettings, device: str = "cpu",
            run_dir: Optional[Path] = None, train: Optional[Mapping[str, Any]] = None, progress: bool = True,
            resume: bool = False) -> List[dict]:
    """Train ``model`` on the users' training histories (CSR); returns one record per epoch.

    Fitted by the training runs' Trainer (:mod:`cva_rec.training.loop_fit`; gradient norm clipped at 5):
    ``run_dir`` gets ``checkpoints/last.ckpt`` and ``tb/`` (None: a temporary folder); ``train``: the
    recipe's train section, for ``device: cuda`` its devices / strategy (DDP); ``resume``: continue
    from ``run_dir``'s last.ckpt."""
    module = CotrainFit(model, s)
    cfg = loop_config(device, len(module.plan), 5.0, train)
    if cfg["train"]["strategy"] == "ddp":
        # P1 leaves the decoder's later heads and the tokenizer's reconstruction unused, and frozen codebooks
        # get no gradient: DDP must look for unused parameters (they then keep no gradient, as in one process)
        cfg["train"]["strategy"] = "ddp_find_unused_parameters_true"
    fit_loop(module, window_batches(indptr, items, s, lambda: module.current_epoch), cfg, run_dir, progress, resume)
    module.initialise_codebooks(model.codebook.levels if model.tokenizer is not None else 0)
    if model.tokenizer is not None:
        model.codebook.freeze_below(0)
    model.to(device).eval()
    return module.records
