"""RQ-KMeans: residual k-means, level by level (FLUID sec. 3.2; L=4 levels x N=64 codes by default).

Level 1 clusters the vectors, level 2 clusters what level 1 left over (x - c1), and so on;
an item's code is the tuple of its nearest centroid at each level, and ``decode`` sums them.

Engineering choices:

* **Plain torch ops**, so ``device="cuda"`` runs the same code on a GPU and the CPU path needs
  nothing else. ``backend="faiss"`` runs ``faiss.Kmeans`` level by level instead (CPU only,
  random init, faiss's own subsampling to 256 points per centroid); it is offered because it
  is faster on large CPU inputs, but the default stays ``torch``: it is the only backend with
  k-means++ init, CUDA, mini-batches and balanced assignment under one seed (see
  ``cva_rec/benchmarks/bench_tokenize.py`` for the measured ratios).
* **k-means++ init** on at most ``init_sample`` points (seeded subsample), **Lloyd**
  iterations until the inertia improves by less than ``tol`` (relative), empty clusters
  re-seeded with the points farthest from their centroid (deterministic, no RNG).
* **Mini-batch** (``batch_size`` set): Sculley's per-centre learning-rate updates on seeded
  batches, ``iters`` epochs; for inputs too large for full Lloyd passes.
* **Balanced** (``balanced=True``): each level learns one additive offset per centroid by a
  few Sinkhorn iterations (entropic optimal transport with equal cluster masses), and
  assignment is ``argmin_k ||r - c_k||^2 + offset_k``. The offsets are saved with the model,
  so ``encode`` stays inductive and deterministic (a new item gets the same code whatever it
  is batched with) while the fitted catalogue's clusters come out near-equal in size, which
  spreads items over more full codes (fewer collisions).
* Seeded and deterministic: every random draw comes from a ``torch.Generator`` seeded with
  ``seed + level``; the same data, seed and device give the same codes.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from cva_rec.errors import CheckpointError, ConfigError
from cva_rec.fingerprints import value_digest
from cva_rec.io import atomic_torch_save, load_torch_file
from cva_rec.semantic_ids.pca import PcaProjection

FORMAT = "cva_rec.rq_kmeans"
FORMAT_VERSION = 1
BACKENDS = ("torch", "faiss")


def _as_tensor(x, device: torch.device) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"RQ-KMeans input must be a torch Tensor or numpy array, got {type(x).__name__}")
    if x.dim() != 2:
        raise ConfigError(f"RQ-KMeans input must be [n, d], got shape {tuple(x.shape)}")
    x = x.to(device=device, dtype=torch.float32)
    if not torch.isfinite(x).all():
        raise ConfigError("RQ-KMeans input contains NaN/Inf")
    return x


def _sq_dists(x: torch.Tensor, c: torch.Tensor, c_sq: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[n, k] squared euclidean distances (clamped at 0: the expansion can go slightly negative)."""
    c_sq = (c * c).sum(1) if c_sq is None else c_sq
    return ((x * x).sum(1, keepdim=True) - 2.0 * (x @ c.T) + c_sq).clamp_min_(0.0)


def assign(x: torch.Tensor, centroids: torch.Tensor, offsets: Optional[torch.Tensor] = None,
           chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid (plus optional per-centroid offsets) -> (labels [n], squared distance [n])."""
    c_sq = (centroids * centroids).sum(1)
    labels, dists = [], []
    for part in x.split(chunk):
        d2 = _sq_dists(part, centroids, c_sq)
        score = d2 if offsets is None else d2 + offsets
        lab = score.argmin(1)
        labels.append(lab)
        dists.append(d2.gather(1, lab[:, None]).squeeze(1))
    return torch.cat(labels), torch.cat(dists)


def sinkhorn_offsets(d2: torch.Tensor, iters: int = 50, eps: float = 0.05,
                     init: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-centroid offsets [k] (in squared-distance units) that make ``argmin(d2 + offset)``
    near-balanced: the column potentials of entropic OT between the points (mass 1/n each)
    and the centroids (mass 1/k each). ``init``: previous offsets (warm start)."""
    n, k = d2.shape
    scale = d2.mean().clamp_min(1e-12)
    log_k = -(d2 / scale) / eps
    log_r, log_c = -math.log(n), -math.log(k)
    log_v = torch.zeros(k, dtype=d2.dtype, device=d2.device) if init is None else -init / (eps * scale)
    for _ in range(iters):
        log_u = log_r - torch.logsumexp(log_k + log_v, dim=1)
        log_v = log_c - torch.logsumexp(log_k + log_u[:, None], dim=0)
    offsets = -(log_v - log_v.mean()) * eps * scale
    return offsets


class RQKMeans:
    """Residual k-means tokenizer: ``fit`` -> ``encode`` [n, L] codes -> ``decode`` [n, d]."""

    def __init__(self, levels: int = 4, codes: int = 64, iters: int = 25, seed: int = 0,
                 batch_size: Optional[int] = None, balanced: bool = False, device: str = "cpu",
                 pca: Optional[int] = None, backend: str = "torch", tol: float = 1e-4,
                 init_sample: int = 100_000):
        if levels < 1 or codes < 2 or iters < 1:
            raise ConfigError(f"RQ-KMeans needs levels >= 1, codes >= 2, iters >= 1; got {levels}, {codes}, {iters}")
        if backend not in BACKENDS:
            raise ConfigError(f"unknown RQ-KMeans backend {backend!r}; known: {', '.join(BACKENDS)}")
        if backend == "faiss" and (balanced or batch_size or str(device) != "cpu"):
            raise ConfigError("backend 'faiss' supports neither balanced, batch_size nor a non-CPU device; use backend 'torch'")
        if batch_size is not None and batch_size < codes:
            raise ConfigError(f"batch_size ({batch_size}) must be at least the number of codes ({codes})")
        self.levels, self.codes, self.iters, self.seed = int(levels), int(codes), int(iters), int(seed)
        self.batch_size, self.balanced, self.backend, self.tol = batch_size, bool(balanced), backend, float(tol)
        self.device = torch.device(device)
        self.pca_dim = pca
        self.init_sample = int(init_sample)
        self.projection: Optional[PcaProjection] = None
        self.centroids: Optional[torch.Tensor] = None  # [L, N, d]
        self.offsets: Optional[torch.Tensor] = None  # [L, N] (zeros unless balanced)
        self.level_errors: Optional[torch.Tensor] = None  # [L] mean squared residual after each level (fit data)

    # -- config -------------------------------------------------------------------------
    def config(self) -> dict:
        return {"levels": self.levels, "codes": self.codes, "iters": self.iters, "seed": self.seed,
                "batch_size": self.batch_size, "balanced": self.balanced, "pca": self.pca_dim,
                "backend": self.backend, "tol": self.tol, "init_sample": self.init_sample}

    @property
    def dim(self) -> int:
        """Width of the quantised space (after PCA, if any)."""
        self._check_fitted()
        return int(self.centroids.shape[2])

    def _check_fitted(self) -> None:
        if self.centroids is None:
            raise ConfigError("RQ-KMeans is not fitted: call fit() or RQKMeans.load()")

    # -- fit ------------------------------------------------------------------------------
    def transform(self, x) -> torch.Tensor:
        """Input -> the quantised space (float32 on ``device``; PCA applied when fitted with one)."""
        x = _as_tensor(x, self.device)
        return x if self.projection is None else self.projection.transform(x)

    def fit(self, x, progress: bool = False) -> "RQKMeans":
        """``progress``: progress over the levels' k-means iterations (a bar on a terminal, plain lines in a log),
        with the residual error of the levels done."""
        from cva_rec.plain_progress import progress_bar

        x = _as_tensor(x, self.device)
        n = x.shape[0]
        if n < self.codes:
            raise ConfigError(f"RQ-KMeans with {self.codes} codes needs at least {self.codes} vectors, got {n}")
        self.projection = PcaProjection(self.pca_dim).fit(x) if self.pca_dim else None
        residual = x if self.projection is None else self.projection.transform(x)
        residual = residual.clone()
        cents, offs, errors = [], [], []
        bar = progress_bar(self.levels * self.iters, "RQ-KMeans fit", "iteration", disable=not progress)
        steps = [0]  # iterations of the current level

        def tick() -> None:
            steps[0] += 1
            bar.update(1)

        for level in range(self.levels):
            steps[0] = 0
            gen = torch.Generator(device="cpu").manual_seed(self.seed + level)
            if self.backend == "faiss":
                c = self._faiss_level(residual, level)
            elif self.batch_size:
                c = self._minibatch_level(residual, gen, tick)
            else:
                c = self._lloyd_level(residual, gen, tick)
            off = self._balance_offsets(residual, c, gen) if self.balanced else torch.zeros(self.codes, device=self.device)
            labels, _ = assign(residual, c, off)
            residual -= c[labels]
            cents.append(c)
            offs.append(off)
            errors.append(float((residual * residual).sum(1).mean()))
            bar.set_postfix({"levels done": level + 1, "residual error": errors[-1]})
            bar.update(self.iters - steps[0])  # a level that converged early (or faiss's) counts as all its iterations
        bar.close()
        self.centroids = torch.stack(cents)
        self.offsets = torch.stack(offs)
        self.level_errors = torch.tensor(errors, dtype=torch.float64)
        return self

    def _kmeanspp(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """k-means++ seeding (D^2 sampling) on a seeded subsample of at most ``init_sample`` points."""
        if x.shape[0] > self.init_sample:
            x = x[torch.randperm(x.shape[0], generator=gen)[: self.init_sample].to(x.device)]
        first = int(torch.randint(x.shape[0], (1,), generator=gen))
        centers = [x[first]]
        closest = ((x - x[first]) ** 2).sum(1)
        for _ in range(1, self.codes):
            total = closest.sum()
            if total <= 0:  # fewer distinct points than codes: duplicate centres, fixed below as empty clusters
                idx = int(torch.randint(x.shape[0], (1,), generator=gen))
            else:
                probs = (closest / total).double().cpu()
                idx = int(torch.multinomial(probs, 1, generator=gen))
            centers.append(x[idx])
            closest = torch.minimum(closest, ((x - x[idx]) ** 2).sum(1))
        return torch.stack(centers)

    def _lloyd_level(self, x: torch.Tensor, gen: torch.Generator, tick=lambda: None) -> torch.Tensor:
        c = self._kmeanspp(x, gen)
        prev, off = math.inf, None
        for _ in range(self.iters):
            if self.balanced:  # warm-started: the offsets move little between Lloyd steps
                off = sinkhorn_offsets(_sq_dists(x, c), iters=50 if off is None else 10, init=off)
            labels, d2 = assign(x, c, off)
            inertia = float(d2.sum())
            c = self._update(x, labels, d2, c)
            if prev < math.inf and prev - inertia <= self.tol * prev:
                break
            prev = inertia
            tick()
        return c

    def _update(self, x: torch.Tensor, labels: torch.Tensor, d2: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Means of the assigned points; empty clusters take the points farthest from their centroid."""
        counts = torch.bincount(labels, minlength=self.codes).to(x.dtype)
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
        empty = (counts == 0).nonzero().flatten()
        if len(empty):
            far = d2.topk(min(len(empty), x.shape[0])).indices
            new[empty[: len(far)]] = x[far]
        return new

    def _minibatch_level(self, x: torch.Tensor, gen: torch.Generator, tick=lambda: None) -> torch.Tensor:
        """Mini-batch k-means (Sculley 2010): each centre moves toward its batch mean with rate b_k / seen_k."""
        c = self._kmeanspp(x, gen)
        seen = torch.zeros(self.codes, device=x.device)
        n, off = x.shape[0], None
        for _ in range(self.iters):
            order = torch.randperm(n, generator=gen).to(x.device)
            epoch_counts = torch.zeros(self.codes, device=x.device)
            for batch_idx in order.split(self.batch_size):
                b = x[batch_idx]
                if self.balanced:
                    off = sinkhorn_offsets(_sq_dists(b, c), iters=50 if off is None else 10, init=off)
                labels, d2 = assign(b, c, off)
                counts = torch.bincount(labels, minlength=self.codes).to(x.dtype)
                sums = torch.zeros_like(c).index_add_(0, labels, b)
                seen += counts
                epoch_counts += counts
                rate = (counts / seen.clamp_min(1))[:, None]
                batch_mean = sums / counts.clamp_min(1)[:, None]
                c = c + rate * (batch_mean - c) * (counts[:, None] > 0)
            empty = (epoch_counts == 0).nonzero().flatten()
            if len(empty):  # dead centres restart at the worst-served points of the last batch
                far = d2.topk(min(len(empty), len(d2))).indices
                c[empty[: len(far)]] = b[far]
                seen[empty] = 0
            tick()
        return c

    def _balance_offsets(self, x: torch.Tensor, c: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if x.shape[0] > self.init_sample:
            x = x[torch.randperm(x.shape[0], generator=gen)[: self.init_sample].to(x.device)]
        return sinkhorn_offsets(_sq_dists(x, c))

    def _faiss_level(self, x: torch.Tensor, level: int) -> torch.Tensor:
        import faiss

        km = faiss.Kmeans(x.shape[1], self.codes, niter=self.iters, seed=self.seed + level, verbose=False)
        km.train(np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32))
        return torch.from_numpy(np.array(km.centroids)).to(self.device)

    # -- encode / decode ----------------------------------------------------------------
    def encode(self, x, chunk: int = 65536) -> torch.Tensor:
        """[n, d] vectors -> [n, L] int64 codes (CPU)."""
        return self.encode_with_errors(x, chunk)[0]

    def encode_with_errors(self, x, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (codes [n, L] int64 CPU, mean squared residual after each level [L] float64)."""
        self._check_fitted()
        residual = self.transform(x).clone()
        if residual.shape[1] != self.dim:
            raise ConfigError(f"RQ-KMeans was fitted on {self.dim}-d vectors, got {residual.shape[1]}-d")
        codes, errors = [], []
        for level in range(self.levels):
            c = self.centroids[level].to(residual.device)
            labels, _ = assign(residual, c, self.offsets[level].to(residual.device), chunk)
            residual -= c[labels]
            codes.append(labels)
            errors.append(float((residual * residual).sum(1).mean()) if len(residual) else 0.0)
        return torch.stack(codes, 1).cpu(), torch.tensor(errors, dtype=torch.float64)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """[n, L] codes -> [n, d] reconstruction (sum of the chosen centroids) in the quantised space
        (``self.projection.inverse`` maps it back to the input space when PCA was used)."""
        self._check_fitted()
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.dim() != 2 or codes.shape[1] != self.levels:
            raise ConfigError(f"codes must be [n, {self.levels}], got shape {tuple(codes.shape)}")
        if len(codes) and (codes.min() < 0 or codes.max() >= self.codes):
            raise ConfigError(f"codes must be in [0, {self.codes})")
        cents = self.centroids.cpu()
        return sum(cents[level][codes[:, level]] for level in range(self.levels))

    # -- save / load --------------------------------------------------------------------
    def state(self) -> dict:
        self._check_fitted()
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.config(),
                "centroids": self.centroids.cpu(), "offsets": self.offsets.cpu(),
                "level_errors": self.level_errors.cpu(),
                "pca": None if self.projection is None else self.projection.state()}

    def save(self, path: str | os.PathLike) -> Path:
        """Atomic: written to a temporary file in the same folder, then ``os.replace``; the file records the
        sha256 of what it holds (``content_sha256``), checked by :meth:`load`."""
        state = self.state()
        return atomic_torch_save({**state, "content_sha256": value_digest(state)}, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> "RQKMeans":
        path = Path(path)
        state = load_torch_file(path, "RQ-KMeans tokenizer")  # weights only: never runs code from the file
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not an RQ-KMeans tokenizer file (format {state.get('format') if isinstance(state, dict) else type(state).__name__!r})")
        if state.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: RQ-KMeans format version {state.get('format_version')} is not supported (expected {FORMAT_VERSION})")
        recorded = state.get("content_sha256")  # tokenizers written before the hash: not checked
        if recorded is not None and recorded != value_digest({k: v for k, v in state.items() if k != "content_sha256"}):
            raise CheckpointError(f"{path}: its contents differ from the sha256 recorded in the file when it was written "
                                  "(changed since); run `cva-rec tokenize` again or restore the file")
        try:
            cfg = state["config"]
            model = cls(**{k: cfg[k] for k in ("levels", "codes", "iters", "seed", "batch_size", "balanced", "backend", "tol", "init_sample")},
                        pca=cfg["pca"], device=device if cfg["backend"] == "torch" else "cpu")
            cents, offs = state["centroids"].float(), state["offsets"].float()
            if cents.shape[:2] != (model.levels, model.codes) or offs.shape != (model.levels, model.codes):
                raise CheckpointError(f"{path}: centroid shapes {tuple(cents.shape)} do not match levels={model.levels}, codes={model.codes}")
            model.centroids, model.offsets = cents.to(model.device), offs.to(model.device)
            model.level_errors = state["level_errors"].double()
            model.projection = None if state["pca"] is None else PcaProjection.from_state(state["pca"])
        except (KeyError, TypeError, AttributeError, ConfigError) as exc:
            raise CheckpointError(f"{path}: malformed RQ-KMeans tokenizer ({type(exc).__name__}: {exc})") from None
        return model

    def __repr__(self) -> str:
        fitted = "fitted" if self.centroids is not None else "unfitted"
        return f"RQKMeans(levels={self.levels}, codes={self.codes}, pca={self.pca_dim}, backend={self.backend!r}, {fitted})"


def residual_errors(model: RQKMeans, x) -> Sequence[float]:
    """Mean squared residual after each level on ``x`` (the quantisation error the diagnostics report)."""
    return model.encode_with_errors(x)[1].tolist()


def path_errors(model: RQKMeans, x, codes: torch.Tensor) -> list[float]:
    """Mean squared residual after each level when ``x`` is represented by the given ``codes``
    (e.g. item mean vectors by their voted room codes); rows with a negative code are skipped."""
    codes = torch.as_tensor(codes, dtype=torch.long)
    keep = (codes >= 0).all(1)
    residual = model.transform(x)[keep.to(model.device)].cpu().clone()
    codes = codes[keep]
    errors = []
    for level in range(model.levels):
        residual -= model.centroids[level].cpu()[codes[:, level]]
        errors.append(float((residual * residual).sum(1).mean()) if len(residual) else 0.0)
    return errors
