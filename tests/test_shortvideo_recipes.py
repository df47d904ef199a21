"""The Short-Video recipes run as written once the pairs are converted and a store exists.

No Short-Video files ship with the repository, so the Short-Video layout is made from real
interactions: ml-100k's log written as a pairs .csv (userID,videoID,timestamp in ms), converted by
``cva-rec prep-shortvideo`` (App. E pruning) under the recipes' data path, with the real MiniLM text
store of those items (384-d, the recipes' width) as content. Each new backbone's recipe then trains
a few batches and evaluates through the CLI, changing only paths and the budget.
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def shortvideo_root(tmp_path_factory):
    import pandas as pd

    from cva_rec.data.dataset import bundled_data_path
    from data_prep.converters.shortvideo import convert_shortvideo

    inter = pd.read_csv(bundled_data_path() / "ml-100k" / "ml-100k.inter", sep="\t")
    pairs = tmp_path_factory.mktemp("raw") / "shortvideo_pairs.csv"
    pd.DataFrame({"userID": inter["user_id:token"], "videoID": inter["item_id:token"],
                  "timestamp": inter["timestamp:float"].astype("int64") * 1000}).to_csv(pairs, index=False)
    root = tmp_path_factory.mktemp("data")
    report = convert_shortvideo(pairs, root, name="shortvideo")
    assert (root / "shortvideo" / "shortvideo.inter").is_file() and report.dropped  # App. E dropped once-seen videos
    return root


@pytest.mark.parametrize("recipe", ["bert4rec_cva_m4", "fmlprec_cva_m4", "narm_cva_m4"])
def test_shortvideo_recipe_trains_and_evaluates(tmp_path, shortvideo_root, ml100k_text_store, recipe):
    from cva_rec.cli.main import main

    out = tmp_path / "runs"
    code = main(["train", "-c", str(REPO / "recipes" / "shortvideo" / f"{recipe}.yaml"),
                 "--set", f"dataset.data_path={shortvideo_root}", "--set", f"content.store={ml100k_text_store}",
                 "--set", f"output.dir={out}", "--set", "train.epochs=1", "--set", "train.limit_train_batches=3",
                 "--set", "eval.popularity_buckets=0"])
    assert code == 0
    metrics = json.loads((out / recipe / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["hr@10"] <= 1.0 and metrics["test"]["n_users"] > 900
