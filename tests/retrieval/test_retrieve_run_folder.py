"""`cva-rec retrieve` writes into the reranker's run folder only holding its lock, and records what it read by content."""
from __future__ import annotations

import hashlib
import json
import os

import pytest


@pytest.fixture(scope="module")
def runs(tiny_retriever_recipe, tmp_path_factory):
    """(reranker run, retriever run) on the tiny dataset: SASRec-ID trained one epoch, the retriever's 4 epochs."""
    from cva_rec.cli.main import main

    out = tmp_path_factory.mktemp("two_stage")
    rerank, retriever = out / "rerank", out / "grdr"
    sets = ["train.epochs=1", "train.batch_size=64", "model.hidden_size=8", "model.n_layers=1", "eval.popularity_buckets=0"]
    assert main(["train", "--no-progress", "-c", str(tiny_retriever_recipe.parent / "base.yaml"), "--run-dir", str(rerank),
                 *(a for s in sets for a in ("--set", s))]) == 0
    assert main(["train-retriever", "-c", str(tiny_retriever_recipe), "--out", str(retriever)]) == 0
    return rerank, retriever


def _retrieve(capsys, rerank, retriever, *args):
    from cva_rec.cli.main import main

    capsys.readouterr()
    code = main(["retrieve", str(rerank), "--retriever", str(retriever), "--beam", "4", "--candidates", "10", *args])
    return code, capsys.readouterr().err.strip()


def files_fingerprint(folder, names):
    """The fingerprint of some files of a folder, computed here from their bytes."""
    lines = ""
    for name in sorted(names):
        data = (folder / name).read_bytes()
        lines += f"{name}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n"
    return hashlib.sha256(lines.encode()).hexdigest()


RESULT = "retrieve_test_best_grdr_b4_c10.json"


def test_retrieve_is_refused_while_a_training_run_writes_the_reranker_folder(runs, tmp_path, capsys):
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.run_folder import claim_run_folder

    rerank, retriever = runs
    before = sorted(p.name for p in rerank.iterdir())
    with claim_run_folder(rerank, load_config(rerank / "config.yaml"), resume=True):  # as a training run holds it
        code, err = _retrieve(capsys, rerank, retriever)
        assert code == 2 and "\n" not in err, err
        assert err.startswith(f"cva-rec retrieve: error: run folder {rerank} is in use by pid {os.getpid()} on ")
        assert err.endswith("wait for it to finish or choose another folder for the results with --out DIR")
        assert sorted(p.name for p in rerank.iterdir()) == before
        assert _retrieve(capsys, rerank, retriever, "--out", str(tmp_path / "out"))[0] == 0  # the way out it names
        assert (tmp_path / "out" / RESULT).is_file() and not (rerank / RESULT).exists()
    assert _retrieve(capsys, rerank, retriever)[0] == 0
    assert (rerank / RESULT).is_file()


def test_retrieve_records_both_runs_and_the_files_it_read(runs, capsys, tmp_path):
    rerank, retriever = runs
    assert _retrieve(capsys, rerank, retriever, "--out", str(tmp_path))[0] == 0
    record = json.loads((tmp_path / RESULT).read_text())["provenance"]
    reranker_metrics = json.loads((rerank / "metrics.json").read_text())
    retriever_metrics = json.loads((retriever / "metrics.json").read_text())
    assert record["run_config_id"] == record["config_id"] == reranker_metrics["config_id"]
    assert record["retriever_config_id"] == retriever_metrics["config_id"]
    artifacts = record["artifacts"]
    assert set(artifacts) == {"checkpoint", "content.store", "retriever", "retriever/content.store"}
    ckpt = rerank / "checkpoints" / "best.ckpt"
    assert artifacts["checkpoint"]["sha256"] == files_fingerprint(ckpt.parent, ["best.ckpt"])
    assert artifacts["retriever"] == {"path": str(retriever), "files": 3, "sha256": files_fingerprint(
        retriever, ["config.yaml", "retriever.pt", "codes.npz"]), "bytes": sum(
        (retriever / n).stat().st_size for n in ("config.yaml", "retriever.pt", "codes.npz"))}
    # the store both runs read, as each run recorded it when it trained
    assert artifacts["content.store"]["sha256"] == reranker_metrics["artifacts"]["content.store"]["sha256"]
    assert artifacts["retriever/content.store"]["sha256"] == retriever_metrics["artifacts"]["content.store"]["sha256"]
