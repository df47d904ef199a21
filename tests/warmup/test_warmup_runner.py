"""The staged warmup end to end on ml-100k with real text-derived codes (tiny budgets)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cva_rec.config.schema import load_config
from cva_rec.errors import ConfigError
from cva_rec.warmup import check_warmup, id_scale, load_seed, run_warmup
from tests.conftest import REPO

# batches of 256: the stages' plumbing is the point here, and a late-fusion step costs with the batch (3 tokens per item)
TINY = ["dataset.max_seq_length=10", "train.batch_size=256", "train.limit_train_batches=4", "loss.name=inbatch_softmax",
        "warmup.id_epochs=1", "warmup.slice_epochs=1", "warmup.phase_out_epochs=2", "warmup.phase_out_span=1",
        "warmup.room_epochs=1", "warmup.add_id_back_epochs=1", "eval.popularity_buckets=10"]


def warmup_cfg(out, codes, *extra):
    return load_config(None, [*TINY, "item_encoder.name=lucid", f"item_encoder.codes_path={codes}",
                              f"output.dir={out}", "output.name=w", *extra])


def test_phase_out_schedules():
    assert [id_scale(p, "linear") for p in (0, 0.5, 1.0, 2.0)] == [1.0, 0.5, 0.0, 0.0]
    assert id_scale(0.5, "cosine") == pytest.approx(0.5) and id_scale(0.1, "cosine") > 0.9
    assert [id_scale(p, "step", steps=4) for p in (0.0, 0.3, 0.6, 0.99)] == [1.0, 0.75, 0.5, 0.25]
    with pytest.raises(ConfigError, match="schedule"):
        id_scale(0.5, "exponential")


def test_stage_configs(tmp_path, ml100k_codes):
    from cva_rec.warmup.runner import stage_config
    from cva_rec.warmup.stages import STAGES

    cfg = warmup_cfg(tmp_path, ml100k_codes, "train.lr=0.002", "warmup.finetune_lr=0.0005", "item_encoder.fusion=early",
                     "item_encoder.early=replace")
    s0, s1, s2 = (stage_config(cfg, STAGES[n], tmp_path, i) for i, n in enumerate(["id", "slice", "phase_out"]))
    assert s0["item_encoder"] == {"name": "id"} and s0["train"]["lr"] == 0.002
    assert s1["train"]["lr"] == 0.0005 and s1["item_encoder"]["tokens"] == ["slice"]  # replace: no ID token
    assert s2["train"]["early_stopping_patience"] == 0 and s2["train"]["epochs"] == cfg["warmup"]["phase_out_epochs"]
    assert all(s["train"]["resume"] for s in (s0, s1, s2)) and s1["output"]["name"] == "1-slice"
    # FLUID (retire: candidate): after the phase-out the histories keep their ID token, the candidates lose it
    late = warmup_cfg(tmp_path, ml100k_codes)
    assert late["warmup"]["retire"] == "candidate"
    room = stage_config(late, STAGES["room"], tmp_path, 3)["item_encoder"]
    assert room["tokens"] == ["id", "slice", "room"] and room["candidate_id"] is False
    back = stage_config(late, STAGES["add_id_back"], tmp_path, 4)["item_encoder"]
    assert back["tokens"] == ["id", "slice", "room"] and back.get("candidate_id", True) is True
    everywhere = warmup_cfg(tmp_path, ml100k_codes, "warmup.retire=everywhere")
    assert stage_config(everywhere, STAGES["room"], tmp_path, 3)["item_encoder"]["tokens"] == ["slice", "room"]


def test_bad_warmup_configs(tmp_path, ml100k_codes):
    with pytest.raises(ConfigError, match=r"warmup.stages\[1\] must be one of id, slice"):  # checked at load
        check_warmup(warmup_cfg(tmp_path, ml100k_codes, "warmup.stages=[id,slise]"))
    with pytest.raises(ConfigError, match="order"):
        check_warmup(warmup_cfg(tmp_path, ml100k_codes, "warmup.stages=[id,room,slice]"))
    with pytest.raises(ConfigError, match="lucid"):
        check_warmup(load_config(None, [*TINY, "item_encoder.name=id"]))
    with pytest.raises(ConfigError, match="reuse_stages"):
        check_warmup(warmup_cfg(tmp_path, ml100k_codes, "warmup.reuse_stages=[slice]", "warmup.reuse_run=x"))
    with pytest.raises(ConfigError, match="reuse_run"):
        check_warmup(warmup_cfg(tmp_path, ml100k_codes, "warmup.reuse_stages=[id]"))
    with pytest.raises(ConfigError, match="phase_out_span"):
        check_warmup(warmup_cfg(tmp_path, ml100k_codes, "warmup.phase_out_span=5"))


def test_fluid_stages_end_to_end(tmp_path, ml100k_codes):
    cfg = warmup_cfg(tmp_path, ml100k_codes, "warmup.stages=[id,slice,phase_out,room,add_id_back]", "warmup.retire=everywhere")
    result = run_warmup(cfg, progress=False)
    out = Path(result["out"])
    names = [m["stage"] for m in result["stages"]]
    assert names == ["id", "slice", "phase_out", "room", "add_id_back"]
    seeds = {n: load_seed(out / f"{i}-{n}" / "seed.pt") for i, n in enumerate(names)}
    id_key = "model.item_embedding.encoder.table.weight"
    # stage 1 starts from stage 0 (same ID table name), stage 2 ends with the ID deleted
    assert id_key in seeds["id"] and id_key in seeds["slice"]
    assert not any(".encoder.table." in k for k in seeds["phase_out"]), "ID parameters survived the phase-out"
    assert not any(".encoder.table." in k for k in seeds["room"])
    assert id_key in seeds["add_id_back"]
    # the ID-free stages really have fewer parameters: the table is gone
    params = {m["stage"]: m["parameters"] for m in result["stages"]}
    assert params["phase_out"] < params["slice"] - 1000 and params["add_id_back"] > params["room"]
    # per-stage table with overall and cold-start (popularity bucket) metrics
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == names
    assert all("popularity_levels" in s["test"] and "inductive" in s["test"] for s in stages)
    assert stages[2]["id_retired"] == "everywhere" and stages[3]["item_encoder"]["tokens"] == ["slice", "room"]
    from cva_rec.report.stages import write_stages_md  # the report reads what the warmup wrote

    assert "pop 1-3 ndcg@10" in write_stages_md(out).read_text()
    assert json.loads((out / "metrics.json").read_text())["stage"] == "add_id_back"
    # each stage records the seed it started from by content (and the codes it read)
    from cva_rec.fingerprints import fingerprint_files

    for i, n in enumerate(names):
        arts = json.loads((out / f"{i}-{n}" / "metrics.json").read_text())["artifacts"]
        if n != "id":  # the ID stage reads no codes
            assert arts["item_encoder.codes_path"]["sha256"] == fingerprint_files([ml100k_codes])["sha256"]
        prev = out / f"{i - 1}-{names[i - 1]}" / "seed.pt"
        assert (arts["warmup.seed"]["sha256"] == fingerprint_files([prev])["sha256"]) if i else "warmup.seed" not in arts
    # evaluate cannot rebuild the phase-out schedule's ID weight from a config: one clear refusal
    from cva_rec.errors import ConfigError
    from cva_rec.training.evaluate import run_config_and_checkpoint

    with pytest.raises(ConfigError, match="phase-out stage"):
        run_config_and_checkpoint(out / "2-phase_out")
    run_config_and_checkpoint(out / "3-room")  # the stages around it are ordinary runs

    # an ablation sharing the chain's beginning trains only what differs (here: shared room tables)
    ablation = warmup_cfg(tmp_path, ml100k_codes, "output.name=shared", "item_encoder.shared_tables=true", "warmup.retire=everywhere",
                          f"warmup.reuse_run={out}", "warmup.reuse_stages=[id,slice,phase_out]")
    again = run_warmup(ablation, progress=False)
    shared_out = Path(again["out"])
    assert [m["stage"] for m in again["stages"]] == ["id", "slice", "phase_out", "room"]
    assert not (shared_out / "0-id").exists() and (shared_out / "3-room" / "seed.pt").is_file()
    assert again["stages"][2]["reused_from"] == str(out / "2-phase_out")
    # ... but a stage this chain would train differently (another seed, budget or lr) is refused before
    # anything is written, naming what differs
    for change, named in (("train.seed=7", "train.seed 2020 -> 7"), ("warmup.finetune_lr=0.0001", "train.lr 0.001 -> 0.0001"),
                          ("warmup.phase_out_span=2", "warmup.phase_out_span 1 -> 2"), ("dataset.cold_items=0.1", "dataset.cold_items"),
                          ("item_encoder.compose=sum", "item_encoder.compose 'concat' (default) -> 'sum'")):
        other = warmup_cfg(tmp_path, ml100k_codes, "output.name=other", "warmup.retire=everywhere", change,
                           f"warmup.reuse_run={out}", "warmup.reuse_stages=[id,slice,phase_out]")
        with pytest.raises(ConfigError, match="was trained with another config") as refused:
            run_warmup(other, progress=False)
        assert named in str(refused.value) and not (tmp_path / "other").exists()


def test_early_replace_stage_starts_from_the_id_stage(tmp_path, ml100k_codes, ml100k_data):
    """Stage 1 with ``early: replace`` has no ID table: the ID stage's table is left behind on
    purpose (it once stopped the recipe with 'weights do not fit'); any other unused tensor is still
    an error, and after a phase-out that deletes the table no ID parameter is left."""
    from cva_rec.errors import CheckpointError
    from cva_rec.training.run import build_module
    from cva_rec.warmup.runner import _prepare, id_parameter_keys, init_from_seed, load_seed, save_seed, stage_config
    from cva_rec.warmup.stages import STAGES

    cfg = warmup_cfg(tmp_path, ml100k_codes, "item_encoder.fusion=early", "item_encoder.early=replace")
    id_module = build_module(stage_config(cfg, STAGES["id"], tmp_path, 0), ml100k_data)
    seed = save_seed(id_module, tmp_path / "seed.pt")
    replace_module = build_module(stage_config(cfg, STAGES["slice"], tmp_path, 1), ml100k_data)
    assert not any(k in replace_module.state_dict() for k in id_parameter_keys(replace_module))
    _prepare(STAGES["slice"], cfg, seed)(replace_module)
    shared = [k for k in load_seed(seed) if k in replace_module.state_dict()]
    assert shared and all(torch.equal(replace_module.state_dict()[k], load_seed(seed)[k]) for k in shared)
    with pytest.raises(CheckpointError, match="do not fit"):
        init_from_seed(replace_module, {**load_seed(seed), "model.not_a_layer.weight": torch.zeros(1)},
                       allow_unused=id_parameter_keys(replace_module))
    # a late-fusion module after drop_id('everywhere'): the ID keys are named but absent
    late = build_module(stage_config(warmup_cfg(tmp_path, ml100k_codes), STAGES["slice"], tmp_path, 1), ml100k_data)
    keys = id_parameter_keys(late)
    assert keys and all(k in late.state_dict() for k in keys)
    from cva_rec.backbones import item_encoder_of

    item_encoder_of(late.model).drop_id("everywhere")
    assert not any(k in late.state_dict() for k in keys)


def test_room_tables_start_from_the_warm_slice_tables(tmp_path, ml100k_codes, ml100k_data):
    """Stage 3's prepare: every room prefix the slice tables know gets exactly the slice vector."""
    from cva_rec.backbones import item_encoder_of
    from cva_rec.training.run import build_module
    from cva_rec.warmup.runner import _prepare, save_seed, stage_config
    from cva_rec.warmup.stages import STAGES

    cfg = warmup_cfg(tmp_path, ml100k_codes)
    slice_module = build_module(stage_config(cfg, STAGES["phase_out"], tmp_path, 2), ml100k_data)
    enc = item_encoder_of(slice_module.model)
    with torch.no_grad():  # make the slice tables "warm" (not their init values)
        for t in enc.slice_enc.embedding.tables:
            t.weight.normal_()
    enc.set_id_scale(0.0)
    enc.drop_id()
    seed = save_seed(slice_module, tmp_path / "seed.pt")
    room_module = build_module(stage_config(cfg, STAGES["room"], tmp_path, 3), ml100k_data)
    _prepare(STAGES["room"], cfg, seed)(room_module)
    renc = item_encoder_of(room_module.model)
    room_codes = renc.room_enc.room_table[1:]
    room_codes = room_codes[(room_codes >= 0).all(1)]
    rows, found = renc.slice_enc.embedding.rows_for(room_codes)
    known = found.all(1)
    assert known.sum() > 10
    assert torch.equal(renc.room_enc.embed_codes(room_codes[known]), renc.slice_enc.embed_codes(room_codes[known]))
    # and the backbone came from the seed
    assert torch.equal(room_module.model.position_embedding.weight, slice_module.model.position_embedding.weight)


def test_resume_after_a_killed_stage(tmp_path, ml100k_codes):
    """Kill `cva-rec warmup` inside stage 1, run it again: stage 0 is skipped, stage 1 resumes."""
    args = [sys.executable, "-m", "cva_rec.cli.main", "warmup", "--no-progress", "-c", str(REPO / "recipes" / "ml100k" / "lucid_warmup.yaml"),
            "--set", f"item_encoder.codes_path={ml100k_codes}", "--set", f"output.dir={tmp_path}", "--set", "output.name=w",
            "--set", "warmup.stages=[id,slice]", "--set", "warmup.id_epochs=1", "--set", "warmup.slice_epochs=4",
            "--set", "train.limit_train_batches=3", "--set", "train.batch_size=256", "--set", "dataset.max_seq_length=10"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = tmp_path / "w" / "1-slice" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "warmup finished before it could be killed:\n" + proc.stdout.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stage0_seed = tmp_path / "w" / "0-id" / "seed.pt"
    assert stage0_seed.is_file() and not (tmp_path / "w" / "1-slice" / "seed.pt").exists()
    mtime = stage0_seed.stat().st_mtime_ns
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "stage 0 (id): finished earlier, skipped" in done.stdout
    assert stage0_seed.stat().st_mtime_ns == mtime
    assert (tmp_path / "w" / "1-slice" / "seed.pt").is_file()
    slice_metrics = json.loads((tmp_path / "w" / "1-slice" / "metrics.json").read_text())
    assert slice_metrics["epochs_trained"] == 4  # resumed epochs + the rest, not 4 more


def test_shared_room_tables_are_not_reported_as_new(tmp_path, ml100k_codes, ml100k_data):
    """With shared_tables the room encoder reads the slice tables the seed filled: its keys are not
    'left at their init' (the log once named them as new); with separate tables they are."""
    from cva_rec.backbones import item_encoder_of
    from cva_rec.training.run import build_module
    from cva_rec.warmup.runner import init_from_seed, load_seed, save_seed, stage_config
    from cva_rec.warmup.stages import STAGES

    cfg = warmup_cfg(tmp_path, ml100k_codes)
    slice_module = build_module(stage_config(cfg, STAGES["phase_out"], tmp_path, 2), ml100k_data)
    item_encoder_of(slice_module.model).drop_id()
    seed = load_seed(save_seed(slice_module, tmp_path / "seed.pt"))
    for shared in (True, False):
        room_cfg = warmup_cfg(tmp_path, ml100k_codes, f"item_encoder.shared_tables={str(shared).lower()}")
        fresh = init_from_seed(build_module(stage_config(room_cfg, STAGES["room"], tmp_path, 3), ml100k_data), seed)
        assert any("room_enc.embedding.tables" in k for k in fresh) is not shared, fresh



def test_one_token_chain_trains_every_stage_on_user_windows(tmp_path, ml100k_codes, monkeypatch):
    """The chain the ID-free comparison table trains (early sum, levels added) runs every stage on the
    all-positions batches: one window of max_seq_length + 1 items per user, train.batch_size users a batch."""
    from cva_rec.backbones import item_encoder_of
    from cva_rec.training.microlens_loss import MicroLensInBatch

    seen = {}  # the item-side kinds of the model trained -> the window batches its loss received
    real_forward = MicroLensInBatch.forward

    def forward(self, model, windows):
        kinds = tuple(getattr(item_encoder_of(model), "kinds", ["id"]))
        seen.setdefault(kinds, []).append(tuple(windows.shape))
        return real_forward(self, model, windows)

    monkeypatch.setattr(MicroLensInBatch, "forward", forward)
    cfg = warmup_cfg(tmp_path, ml100k_codes, "warmup.stages=[id,slice,phase_out,room]", "warmup.retire=everywhere",
                     "loss.name=microlens_inbatch", "train.batch_size=64", "item_encoder.fusion=early",
                     "item_encoder.early=sum", "item_encoder.compose=sum")
    result = run_warmup(cfg, progress=False)
    assert [m["stage"] for m in result["stages"]] == ["id", "slice", "phase_out", "room"]
    # the ID stage, the ID + slice stages (slice, phase-out) and the slice + room stage: all on user windows
    assert set(seen) == {("id",), ("id", "slice"), ("slice", "room")}
    assert all(b <= 64 and width == 11 for shapes in seen.values() for b, width in shapes)
    assert result["stages"][3]["item_encoder"]["fusion"] == "early"
