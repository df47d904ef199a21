"""`cva-rec tokenize` reads its settings through the one schema and claims its output as a run folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from cva_rec.cli.main import main
from cva_rec.config.schema import load_config
from cva_rec.errors import ConfigError
from cva_rec.jobs.run_folder import claim_run_folder, config_id


@pytest.fixture
def vectors(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, np.random.default_rng(0).standard_normal((60, 8)).astype(np.float32))
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_tokenize_settings_are_checked_by_the_schema(tmp_path, vectors, capsys):
    out = tmp_path / "codes"
    assert main(["tokenize", str(vectors), "--out", str(out), "--levels", "two"]) == 2
    assert _one_line_error(capsys).endswith("error: tokenize.levels must be an integer >= 1, got 'two' (a string)")
    assert main(["tokenize", str(vectors), "--out", str(out), "--set", "tokenize.levles=3"]) == 2
    assert "unknown config key tokenize.levles (did you mean 'levels'?)" in _one_line_error(capsys)
    assert main(["tokenize", str(vectors), "--out", str(out), "--backend", "faiss", "--balanced"]) == 2
    assert "tokenize.backend faiss supports neither balanced" in _one_line_error(capsys)
    assert main(["tokenize", "--out", str(out)]) == 2
    assert "tokenize.source is not set" in _one_line_error(capsys)
    assert not out.exists()  # refused before anything was written
    recipe = tmp_path / "t.yaml"
    recipe.write_text("tokenize: {codes: 1.5}\n")
    with pytest.raises(ConfigError, match=r"^tokenize.codes must be an integer >= 2, got 1.5 \(a number\)$"):
        load_config(recipe, job="tokenize")
    recipe.write_text("tokenize: {codes: 4}\ntrain: {epochs: 3}\n")  # a training section is not a tokenize setting
    with pytest.raises(ConfigError, match="unknown config section 'train'"):
        load_config(recipe, job="tokenize")


def test_options_file_and_set_are_one_config(tmp_path, vectors):
    """`--levels 2 --codes 4 --distinct` and a settings file saying the same give one config (and codes)."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["tokenize", str(vectors), "--out", str(a), "--levels", "2", "--codes", "4", "--distinct", "--iters", "3"]) == 0
    recipe = tmp_path / "t.yaml"
    recipe.write_text(yaml.safe_dump({"tokenize": {"source": str(vectors), "levels": 2, "distinct": True},
                                      "output": {"dir": str(tmp_path), "name": "b"}}))
    assert main(["tokenize", "-c", str(recipe), "--set", "tokenize.codes=4", "--iters", "3"]) == 0
    ca, cb = (load_config(d / "config.yaml", job="tokenize") for d in (a, b))
    assert config_id(ca) == config_id(cb) and ca["tokenize"]["levels"] == 2 and ca["tokenize"]["distinct"] is True
    assert (a / "codes.npz").read_bytes() == (b / "codes.npz").read_bytes()


def test_tokenize_output_is_a_claimed_run_folder(tmp_path, vectors, capsys):
    out = tmp_path / "codes"
    args = ["tokenize", str(vectors), "--out", str(out), "--levels", "2", "--codes", "4", "--iters", "3"]
    assert main(args) == 0
    cfg = load_config(out / "config.yaml", job="tokenize")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config_id"] == config_id(cfg) and metrics["kind"] == "tokenize" and metrics["levels"] == 2
    assert cfg["tokenize"]["source"] == str(vectors) and (out / ".lock").is_file()
    assert set(metrics["outputs"]) == {"tokenizer.pt", "codes.npz", "diagnostics.json"}
    capsys.readouterr()

    assert main(args) == 0  # the same settings again: its own files replaced
    assert json.loads((out / "metrics.json").read_text())["config_id"] == metrics["config_id"]
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    assert main([*args, "--levels", "3"]) == 2  # other settings: refused, nothing changes
    assert _one_line_error(capsys).endswith(
        f"run folder {out} holds a finished run of another config (config differs: tokenize.levels 2 -> 3); "
        "choose another --out or pass --overwrite to replace it")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"} == before

    with claim_run_folder(out, cfg, resume=True, job="tokenize"):  # another writer holds the folder
        assert main(args) == 2
        assert "is in use by pid" in _one_line_error(capsys)
    assert main([*args, "--levels", "3", "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["levels"] == 3
    assert load_config(out / "config.yaml", job="tokenize")["tokenize"]["levels"] == 3


def test_tokenize_records_its_source_by_content_and_refuses_other_bytes(tmp_path, vectors, capsys):
    import hashlib

    out = tmp_path / "codes"
    args = ["tokenize", str(vectors), "--out", str(out), "--levels", "2", "--codes", "4", "--iters", "3"]
    assert main(args) == 0
    source = json.loads((out / "metrics.json").read_text())["artifacts"]["tokenize.source"]
    data = vectors.read_bytes()  # independent: the documented formula over the one file
    assert source["sha256"] == hashlib.sha256(f"v.npy\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n".encode()).hexdigest()
    np.save(vectors, np.random.default_rng(1).standard_normal((60, 8)).astype(np.float32))  # other vectors, same path
    capsys.readouterr()
    assert main(args) == 2
    assert "of this config on other input files, another experiment (tokenize.source sha256 " in _one_line_error(capsys)
