"""Hostile configs: every bad value is one line naming the key (exit 2), and nothing is written.

Table-driven over ``cva-rec train`` as a user runs it (``--set`` values and recipe files), plus a
seeded fuzz test that mutates the shipped recipes and asserts that loading them either works or
raises ConfigError (never another exception).
"""
from __future__ import annotations

import copy
import random

import pytest
import yaml

from cva_rec.config.schema import SCHEMA, load_config, validate
from cva_rec.errors import ConfigError
from tests.conftest import REPO
from tests.robustness.conftest import folder_hash
from tests.robustness.test_recipes_unambiguous import AMBIGUOUS_RECIPES

# (--set overrides, fragment of the one-line error)
BAD_OVERRIDES = [
    (["train.lr=-1"], "train.lr must be a number > 0, got -1.0"),
    (["train.lr=0"], "train.lr must be a number > 0"),
    (["train.lr=abc"], "train.lr must be a number > 0, got 'abc' (a string)"),
    (["train.lr=.nan"], "train.lr must be a number > 0, got nan"),
    (["train.lr=.inf"], "train.lr must be a number > 0, got inf"),
    (["train.lr=true"], "train.lr must be a number > 0, got True (a boolean)"),
    (["train.epochs=0"], "train.epochs must be an integer >= 1, got 0"),
    (["train.epochs=1.5"], "train.epochs must be an integer >= 1, got 1.5 (a number)"),
    (["train.batch_size=-5"], "train.batch_size must be an integer >= 1"),
    (["train.weight_decay=-0.1"], "train.weight_decay must be a number >= 0"),
    (["train.grad_clip=0"], "train.grad_clip must be a number > 0 or null"),
    (["train.seed=-1"], "train.seed must be an integer >= 0 and <= 4294967295"),
    (["train.num_nodes=0"], "train.num_nodes must be an integer >= 1"),
    (["train.devices=0"], "train.devices must be a device count >= 1 (or -1 = all), auto, or a list of device ids, got 0"),
    (["train.devices=[]"], "train.devices must be a device count"),
    (["train.devices=two"], "train.devices must be a device count"),
    (["train.accelerator=npu"], "train.accelerator must be one of cpu, gpu, cuda, mps, tpu, auto"),
    (["train.precision=8"], "train.precision must be one of 64, 32, 16"),
    (["train.limit_train_batches=0"], "train.limit_train_batches must be >= 1 when an integer"),
    (["train.limit_train_batches=1.5"], "train.limit_train_batches must be in (0, 1] when a fraction"),
    (["train.optimizer=sgd"], "train.optimizer must be one of adamw, adam; got 'sgd'"),
    (["train.scheduler=step"], "unknown scheduler 'step'"),
    (["train.warmup_steps=100"], "train.warmup_steps=100 is ignored by scheduler 'none'; it is read by cosine, linear"),
    (["eval.batch_size=0"], "eval.batch_size must be an integer >= 1, got 0"),
    (["eval.topk=[0]"], "eval.topk[0] must be an integer >= 1, got 0"),
    (["eval.topk=[]"], "eval.topk must have at least 1 element(s)"),
    (["eval.topk=10"], "eval.topk must be a list"),
    (["eval.negatives=0"], "eval.negatives must be an integer >= 1 or null"),
    (["eval.popularity_buckets=-1"], "eval.popularity_buckets must be an integer >= 0"),
    (["eval.valid_metric=ndcg@30"], "eval.valid_metric 'ndcg@30' is not computed"),
    (["eval.valid_metric=auc@10"], "eval.valid_metric must look like ndcg@10"),
    (["dataset.max_seq_length=0"], "dataset.max_seq_length must be an integer >= 1"),
    (["dataset.min_user_interactions=-2"], "dataset.min_user_interactions must be an integer >= 0"),
    (["dataset.name=[a, b]"], "dataset.name must be a string, got ['a', 'b'] (a list)"),
    (["content.max_frames=0"], "content.max_frames must be an integer >= 1 or null"),
    (["content.dtype=float64"], "content.dtype must be one of float16, bfloat16, float32"),
    (["loss.name=inbatch_softmax", "loss.temperature=0"], "loss.temperature must be a number > 0"),
    (["loss.temperature=0.5"], "loss.temperature=0.5 is ignored by loss 'full_softmax'; it is read by allpos_sampled_softmax, inbatch_softmax, sampled_softmax"),
    (["loss.name=inbatch_softmax", "loss.num_negatives=5"], "loss.num_negatives=5 is ignored by loss 'inbatch_softmax'; it is read by allpos_sampled_softmax, sampled_softmax"),
    (["loss.name=sampled_softmax", "loss.num_negatives=0"], "loss.num_negatives must be an integer >= 1"),
    (["loss.name=sampled_softmax", "loss.popularity_alpha=-1"], "loss.popularity_alpha must be a number >= 0"),
    (["loss.name=null"], "loss.name must be a string, got null"),
    (["model.hidden_size=0"], "model.hidden_size must be an integer >= 1"),
    (["model.n_layers=0"], "model.n_layers (SASRec) must be an integer >= 1, got 0"),
    (["model.n_heads=two"], "model.n_heads (SASRec) must be an integer >= 1, got 'two' (a string)"),
    (["model.hidden_dropout_prob=1.5"], "model.hidden_dropout_prob (SASRec) must be a number >= 0 and < 1"),
    (["model.hidden_act=softplus"], "model.hidden_act (SASRec) must be one of gelu, relu, swish, tanh, sigmoid"),
    (["model.layer_norm_eps=0"], "model.layer_norm_eps (SASRec) must be a number > 0"),
    (["model.name=NextItNet", "model.dilations=[1, 0]"], "model.dilations[1] (NextItNet) must be an integer >= 1, got 0"),
    (["model.name=GRU4Rec", "model.n_heads=2"], "unknown config key model.n_heads for GRU4Rec"),
    (["model.name=42"], "model.name must be a string, got 42 (an integer)"),
    (["item_encoder.name=cva", "item_encoder.depth=0"], "item_encoder.depth (cva) must be an integer >= 1, got 0"),
    (["item_encoder.name=cva", "item_encoder.attend=pixels"], "item_encoder.attend (cva) must be one of latents, frames"),
    (["item_encoder.name=mlp", "item_encoder.dropout=1.0"], "item_encoder.dropout (mlp) must be a number >= 0 and < 1"),
    (["item_encoder.name=lucid", "item_encoder.id_scale=2"], "item_encoder.id_scale (lucid) must be a number >= 0 and <= 1"),
    (["item_encoder.name=lucid", "item_encoder.tokens=[]"], "item_encoder.tokens (lucid) must have at least 1 element(s)"),
    (["warmup.phase_out_span=10"], "warmup.phase_out_span (10) must be <= warmup.phase_out_epochs (6)"),
    (["warmup.stages=[id, warm]"], "warmup.stages[1] must be one of id, slice"),
    (["warmup.finetune_lr=-1e-4"], "warmup.finetune_lr must be a number > 0 or null, got -0.0001"),
    (["output.name=/etc/cron.d"], "output.name must be a folder name inside output.dir"),
    (["output.name=../escape"], "output.name must be a folder name inside output.dir"),
    (["train.lr"], "expected section.key=value"),
    (["train.lr=[1, 2"], "value is not valid YAML"),
]


@pytest.mark.parametrize("overrides, fragment", BAD_OVERRIDES, ids=[" ".join(o) for o, _ in BAD_OVERRIDES])
def test_bad_value_is_one_line_naming_the_key(cli, tmp_path, overrides, fragment):
    runs = tmp_path / "runs"
    before = folder_hash(tmp_path)
    args = ["train", "-c", str(REPO / "recipes" / "ml100k" / "sasrec_id.yaml"), "--set", f"output.dir={runs}"]
    for o in overrides:
        args += ["--set", o]
    cli(*args).assert_one_line_error(fragment)
    assert folder_hash(tmp_path) == before and not runs.exists()


# (recipe file text, fragment of the one-line error)
BAD_RECIPES = [
    ("train: {lr: -3e-4}\n", "train.lr must be a number > 0, got -0.0003"),
    ("train: 5\n", "section 'train' must be a mapping, got int"),
    ("- train\n- eval\n", "top level must be a mapping of sections"),
    ("train:\n  lr: [1,\n", "not valid YAML"),
    ("train:\n\tlr: 1\n", "not valid YAML"),
    ("trian: {lr: 0.1}\n", "unknown config section 'trian' (did you mean 'train'?)"),
    ("train: {lr_rate: 0.1}\n", "unknown config key train.lr_rate"),
    ("base: [a.yaml]\n", "base must be a recipe path"),
    ("base: missing.yaml\n", "config file not found"),
    ("loss: {name: full_softmax, temperature: 2}\n", "loss.temperature=2.0 is ignored by loss 'full_softmax'"),
    *AMBIGUOUS_RECIPES,  # repeated keys, alias bombs
]


@pytest.mark.parametrize("text, fragment", BAD_RECIPES, ids=[t.split("\n")[0] for t, _ in BAD_RECIPES])
def test_bad_recipe_file_is_one_line(cli, tmp_path, text, fragment):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    before = folder_hash(tmp_path)
    cli("train", "-c", str(recipe), "--set", f"output.dir={tmp_path / 'runs'}").assert_one_line_error(fragment)
    assert folder_hash(tmp_path) == before


def test_binary_recipe_is_one_line(cli, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(b"\xff\xfe\x00\x01\x89PNG\x00\x00")
    cli("train", "-c", str(recipe)).assert_one_line_error("not a text (UTF-8) YAML file")


def test_numbers_as_people_write_them(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {lr: 3E-4, weight_decay: 1e-2}\nloss: {name: sampled_softmax, temperature: 5e-2}\n")
    cfg = load_config(recipe, ["warmup.finetune_lr=1e-5", "train.grad_clip=1E+1"])
    assert cfg["train"]["lr"] == 3e-4 and cfg["train"]["weight_decay"] == 0.01
    assert cfg["loss"]["temperature"] == 0.05 and cfg["warmup"]["finetune_lr"] == 1e-5 and cfg["train"]["grad_clip"] == 10.0
    # an integer where a number is expected is widened; names stay strings
    assert load_config(None, ["train.lr=1"])["train"]["lr"] == 1.0


def test_default_values_of_ignored_keys_are_fine_and_resolved_configs_reload(tmp_path):
    # a resolved config (config.yaml of a run) lists every key with its default: it must load again
    from cva_rec.config.schema import dump_config

    cfg = load_config(None, ["loss.name=full_softmax", "train.lr=1e-4"])
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


# -- fuzz ---------------------------------------------------------------------------------------------------
NASTY_VALUES = [None, 0, -1, 1, 2**70, -1e-4, 1e-4, 0.5, 1.5, float("nan"), float("inf"), True, False, "", "x", "1e-4",
                "../../etc", "/abs", [], [0], [1, 2], ["a"], {}, {"a": 1}, [[1]], {"name": "cva"}]


def _mutate(rng: random.Random, data: dict) -> dict:
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        sec = rng.choice(list(SCHEMA) + ["bogus"])
        if op < 0.6:  # a known key gets a nasty value
            key = rng.choice(list(SCHEMA.get(sec, {"k": None})) + ["depth", "name", "temperature"])
            data.setdefault(sec, {})
            if isinstance(data[sec], dict):
                data[sec][key] = copy.deepcopy(rng.choice(NASTY_VALUES))
        elif op < 0.75:  # a whole section replaced
            data[sec] = copy.deepcopy(rng.choice(NASTY_VALUES))
        elif op < 0.9 and data:  # a section or key dropped
            victim = rng.choice(list(data))
            if isinstance(data[victim], dict) and data[victim] and rng.random() < 0.7:
                data[victim].pop(rng.choice(list(data[victim])))
            else:
                data.pop(victim)
        else:  # a switch moved to another component (its options stay)
            data.setdefault("item_encoder", {})
            if isinstance(data["item_encoder"], dict):
                data["item_encoder"]["name"] = rng.choice(["id", "cva", "mlp", "lucid", "perceiver_io", "pooling", "nope"])
            if isinstance(data.get("loss"), dict):
                data["loss"]["name"] = rng.choice(["full_softmax", "inbatch_softmax", "sampled_softmax"])
    return data


def _garble(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars) + 1)
        op = rng.random()
        if op < 0.4 and chars:
            chars.pop(min(i, len(chars) - 1))
        elif op < 0.8:
            chars.insert(i, rng.choice(":-[]{}\t\n'\"#&*!|>%@` e1.0"))
        else:
            chars = chars[:i]
    return "".join(chars)


def _make_ambiguous(rng: random.Random, text: str):
    """One time in five: the text with its first top-level key repeated, or an alias bomb appended (None otherwise)."""
    import re

    if rng.random() >= 0.2:
        return None
    first = re.search(r"^([A-Za-z_]+):", text, re.M)
    if first and rng.random() < 0.5:
        return text.rstrip("\n") + f"\n{first.group(1)}: null\n"
    return text.rstrip("\n") + "\nx0: &x0 [" + ", ".join(["a"] * 10) + "]\n" + "".join(
        f"x{k}: &x{k} [" + ", ".join([f"*x{k - 1}"] * 10) + "]\n" for k in range(1, 7))


def test_fuzzed_recipes_never_escape_as_tracebacks(tmp_path):
    rng = random.Random(20261123)
    sources = [p for p in sorted((REPO / "recipes").rglob("*.yaml")) if "grid" not in p.name and "retriever" not in p.name]
    assert sources
    loaded, refused = 0, 0
    for case in range(400):
        src = rng.choice(sources)
        path = tmp_path / f"case{case}.yaml"
        original = src.read_text().replace("base: ", f"base: {src.parent}/")  # the copy lives in tmp_path
        if rng.random() < 0.5:
            text = yaml.safe_dump(_mutate(rng, yaml.safe_load(original) or {}), sort_keys=False)
        else:
            text = _garble(rng, original)
        ambiguous = _make_ambiguous(random.Random(case), text)  # a second stream: the cases above stay as they were
        text = ambiguous or text
        path.write_text(text)
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            assert "\n" not in str(exc), f"case {case}: multi-line error {exc!r}"
            refused += 1
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"case {case} ({src.name}) escaped as {type(exc).__name__}: {exc}\n{text}") from exc
        assert not ambiguous, f"case {case}: a repeated key or an alias bomb was accepted\n{text}"
        validate(copy.deepcopy(cfg))  # a loaded config stays valid when checked again
        loaded += 1
    assert loaded > 20 and refused > 100  # the mutations exercise both sides


def test_fuzzed_set_overrides_never_escape_as_tracebacks():
    """--set section.key=value with every schema key (and some that do not exist) and nasty YAML values."""
    rng = random.Random(1123)
    keys = [f"{sec}.{k}" for sec, ks in SCHEMA.items() for k in ks] + [
        "model.n_layers", "model.dilations", "item_encoder.depth", "item_encoder.tokens", "bogus.key", "train", "a.b.c.d"]
    raw_values = ["", "-1", "0", "1e-4", "3E-4", ".nan", "-.inf", "[", "]", "{a: 1}", "[0, -1]", "~", "null", "yes", "'x'",
                  "\"\"", "1_000", "0x1F", "2e308", "!!python/object:os.system", "&a [*a]", "|", "- a", "@", "\t"]
    refused = 0
    for case in range(300):
        overrides = [f"{rng.choice(keys)}={rng.choice(raw_values)}" for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.2:
            overrides.insert(0, f"item_encoder.name={rng.choice(['cva', 'mlp', 'lucid', 'perceiver_io'])}")
        try:
            load_config(None, overrides)
        except ConfigError as exc:
            assert "\n" not in str(exc), f"case {case}: multi-line error {exc!r}"
            refused += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"case {case} {overrides} escaped as {type(exc).__name__}: {exc}") from exc
    assert refused > 150
