"""PCA projection, the optional preprocessing step before RQ-KMeans (e.g. 384 -> 128, as in FLUID).

Fit from the d x d covariance in float64 (one pass, memory independent of n) with
``torch.linalg.eigh``; each component's sign is fixed (largest-magnitude entry positive) so
two fits on the same data give the same projection bit for bit.
"""
from __future__ import annotations

import torch


class PcaProjection:
    def __init__(self, dim: int):
        self.dim = int(dim)
        self.mean: torch.Tensor | None = None  # [d]
        self.components: torch.Tensor | None = None  # [dim, d], rows orthonormal

    def fit(self, x: torch.Tensor, chunk: int = 65536) -> "PcaProjection":
        n, d = x.shape
        if not 0 < self.dim <= d:
            from cva_rec.errors import ConfigError

            raise ConfigError(f"PCA dimension must be in [1, {d}] for {d}-d input, got {self.dim}")
        mean = x.double().mean(0)
        cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        for part in x.split(chunk):
            c = part.double() - mean
            cov += c.T @ c
        cov /= max(n - 1, 1)
        _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        comps = vecs[:, -self.dim:].flip(1).T.contiguous()  # [dim, d], largest variance first
        sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
        self.mean, self.components = mean.float(), (comps * sign).float()
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean.to(x.device)) @ self.components.to(x.device).T

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.components.to(y.device) + self.mean.to(y.device)

    def state(self) -> dict:
        return {"dim": self.dim, "mean": self.mean.cpu(), "components": self.components.cpu()}

    @classmethod
    def from_state(cls, state: dict) -> "PcaProjection":
        p = cls(int(state["dim"]))
        p.mean, p.components = state["mean"].float(), state["components"].float()
        return p
