"""End to end on ml-100k: train a reranker and a retriever, then `cva-rec retrieve`."""
import json
import shutil

import pytest
import yaml

from tests.conftest import REPO, small_overrides

RECIPE = REPO / "recipes" / "ml100k" / "sasrec_id.yaml"


@pytest.fixture(scope="module")
def reranker_run(tmp_path_factory):
    """A briefly trained ml-100k SASRec-ID run (3 batches), shared by the tests of this file."""
    from cva_rec.cli.main import main

    tmp_path = tmp_path_factory.mktemp("reranker")
    rerank = tmp_path / "rerank"
    args = ["train", "-c", str(RECIPE), "--run-dir", str(rerank)]
    for o in small_overrides(tmp_path, "train.limit_train_batches=3"):
        args += ["--set", o]
    assert main(args) == 0
    return rerank


def test_train_retriever_and_retrieve(tmp_path, reranker_run, ml100k_text_store, capsys):
    from cva_rec.cli.main import main

    rerank = tmp_path / "rerank"
    shutil.copytree(reranker_run, rerank)
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"base": str(RECIPE), "dataset": {"max_seq_length": 10}, "content": {"store": str(ml100k_text_store)},
                                    "output": {"dir": str(tmp_path)}}))
    recipe = tmp_path / "retriever.yaml"
    recipe.write_text(yaml.safe_dump({"recipe": "base.yaml", "retriever": {
        "views": 2, "levels": 2, "codes": 8, "code_dim": 16, "tokenizer_hidden": 32, "hidden": 16, "layers": 1,
        "max_len": 10, "align_epochs_first": 1, "align_epochs": 1, "train_epochs": 1, "max_targets": 512, "kmeans_iters": 5},
        "output": {"dir": str(tmp_path), "name": "grdr"}}))
    assert main(["train-retriever", "-c", str(recipe)]) == 0
    rdir = tmp_path / "grdr"
    trained = json.loads((rdir / "metrics.json").read_text())
    assert trained["codes"]["views"] == 2 and len(trained["epochs"]) == 4
    from cva_rec.retrieval.retriever_run import read_retriever_config, retriever_config_id

    # the identity of what the retriever reads of its recipe (the recipe's model and loss sections are not)
    assert trained["config_id"] == retriever_config_id(read_retriever_config(rdir))
    capsys.readouterr()

    assert main(["retrieve", str(rerank), "--retriever", str(rdir), "--beam", "20", "--candidates", "30"]) == 0
    out = json.loads((rerank / "retrieve_test_best_grdr_b20_c30.json").read_text())
    assert out["n_users"] == 943 and out["candidates"]["n_candidates"] == 30
    assert out["hr@10"] <= out["candidates"]["recall@30"]  # a target must be recalled to be hit
    assert set(out["timings"]) >= {"recall_ms_per_user", "map_ms_per_user", "rerank_ms_per_user"}
    assert "popularity_levels" in out and "inductive" in out  # the layout of `cva-rec evaluate`

    # recalling every path and keeping every item reproduces full ranking exactly
    paths = trained["codes"]["trie_paths"]
    assert main(["retrieve", str(rerank), "--retriever", str(rdir), "--beam", str(paths), "--candidates", "1682"]) == 0
    full = json.loads((rerank / "metrics.json").read_text())["test"]
    everything = json.loads((rerank / f"retrieve_test_best_grdr_b{paths}_c1682.json").read_text())
    assert everything["candidates"]["recall@1682"] == 1.0
    for key in ("hr@10", "ndcg@10", "hr@20", "ndcg@20"):
        assert everything[key] == full[key]

    # a beam wider than the trie: one clear line, exit code 2
    assert main(["retrieve", str(rerank), "--retriever", str(rdir), "--beam", str(paths + 1)]) == 2
    assert "wider than the trie allows" in capsys.readouterr().err


def test_reranker_context_retriever(tmp_path, reranker_run, capsys):
    """context: reranker: codes of the run's item table, its encoder as the context; the same checks end to end."""
    from cva_rec.cli.main import main

    rerank = tmp_path / "rerank"
    shutil.copytree(reranker_run, rerank)
    recipe = tmp_path / "retriever.yaml"
    recipe.write_text(yaml.safe_dump({"recipe": str(RECIPE), "retriever": {
        "context": "reranker", "reranker": str(rerank), "views": 2, "levels": 2, "codes": 16, "kmeans_iters": 5},
        "output": {"dir": str(tmp_path), "name": "ctx"}}))
    assert main(["train-retriever", "-c", str(recipe)]) == 0
    rdir = tmp_path / "ctx"
    trained = json.loads((rdir / "metrics.json").read_text())
    assert trained["mode"] == "reranker" and trained["codes"]["views"] == 2 and trained["parameters"] == 0
    assert trained["codes"]["same_path_across_views"] == 0.0  # views start at different level-1 codes
    paths = trained["codes"]["trie_paths"]
    capsys.readouterr()

    assert main(["retrieve", str(rerank), "--retriever", str(rdir), "--beam", "20", "--candidates", "30"]) == 0
    out = json.loads((rerank / "retrieve_test_best_ctx_b20_c30.json").read_text())
    assert out["n_users"] == 943 and out["hr@10"] <= out["candidates"]["recall@30"]
    # every path and every item: exactly the full ranking of the run
    assert main(["retrieve", str(rerank), "--retriever", str(rdir), "--beam", str(paths), "--candidates", "1682"]) == 0
    full = json.loads((rerank / "metrics.json").read_text())["test"]
    everything = json.loads((rerank / f"retrieve_test_best_ctx_b{paths}_c1682.json").read_text())
    for key in ("hr@10", "ndcg@10", "hr@20", "ndcg@20"):
        assert everything[key] == full[key]

    # paired with another run (other weights): refused in one line
    other = tmp_path / "other"
    args = ["train", "-c", str(RECIPE), "--run-dir", str(other)]
    for o in small_overrides(tmp_path, "train.limit_train_batches=1"):
        args += ["--set", o]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["retrieve", str(other), "--retriever", str(rdir), "--beam", "20"]) == 2
    assert "another reranker's item table" in capsys.readouterr().err

    # the run folder: config.yaml (the reranker's data sections + retriever) and metrics.json with its identity
    from cva_rec.retrieval.retriever_run import read_retriever_config, retriever_config_id

    cfg = read_retriever_config(rdir)
    assert cfg["retriever"]["views"] == 2 and cfg["dataset"]["max_seq_length"] == 10  # the reranker run's own split
    assert trained["config_id"] == retriever_config_id(cfg) and (rdir / ".lock").is_file()
    # a finished run of this config, or another config, is refused in one line; --overwrite replaces it
    assert main(["train-retriever", "-c", str(recipe)]) == 2
    assert ("already holds a finished run of this config; --set train.resume=true continues it, --overwrite starts it "
            "again") in capsys.readouterr().err
    assert main(["train-retriever", "-c", str(recipe), "--set", "retriever.views=3"]) == 2
    assert "holds a finished run of another config (config differs: retriever.views 2 -> 3)" in capsys.readouterr().err
    assert json.loads((rdir / "metrics.json").read_text()) == trained
    assert main(["train-retriever", "-c", str(recipe), "--set", "retriever.views=3", "--overwrite"]) == 0
    assert json.loads((rdir / "metrics.json").read_text())["codes"]["views"] == 3
