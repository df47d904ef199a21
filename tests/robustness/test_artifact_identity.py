"""Input artifacts by content: the same path holding other bytes is another experiment.

Real ``cva-rec train`` runs on the tiny dataset of ``test_run_folders``: a semantic-ID run reads
a codes file, a pooling run a feature store. Rewriting the codes file under its path makes the
run folder refuse to resume or reuse (one line, folder unchanged); ``metrics.json`` names every
artifact by a fingerprint that an independent hash of the files reproduces.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from cva_rec.cli.main import main
from cva_rec.features import FeatureStoreWriter
from cva_rec.semantic_ids.codes import SemanticCodes
from tests.robustness.conftest import folder_hash
from tests.robustness.test_run_folders import settings, tiny_data  # noqa: F401  (fixture)

ITEMS = [f"i{k}" for k in range(40)]


def write_codes(path: Path, seed: int) -> Path:
    g = torch.Generator().manual_seed(seed)
    room = torch.randint(0, 4, (len(ITEMS), 2), generator=g)
    return SemanticCodes(room[:, None, :].clone(), torch.ones(len(ITEMS), 1, dtype=torch.bool), room, 4, ITEMS).save(path)


def write_store(path: Path) -> Path:
    rng = np.random.default_rng(0)
    w = FeatureStoreWriter(path, ITEMS, 2, 8)
    w.write(np.arange(len(ITEMS)), rng.standard_normal((len(ITEMS), 2, 8)).astype(np.float32), np.full(len(ITEMS), 2))
    return w.finalize()


def independent_fingerprint(folder: Path) -> str:
    """The documented fingerprint, computed here without cva_rec: sorted relative name, size, sha256 per file."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = f.read_bytes()
        h.update(f"{f.relative_to(folder).as_posix()}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n".encode())
    return h.hexdigest()


def test_codes_file_changed_under_the_same_path_is_another_experiment(tiny_data, tmp_path, capsys):
    codes = write_codes(tmp_path / "codes.npz", seed=1)
    args = settings(tiny_data, tmp_path / "runs", "item_encoder.name=semantic_id", f"item_encoder.codes_path={codes}")
    assert main(["train", "--no-progress", *args]) == 0
    run = tmp_path / "runs" / "run"
    recorded = json.loads((run / "metrics.json").read_text())["artifacts"]["item_encoder.codes_path"]
    assert recorded["sha256"] == hashlib.sha256(f"codes.npz\t{codes.stat().st_size}\t"
                                                f"{hashlib.sha256(codes.read_bytes()).hexdigest()}\n".encode()).hexdigest()
    assert json.loads((run / "artifacts.json").read_text()) == {"item_encoder.codes_path": recorded}

    write_codes(codes, seed=2)  # re-tokenized: same path, other codes
    before = folder_hash(run)
    for extra in ([], ["--set", "train.resume=true"]):
        capsys.readouterr()
        assert main(["train", "--no-progress", *args, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "of this config on other input files" in err, err
        assert f"item_encoder.codes_path sha256 {recorded['sha256'][:12]} -> " in err
    assert folder_hash(run) == before  # refused before anything was written

    write_codes(codes, seed=1)  # the original bytes again (a new mtime): the same experiment, resume allowed
    assert main(["train", "--no-progress", *args, "--set", "train.resume=true"]) == 0


def test_metrics_of_a_run_with_a_content_store_carry_its_fingerprint(tiny_data, tmp_path):
    store = write_store(tmp_path / "store")
    args = settings(tiny_data, tmp_path / "runs", "item_encoder.name=pooling", f"content.store={store}")
    assert main(["train", "--no-progress", *args]) == 0
    metrics = json.loads((tmp_path / "runs" / "run" / "metrics.json").read_text())
    fp = metrics["artifacts"]["content.store"]
    assert fp["path"] == str(store) and fp["files"] == 5
    assert fp["bytes"] == sum(f.stat().st_size for f in store.iterdir())
    assert fp["sha256"] == independent_fingerprint(store)
