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
