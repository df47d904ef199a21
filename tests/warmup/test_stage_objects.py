"""Warm-up stages are objects: the runner knows no stage by name, and stages reach the item encoder only
through the checked protocol (cva_rec.encoders.staged_warmup)."""
from __future__ import annotations

import ast
import inspect
import json
from dataclasses import dataclass

import pytest
import yaml

from cva_rec.config.schema import load_config
from cva_rec.errors import ConfigError
from tests.warmup.test_warmup_runner import TINY, warmup_cfg


def test_the_runner_has_no_stage_name_branches():
    """No comparison in the runner reads a stage's name (``stage.name == 'phase_out'``, ``... in (...)``):
    what a stage does is the stage's."""
    import cva_rec.warmup.runner as runner

    def reads_name(node):
        return any(isinstance(n, ast.Attribute) and n.attr == "name" for n in ast.walk(node))

    branches = [ast.unparse(n) for n in ast.walk(ast.parse(inspect.getsource(runner)))
                if isinstance(n, ast.Compare) and reads_name(n.left)
                and any(isinstance(c, ast.Constant) or isinstance(c, (ast.Tuple, ast.List, ast.Set)) for c in n.comparators)]
    assert branches == []


def test_a_registered_stage_runs_through_the_runner(tmp_path, ml100k_codes):
    """A stage object the runner has never heard of: its config change, callbacks, before / after hooks all
    run, in that order, and what it adds reaches its metrics.json and stages.json."""
    import lightning as L

    from cva_rec.warmup import Stage, register_stage, run_warmup, unregister_stage
    from cva_rec.warmup.stages import STAGES

    calls = []

    class CountBatches(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            calls.append("batch") if "batch" not in calls else None

    @dataclass(frozen=True)
    class Probe(Stage):
        def configure(self, cfg, stage_cfg):
            super().configure(cfg, stage_cfg)
            stage_cfg["train"]["lr"] = 0.0007
            calls.append("configure")

        def callbacks(self, cfg, encoder, model):
            calls.append("callbacks")
            return [CountBatches()]

        def before_fit(self, cfg, encoder):
            calls.append(("before_fit", type(encoder).__name__, encoder.has_id))

        def after_fit(self, cfg, encoder, module):
            calls.append("after_fit")
            return {"probe": "seen"}

    register_stage(Probe("probe", "a probe stage", "slice_epochs", ("id", "slice")))
    try:
        result = run_warmup(warmup_cfg(tmp_path, ml100k_codes, "warmup.stages=[id,probe]"), progress=False)
    finally:
        unregister_stage("probe")
    assert "probe" not in STAGES
    with pytest.raises(ConfigError, match=r"warmup.stages\[1\] must be one of id, slice, phase_out, room, add_id_back; got 'probe'"):
        warmup_cfg(tmp_path, ml100k_codes, "warmup.stages=[id,probe]")
    probe_calls = calls[calls.index("configure"):]
    assert [c if isinstance(c, str) else c[0] for c in probe_calls] == [
        "configure", "callbacks", "before_fit", "batch", "after_fit"], calls
    assert probe_calls[2][1:] == ("LucidEncoder", True)  # the stage's kinds, through the encoder's own options
    out = tmp_path / "w"
    metrics = json.loads((out / "1-probe" / "metrics.json").read_text())
    assert metrics["stage"] == "probe" and metrics["probe"] == "seen" and metrics["id_retired"] is None
    assert metrics["item_encoder"]["tokens"] == ["id", "slice"]
    assert yaml.safe_load((out / "1-probe" / "config.yaml").read_text())["train"]["lr"] == 0.0007
    assert [s["stage"] for s in json.loads((out / "stages.json").read_text())["stages"]] == ["id", "probe"]
    assert result["stages"][-1]["probe"] == "seen"


def test_an_encoder_without_the_protocol_is_one_line(tmp_path, capsys):
    from cva_rec.cli.main import main
    from cva_rec.warmup import check_warmup

    with pytest.raises(ConfigError) as refused:
        check_warmup(load_config(None, [*TINY, "item_encoder.name=pooling", "warmup.stages=[id,slice]"]))
    assert str(refused.value) == (
        "warmup stage 'slice' needs an item encoder with the staged warm-up protocol (cva_rec.encoders.staged_warmup: "
        "drop_id, id_parameter_names, set_id_scale, stage_options, warm_start), e.g. lucid; item_encoder 'pooling' "
        "lacks drop_id, id_parameter_names, set_id_scale, stage_options, warm_start")
    # the ID stage alone needs nothing of the encoder
    assert [s.name for s in check_warmup(load_config(None, [*TINY, "item_encoder.name=pooling", "warmup.stages=[id]"]))] == ["id"]
    (tmp_path / "recipe.yaml").write_text(f"item_encoder: {{name: id}}\noutput: {{dir: {tmp_path}}}\n")
    code = main(["warmup", "--no-progress", "-c", str(tmp_path / "recipe.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "item_encoder 'id' lacks" in err[0], err
    assert not (tmp_path / "ml-100k-SASRec-warmup").exists()  # refused before the folder is claimed


def test_a_plugin_encoder_is_checked_member_by_member():
    from cva_rec.encoders.lucid import LucidEncoder
    from cva_rec.encoders.staged_warmup import StagedWarmupEncoder, require_protocol, staged_encoder_class

    class NoWarmStart:
        id_parameter_names = set_id_scale = drop_id = stage_options = LucidEncoder.drop_id

    assert not issubclass(NoWarmStart, StagedWarmupEncoder) and issubclass(LucidEncoder, StagedWarmupEncoder)
    assert staged_encoder_class("lucid", "room") is LucidEncoder
    with pytest.raises(ConfigError, match=r"item_encoder 'plugin' lacks warm_start$"):
        require_protocol(NoWarmStart, "plugin", "room")


def test_stage_options_through_the_protocol(tmp_path, ml100k_codes):
    """The stage names kinds; lucid turns them into its options (the rules stage_config applied before)."""
    from cva_rec.encoders.lucid import LucidEncoder

    assert LucidEncoder.stage_options({"name": "lucid"}, ("slice", "room"), True) == {
        "name": "lucid", "tokens": ["id", "slice", "room"], "candidate_id": False}
    assert LucidEncoder.stage_options({"name": "lucid"}, ("slice", "room"), False) == {"name": "lucid", "tokens": ["slice", "room"]}
    # shared_tables is read by the room token only: the stages before it do not carry it
    assert "shared_tables" not in LucidEncoder.stage_options({"name": "lucid", "shared_tables": True}, ("id", "slice"), False)
    assert LucidEncoder.stage_options({"name": "lucid", "shared_tables": True}, ("slice", "room"), False)["shared_tables"]
    replace = {"name": "lucid", "fusion": "early", "early": "replace"}
    assert LucidEncoder.stage_options(replace, ("id", "slice"), True)["tokens"] == ["slice"]
    with pytest.raises(ConfigError, match="room tables from slice tables only"):
        LucidEncoder.warm_start(None, "slice", "room")
