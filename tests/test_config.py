import pytest
import yaml

from cva_rec.config.schema import SCHEMA, load_config
from cva_rec.errors import ConfigError


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.epochs=3", "model.name=gru4rec", "model.num_layers=2", "eval.topk=[5, 10]"])
    assert cfg["train"]["epochs"] == 3
    assert cfg["model"]["name"] == "GRU4Rec" and cfg["model"]["num_layers"] == 2
    assert cfg["eval"]["topk"] == [5, 10]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=3", "did you mean 'epochs'"),
        ("trian.epochs=3", "unknown config section"),
        ("model.name=SASrecc", "unknown model"),
        ("model.n_layer=2", "unknown config key model.n_layer"),
        ("loss.name=bpr", "unknown loss"),
        ("item_encoder.name=nope", "unknown item encoder"),
        ("item_encoder.depth=2", "has no option 'depth'"),
        ("train.optimizer=sgd", "train.optimizer must be one of"),
        ("eval.metrics=[hr, auc]", r"eval.metrics\[1\] must be one of hr, ndcg"),
        ("eval.valid_metric=ndcg", "must look like ndcg@10"),
        ("train.epochs=0", "train.epochs must be an integer >= 1, got 0"),
        ("notakeyvalue", "expected section.key=value"),
    ],
)
def test_bad_config_is_one_clear_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  lr_rate: 0.1\n")
    with pytest.raises(ConfigError, match="train.lr_rate"):
        load_config(typo)


def test_every_recipe_loads():
    from tests.conftest import REPO

    recipes = sorted((REPO / "recipes").rglob("*.yaml"))
    assert recipes
    for path in recipes:
        if "grid" in path.name:  # sweep grids are validated by the sweep module
            continue
        job = "retriever" if "retriever" in (yaml.safe_load(path.read_text()) or {}) else "train"
        load_config(path, job=job)


def test_docs_list_every_config_key():
    from tests.conftest import REPO
    from cva_rec.config.schema import all_sections

    doc = (REPO / "docs" / "config.md").read_text()
    for sec, keys in all_sections().items():
        for key in keys:
            assert f"`{sec}.{key}`" in doc, f"docs/config.md does not document {sec}.{key}"


def test_recipe_base_chain(tmp_path):
    (tmp_path / "a.yaml").write_text("model:\n  name: GRU4Rec\ntrain:\n  epochs: 7\n  lr: 0.01\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\ntrain:\n  epochs: 3\n")
    cfg = load_config(tmp_path / "sub" / "b.yaml")
    assert cfg["model"]["name"] == "GRU4Rec" and cfg["train"]["epochs"] == 3 and cfg["train"]["lr"] == 0.01
    (tmp_path / "c.yaml").write_text("base: d.yaml\n")
    (tmp_path / "d.yaml").write_text("base: c.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "e.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="base of"):
        load_config(tmp_path / "e.yaml")
