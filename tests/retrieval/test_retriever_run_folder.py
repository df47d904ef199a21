"""A retriever run folder is claimed like a training run's: one writer (a lock), one config."""
import pytest

from cva_rec.errors import RunFolderError
from cva_rec.retrieval.retriever_run import claim_retriever_folder, load_retriever_recipe, train_retriever
from tests.conftest import REPO

RECIPE = REPO / "recipes" / "ml1m" / "retriever_mv4.yaml"


def test_a_held_retriever_folder_refuses_a_second_writer(tmp_path, capsys):
    from cva_rec.cli.main import main

    cfg = load_retriever_recipe(RECIPE, [f"output.dir={tmp_path}"])
    run = tmp_path / "grdr"
    with claim_retriever_folder(run, cfg):
        with pytest.raises(RunFolderError, match=f"run folder {run} is in use by pid "):
            train_retriever(cfg, run)
        assert main(["train-retriever", "-c", str(RECIPE), "--out", str(run)]) == 2
        err = capsys.readouterr().err.strip()
        assert "is in use by pid" in err and "\n" not in err
    assert [p.name for p in run.iterdir()] == [".lock"]  # nothing was written by the refused writers


def test_a_retriever_folder_of_another_config_is_refused(tmp_path):
    cfg = load_retriever_recipe(RECIPE)
    run = tmp_path / "grdr"
    with claim_retriever_folder(run, cfg) as claim:
        claim.commit_config()  # a run of this config started here (and stopped before metrics.json)
    before = (run / "config.yaml").read_text()
    other = load_retriever_recipe(RECIPE, ["retriever.views=2"])
    with pytest.raises(RunFolderError, match=r"holds the config of a run of another config \(config differs: "
                                             r"retriever.views 4 -> 2\); choose another output.name / --out or pass --overwrite"):
        train_retriever(other, run)
    assert (run / "config.yaml").read_text() == before
    with claim_retriever_folder(run, cfg):  # the same config may start again (it never finished)
        pass


def test_a_retriever_records_the_reranker_run_it_reads_by_content(tmp_path):
    """``retriever.reranker`` is fingerprinted by the files read from it (config.yaml, best.ckpt): a reranker
    retrained in place makes the retriever folder another experiment."""
    import hashlib

    reranker = tmp_path / "sasrec"
    (reranker / "checkpoints").mkdir(parents=True)
    (reranker / "config.yaml").write_text("model: {name: SASRec}\n")
    (reranker / "checkpoints" / "best.ckpt").write_bytes(b"weights one")
    (reranker / "metrics.json").write_text("{}")  # not read by the retriever: not part of its fingerprint
    cfg = load_retriever_recipe(RECIPE, ["retriever.context=reranker", f"retriever.reranker={reranker}"])
    run = tmp_path / "ctx"
    with claim_retriever_folder(run, cfg) as claim:
        fp = claim.artifacts["retriever.reranker"]
        claim.commit_config()
        (run / "metrics.json").write_text("{}")  # as if it had finished
    lines = "".join(f"{name}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n" for name, data in
                    (("checkpoints/best.ckpt", b"weights one"), ("config.yaml", b"model: {name: SASRec}\n")))
    assert fp["path"] == str(reranker) and fp["files"] == 2 and fp["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    (reranker / "checkpoints" / "best.ckpt").write_bytes(b"weights two")  # retrained in place
    with pytest.raises(RunFolderError, match=r"of this config on other input files, another experiment "
                                             r"\(retriever.reranker sha256 " + fp["sha256"][:12]):
        claim_retriever_folder(run, cfg)
