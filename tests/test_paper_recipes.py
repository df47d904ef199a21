"""The paper-table recipes (recipes/{microlens,shortvideo,ml100k,ml1m}): every grid expands to valid configs, each grid
has the rows docs/recipes.md promises, and the encoders they name build at the paper's parameter counts."""
from __future__ import annotations

import pytest

from cva_rec.jobs.sweep import expand, load_grid
from tests.conftest import REPO

RECIPES = REPO / "recipes"
#: grid file -> number of runs (= rows of the paper table it reproduces)
EXPECTED_RUNS = {
    "grid_table4.yaml": 11,
    "grid_table6.yaml": 13,
    "grid_table13_id.yaml": 3,
    "grid_table18_repeats.yaml": 6,
    "shortvideo/grid_table4.yaml": 12,  # Table 4's Short-Video half: 6 backbones x {Perceiver IO, CVA M=4}
}


@pytest.mark.parametrize("grid_path", sorted(RECIPES.rglob("grid*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_grid_expands_to_valid_configs(grid_path, tmp_path):
    runs = expand(load_grid(grid_path), tmp_path)  # load_config on every run: bad keys / encoder options fail here
    assert runs and len({r.name for r in runs}) == len(runs)
    expected = EXPECTED_RUNS.get(f"{grid_path.parent.name}/{grid_path.name}", EXPECTED_RUNS.get(grid_path.name))
    if expected is not None:
        assert len(runs) == expected
    for run in runs:
        if run.config["item_encoder"]["name"] == "id":
            assert run.config["content"]["store"] is None  # an ID run never needs the feature store
        elif run.config["item_encoder"]["name"] in ("pooling", "mlp", "perceiver_io", "cva"):
            assert run.config["content"]["store"], f"{run.name}: content encoder without a store"
        expected_loss = "microlens_inbatch" if grid_path.parent.name == "microlens" else "inbatch_softmax"
        assert run.config["loss"]["name"] == expected_loss or "table" not in grid_path.name


def test_microlens_protocol_and_table_sizes():
    from cva_rec.config.schema import load_config

    cfg = load_config(RECIPES / "microlens" / "cva_base.yaml")
    assert cfg["dataset"]["name"] == "microlens-100k" and cfg["content"]["store"].startswith("data/microlens/features/")
    assert (cfg["train"]["epochs"], cfg["train"]["lr"], cfg["train"]["batch_size"]) == (30, 1e-3, 60)  # Table 10
    assert cfg["loss"]["name"] == "microlens_inbatch" and cfg["loss"]["logq_correction"]  # the benchmark's loss
    assert cfg["dataset"]["truncate_before_split"] == cfg["dataset"]["max_seq_length"] + 3  # its load_data.py
    assert len(expand(load_grid(RECIPES / "microlens" / "grid_table12.yaml"))) == 12  # 4 VFMs x 3 backbones
    assert len(expand(load_grid(RECIPES / "microlens" / "grid_table17.yaml"))) == 19  # 2..20 frames


def test_table6_grid_builds_the_paper_parameter_counts(tmp_path):
    """The Table 6 grid's encoders, built on 384-d content with 384-d output, have the paper's counts (<= 0.05%)."""
    import torch

    from cva_rec.encoders.registry import build_encoder
    from cva_rec.features.content import ItemContent

    paper = {"mlp-s42": 1_772_928, "perceiver_io-s42": 5_321_344, "pio_no_first_cross-s42": 4_637_568,
             "pio_no_cross-s42": 4_504_960, "pio_no_attention-s42": 829_568, "pio_no_cross_no_repeat-s42": 4_504_960,
             "cva_m1-s42": 1_348_864, "cva_m2-s42": 2_401_024, "cva_m4-s42": 4_504_960, "cva_m8-s42": 8_713_984}
    content = ItemContent(torch.zeros(3, 2, 384, dtype=torch.float16), torch.tensor([0, 2, 1]))
    runs = {r.name: r for r in expand(load_grid(RECIPES / "microlens" / "grid_table6.yaml"), tmp_path)}
    for name, count in paper.items():
        enc = build_encoder(runs[name].config["item_encoder"], 3, 384, content)
        ours = sum(p.numel() for p in enc.parameters() if p.requires_grad)
        assert abs(ours - count) / count <= 5e-4, (name, ours, count)


def test_sasrec_paper_recipe_has_the_papers_ml1m_settings():
    from cva_rec.config.schema import load_config

    cfg = load_config(RECIPES / "ml1m" / "sasrec_paper.yaml")
    m = cfg["model"]
    assert (m["hidden_size"], m["n_layers"], m["n_heads"], m["hidden_dropout_prob"], m["attn_dropout_prob"]) == (50, 2, 1, 0.2, 0.2)
    assert cfg["dataset"]["max_seq_length"] == 200 and cfg["loss"]["name"] == "microlens_inbatch"
    assert (cfg["train"]["batch_size"], cfg["train"]["optimizer"], cfg["train"]["lr"]) == (32, "adam", 0.001)
    assert cfg["train"]["early_stopping_patience"] == 5 and cfg["eval"]["valid_metric"] == "ndcg@10"
    assert (cfg["eval"]["negatives"], cfg["eval"]["negatives_sampler"]) == (100, "uniform")
