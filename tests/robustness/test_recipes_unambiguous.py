"""A recipe, grid or ``--set`` value means one thing: repeated keys and alias bombs are one line (exit 2).

PyYAML keeps the last of two equal keys without a word and expands aliases on demand, so
``lr`` written twice trained with the second value and nine nested anchors made a 10^9-value
config; both are refused before anything runs (cva_rec/config/recipe_yaml.py).
"""
from __future__ import annotations

import random

import pytest

from cva_rec.config.schema import load_config, read_recipe
from cva_rec.errors import ConfigError
from cva_rec.jobs.sweep import load_grid
from tests.conftest import REPO
from tests.robustness.conftest import folder_hash


def laughs(depth: int, width: int = 9) -> str:
    """The classic alias bomb: level k is ``width`` aliases of level k-1 (width^depth values)."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * width) + "]" for k in range(1, depth)]
    return "\n".join(lines) + "\n"


# (recipe text, fragment of the one-line error): run through test_configs.py's table of bad recipe files
AMBIGUOUS_RECIPES = [
    ("train:\n  lr: 1e-3\n  epochs: 2\n  lr: 3e-4\n", "key 'train.lr' is given twice (lines 2 and 4)"),
    ("train: {epochs: 1}\neval: {topk: [10]}\ntrain: {epochs: 2}\n", "key 'train' is given twice (lines 1 and 3)"),
    ("item_encoder:\n  name: cva\n  'name': mlp\n", "key 'item_encoder.name' is given twice (lines 2 and 3)"),
    ("train: &t {epochs: 1}\neval: [*t]\n" + laughs(8).replace("a", "x"), "expands to more than 100000 values"),
    ("train: &a [*a]\n", "train[0] (line 1) is an alias of a value that contains it"),
]


def test_repeated_key_in_a_sweep_grid_is_one_line(cli, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"base: {REPO / 'recipes' / 'ml100k' / 'sasrec_id.yaml'}\n"
                    "grid:\n  train.lr: [1e-3, 3e-4]\n  model.hidden_size: [32]\n  train.lr: [1e-2]\n")
    before = folder_hash(tmp_path)
    cli("sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out")).assert_one_line_error(
        "key 'grid.train.lr' is given twice (lines 3 and 5)")
    assert folder_hash(tmp_path) == before


def test_repeated_key_in_a_set_value_is_one_line(cli, tmp_path):
    cli("train", "-c", str(REPO / "recipes" / "ml100k" / "sasrec_id.yaml"), "--set", "model.dilations={a: 1, a: 2}",
        "--set", f"output.dir={tmp_path}").assert_one_line_error("key 'a' is given twice (lines 1 and 1)")


def test_aliases_that_stay_small_and_merge_keys_still_load(tmp_path):
    """Anchors that name a value once and ``<<`` merges (whose keys the mapping may override) are fine."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: &t {epochs: 2, lr: 1e-3}\nwarmup:\n  finetune_lr: 1e-4\n"
                      "eval: {topk: &k [10, 20]}\n" + laughs(4))  # 9^4 = 6561 values: allowed
    from cva_rec.config.recipe_yaml import load_yaml

    assert load_yaml(recipe.read_text())["a3"][8][8][8] == ["lol"] * 9
    merged = load_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n")
    assert merged["c"] == {"x": 3, "y": 2}


# -- fuzz: the shipped recipes with a line repeated, and alias bombs of random shape ----------------------
def _repeat_a_key_line(rng: random.Random, text: str) -> tuple[str, str]:
    """The text with one ``key: value`` line copied right after a later line of the same block; the key's dotted path."""
    lines = text.splitlines()
    depth, outside = 0, []  # lines outside any multi-line flow collection ({...} / [...] over several lines)
    for ln in lines:
        code = "" if ln.lstrip().startswith("#") else ln.split(" #")[0]
        before, depth = depth, depth + code.count("{") + code.count("[") - code.count("}") - code.count("]")
        outside.append(before == 0 and depth == 0)
    candidates = [i for i, ln in enumerate(lines) if outside[i] and ":" in ln and ln.strip()
                  and not ln.lstrip().startswith(("#", "-"))]
    i = rng.choice(candidates)
    indent = len(lines[i]) - len(lines[i].lstrip())
    end = i + 1  # the last line of the same mapping block (deeper lines belong to the key's own value)
    while end < len(lines) and (not lines[end].strip() or lines[end].lstrip().startswith("#")
                                or len(lines[end]) - len(lines[end].lstrip()) >= indent):
        if lines[end].strip() and len(lines[end]) - len(lines[end].lstrip()) == indent and lines[end].lstrip().startswith("-"):
            break
        end += 1
    key = lines[i].strip().split(":", 1)[0]
    repeat = lines[i] + " null" if lines[i].rstrip().endswith(":") else lines[i]  # a block's key repeated without its block
    return "\n".join(lines[:end] + [repeat] + lines[end:]) + "\n", key


def test_fuzzed_repeated_keys_are_always_refused(tmp_path):
    rng = random.Random(20261207)
    sources = sorted((REPO / "recipes").rglob("*.yaml"))
    for case in range(200):
        src = rng.choice(sources)
        text, key = _repeat_a_key_line(rng, src.read_text().replace("base: ", f"base: {src.parent}/"))
        path = tmp_path / f"case{case}.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_grid(path) if src.name.startswith("grid") else load_config(path)
        message = str(err.value)
        assert "\n" not in message and "is given twice" in message and f"{key}'" in message, f"case {case} ({src.name}): {message}\n{text}"


def test_fuzzed_alias_shapes_load_or_are_refused_in_one_line(tmp_path):
    rng = random.Random(7)
    refused = 0
    for case in range(60):
        depth, width = rng.randint(2, 12), rng.randint(2, 12)
        path = tmp_path / f"case{case}.yaml"
        path.write_text(laughs(depth, width))
        try:
            read_recipe(path)
        except ConfigError as exc:
            assert "\n" not in str(exc) and "expands to more than 100000 values" in str(exc)
            refused += 1
        else:
            assert sum(width ** k for k in range(1, depth + 1)) < 100_000, (depth, width)
    assert refused > 20
