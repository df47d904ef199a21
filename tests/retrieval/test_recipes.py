"""Every shipped retriever recipe loads and validates; bad keys are one clear error."""
from pathlib import Path

import pytest

from cva_rec.errors import ConfigError
from cva_rec.retrieval.settings import load_retriever_recipe
from tests.conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*/retriever_*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_retriever_recipes_validate(path):
    rc = load_retriever_recipe(path)
    assert rc["recipe"]["dataset"]["name"] and rc["output"]["name"]
    r = rc["retriever"]
    assert (r["codes_path"] is not None) or rc["recipe"]["content"]["store"] or (r["context"] == "reranker" and r["reranker"])


def test_overrides_and_bad_keys(tmp_path):
    path = REPO / "recipes" / "ml1m" / "retriever_mv4.yaml"
    rc = load_retriever_recipe(path, ["retriever.views=2", "train.seed=7"])
    assert rc["retriever"]["views"] == 2 and rc["recipe"]["train"]["seed"] == 7
    with pytest.raises(ConfigError, match="unknown key retriever.view"):
        load_retriever_recipe(path, ["retriever.view=2"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"recipe: {path.parent / 'cva_base.yaml'}\nretriever: {{hidden: 63, heads: 2}}\n")
    with pytest.raises(ConfigError, match="must divide"):
        load_retriever_recipe(bad)
    bad.write_text("retriever: {}\n")
    with pytest.raises(ConfigError, match="recipe"):
        load_retriever_recipe(bad)
    reranker = REPO / "recipes" / "ml1m" / "retriever_reranker.yaml"
    with pytest.raises(ConfigError, match="needs retriever.reranker"):
        load_retriever_recipe(reranker, ["retriever.reranker=null"])
    with pytest.raises(ConfigError, match="codes_path must stay null"):
        load_retriever_recipe(reranker, [f"retriever.codes_path={tmp_path}"])
    with pytest.raises(ConfigError, match="'own' or 'reranker'"):
        load_retriever_recipe(reranker, ["retriever.context=sasrec"])
    assert len(RECIPES) >= 5
