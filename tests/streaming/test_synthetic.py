"""The synthetic generator: asked-for sizes exactly, MicroLens' published shape within tolerance."""
import json

import numpy as np
import pandas as pd
import pytest

from cva_rec.errors import ConfigError
from cva_rec.data.synthetic import generate, summary, synthesize


def test_microlens_100k_size_reproduces_its_published_statistics():
    # CVA paper, App. D (Tables 9 and 14): 100,000 users, 19,738 items; user length min 5,
    # quartiles 5/6/8, mean 7.19, max 218; item frequency quartiles 9/22/49, mean 36.45, max 640
    s = summary(generate(100_000, 19_738, 719_405, seed=3))
    assert (s["users"], s["items"], s["interactions"]) == (100_000, 19_738, 719_405)
    u, i = s["user_length"], s["item_frequency"]
    assert u["min"] == 5 and (u["p25"], u["p50"], u["p75"]) == (5, 6, 8)
    assert u["mean"] == pytest.approx(7.19, abs=0.01)
    assert 150 <= u["max"] <= 400  # a power-law tail, not a geometric one (which would stop near 40)
    assert i["min"] >= 1 and i["mean"] == pytest.approx(36.45, abs=0.01)
    for got, want in ((i["p25"], 9), (i["p50"], 22), (i["p75"], 49)):
        assert abs(got - want) <= 0.15 * want
    assert 400 <= i["max"] <= 1000


def test_distinct_items_per_user_and_every_item_used_even_when_the_catalogue_is_small():
    log = generate(200, 12, 1_500, seed=1)
    assert len(log.users) == 1_500
    pairs = pd.DataFrame({"u": log.users, "i": log.items})
    assert not pairs.duplicated().any()
    assert np.bincount(log.items, minlength=12).min() >= 1
    assert np.all(np.diff(log.times) >= 0)  # a log: time order


def test_impossible_sizes_are_one_line_errors():
    with pytest.raises(ConfigError, match="at least 5"):
        generate(100, 50, 400, seed=0)
    with pytest.raises(ConfigError, match="distinct"):
        generate(10, 6, 61, seed=0)


def test_files_are_recbole_atomic_files_with_a_random_store(tmp_path):
    info = synthesize(tmp_path, "syn", 300, 40, 2_000, seed=5, feature_dim=8, frames=3)
    inter = pd.read_csv(tmp_path / "syn" / "syn.inter", sep="\t", dtype=str)
    assert list(inter.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
    assert len(inter) == 2_000 and inter["user_id:token"].nunique() == 300 and inter["item_id:token"].nunique() == 40
    assert json.loads((tmp_path / "syn" / "synth.json").read_text())["interactions"] == info["interactions"] == 2_000
    from cva_rec.features.store import open_store

    store = open_store(tmp_path / "syn" / "features")
    assert len(store) == 40 and store.dim == 8 and store.max_frames == 3
    assert set(store.item_ids) == set(inter["item_id:token"])
    # same seed, same bytes
    synthesize(tmp_path / "again", "syn", 300, 40, 2_000, seed=5)
    assert (tmp_path / "again" / "syn" / "syn.inter").read_bytes() == (tmp_path / "syn" / "syn.inter").read_bytes()
