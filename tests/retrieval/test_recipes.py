"""Every shipped retriever recipe loads through the one config schema; bad keys are one clear error."""
import pytest

from cva_rec.errors import ConfigError
from cva_rec.retrieval.retriever_run import load_retriever_recipe
from tests.conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*/retriever_*.yaml"))
BASE = REPO / "recipes" / "ml1m" / "cva_base.yaml"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_retriever_recipes_validate(path):
    cfg = load_retriever_recipe(path)
    assert cfg["dataset"]["name"] and cfg["output"]["name"]
    r = cfg["retriever"]
    assert (r["codes_path"] is not None) or cfg["content"]["store"] or (r["context"] == "reranker" and r["reranker"])


def test_overrides_and_bad_keys(tmp_path):
    path = REPO / "recipes" / "ml1m" / "retriever_mv4.yaml"
    cfg = load_retriever_recipe(path, ["retriever.views=2", "train.seed=7"])
    assert cfg["retriever"]["views"] == 2 and cfg["train"]["seed"] == 7
    with pytest.raises(ConfigError, match=r"unknown config key retriever.view \(did you mean 'views'\?\)"):
        load_retriever_recipe(path, ["retriever.view=2"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"recipe: {BASE}\nretriever: {{hidden: 63, heads: 2}}\n")
    with pytest.raises(ConfigError, match="must divide"):
        load_retriever_recipe(bad)
    bad.write_text("retriever: {}\n")  # no data recipe: the default dataset has no content store
    with pytest.raises(ConfigError, match="content.store"):
        load_retriever_recipe(bad)
    reranker = REPO / "recipes" / "ml1m" / "retriever_reranker.yaml"
    with pytest.raises(ConfigError, match="needs retriever.reranker"):
        load_retriever_recipe(reranker, ["retriever.reranker=null"])
    with pytest.raises(ConfigError, match="codes_path must stay null"):
        load_retriever_recipe(reranker, [f"retriever.codes_path={tmp_path}"])
    with pytest.raises(ConfigError, match="retriever.context must be one of own, reranker; got 'sasrec'"):
        load_retriever_recipe(reranker, ["retriever.context=sasrec"])
    assert len(RECIPES) >= 5


def test_a_retriever_recipe_is_read_by_the_schema(tmp_path):
    """An unknown key in the recipe file is one line with the schema's suggestion; a wrong type is one line;
    `recipe:` reads the data recipe without its output, and the data sections are checked as in training."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"recipe: {BASE}\nretriever: {{veiws: 2}}\noutput: {{name: mine}}\n")
    with pytest.raises(ConfigError) as err:
        load_retriever_recipe(recipe)
    assert "unknown config key retriever.veiws (did you mean 'views'?)" in str(err.value) and "\n" not in str(err.value)
    recipe.write_text(f"recipe: {BASE}\nretriever: {{views: 2.5}}\n")
    with pytest.raises(ConfigError, match=r"^retriever.views must be an integer >= 1, got 2.5 \(a number\)$"):
        load_retriever_recipe(recipe)
    recipe.write_text(f"recipe: {BASE}\nretriever: {{use_content: maybe}}\n")
    with pytest.raises(ConfigError, match="retriever.use_content must be true or false"):
        load_retriever_recipe(recipe)
    recipe.write_text(f"recipe: {BASE}\nretriever: {{views: 2}}\n")
    with pytest.raises(ConfigError, match=r"train.lr must be a number > 0, got -1.0"):
        load_retriever_recipe(recipe, ["train.lr=-1"])
    with pytest.raises(ConfigError, match="unknown config section 'retrieve' \\(did you mean 'retriever'\\?\\)"):
        load_retriever_recipe(recipe, ["retrieve.views=2"])
    cfg = load_retriever_recipe(recipe)
    assert cfg["output"] == {"dir": "runs", "name": None}  # the data recipe's output is not the retriever's
    assert cfg["content"]["store"] == "data/stores/ml-1m-text"


def test_retrieve_options_are_checked_by_the_schema(tmp_path, capsys):
    """`cva-rec retrieve` options are the schema's `retrieve` keys: a bad value is one line before anything loads."""
    from cva_rec.cli.main import main

    assert main(["retrieve", str(tmp_path / "run"), "--retriever", str(tmp_path / "r"), "--beam", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "cva-rec retrieve: error: retrieve.beam must be an integer >= 1, got 0"
