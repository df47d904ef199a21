"""The hand-written loops under CPU DDP with 2 processes, for tests: :func:`run_ddp` runs
``python ddp_loops_script.py align|cotrain OUT`` (Lightning's launcher re-executes that command for rank 1)
and returns what each rank ended with."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

DDP = {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}


def toy_pairs():
    x = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
    rng = np.random.default_rng(1)
    return x, np.stack([rng.integers(0, 30, 41), rng.integers(0, 30, 41)], 1)


def align(out: Path) -> dict:
    from cva_rec.semantic_ids.alignment import fit_projection

    x, pairs = toy_pairs()
    proj, _ = fit_projection(x, pairs, out_dim=4, epochs=2, batch_size=8, lr=5e-2, temperature=0.2, seed=3,
                             train=DDP, progress=False, run_dir=out / "run")
    return {"weight": proj.weight.detach()}


def cotrain(out: Path) -> dict:
    from cva_rec.retrieval import cotrain as cotrain_module
    from tests.retrieval.test_cotrain import FAST, model_for, toy

    books0 = []  # level 1's codebook after each epoch: frozen from level 2's first epoch on
    end = cotrain_module.CotrainFit.on_train_epoch_end
    cotrain_module.CotrainFit.on_train_epoch_end = lambda self: books0.append(self.model.codebook.books[0].detach().clone()) or end(self)
    content, indptr, items = toy()
    model = model_for(content, views=2)
    records = cotrain_module.cotrain(model, indptr, items, FAST, train=DDP, progress=False, run_dir=out / "run")
    return {"state": model.state_dict(), "records": records, "books0": books0}


def run_ddp(mode: str, out: Path, timeout: int = 300) -> list:
    """-> [rank 0's result, rank 1's result]; a hang fails after ``timeout`` seconds."""
    from tests.training.test_ddp import ddp_env

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), mode, str(out)], cwd=repo, env=ddp_env(repo),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{mode} under DDP failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return [torch.load(out / f"{mode}-rank{rank}.pt", weights_only=False) for rank in (0, 1)]


if __name__ == "__main__":
    from lightning.pytorch.utilities import rank_zero_only

    mode, out = sys.argv[1], Path(sys.argv[2])
    result = {"align": align, "cotrain": cotrain}[mode](out)
    torch.save(result, out / f"{mode}-rank{rank_zero_only.rank}.pt")
