"""`cva-rec train-retriever` resumes like `cva-rec train`: a killed co-training prints the command that continues
it, and the continued run ends where an uninterrupted one does. Its folder's identity is what it reads of the
recipe: a recipe key the retriever never reads does not refuse a resume."""
from __future__ import annotations

import json
import os
import shlex
import signal

import numpy as np
import torch

def _outcome(capsys, *args):
    from cva_rec.cli.main import main

    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err.strip()


def _state(run):
    return torch.load(run / "retriever.pt", weights_only=True)["state_dict"]


def _epochs(run):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((run / "metrics.json").read_text())["epochs"]]


def test_a_killed_retriever_resumes_to_the_result_of_an_uninterrupted_run(tiny_retriever_recipe, tmp_path, capsys, monkeypatch):
    from cva_rec.retrieval.cotrain import CotrainFit

    recipe = tiny_retriever_recipe

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _outcome(capsys, "train-retriever", "-c", str(recipe), "--out", str(straight))[0] == 0

    start = CotrainFit.on_train_epoch_start

    def kill_at_the_third_epoch(self):
        if self.current_epoch == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` does: the CLI's handler stops the fit here
        start(self)

    monkeypatch.setattr(CotrainFit, "on_train_epoch_start", kill_at_the_third_epoch)
    code, err = _outcome(capsys, "train-retriever", "-c", str(recipe), "--out", str(killed), "--overwrite")
    monkeypatch.undo()
    assert code == 128 + signal.SIGTERM and "\n" not in err, err
    head, saved, resume = err.split("; ")
    assert head.startswith("cva-rec train-retriever: stopped by SIGTERM during epoch 3/4")
    assert saved == f"saved: {killed / 'checkpoints' / 'last.ckpt'} (2 epochs done)"
    command = shlex.split(resume.removeprefix("resume: "))
    assert command == ["cva-rec", "train-retriever", "-c", str(recipe), "--out", str(killed), "--set", "train.resume=true"]
    assert not (killed / "metrics.json").exists()

    # the same command without the resume flag is refused, naming it
    code, err = _outcome(capsys, "train-retriever", "-c", str(recipe), "--out", str(killed))
    assert code == 2 and "an unfinished run of this config; --set train.resume=true continues it" in err

    assert _outcome(capsys, *command[1:])[0] == 0
    assert _epochs(killed) == _epochs(straight)
    a, b = _state(straight), _state(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert np.array_equal(np.load(straight / "codes.npz")["codes"], np.load(killed / "codes.npz")["codes"])

    # a finished run resumed again has nothing to train: left byte for byte as it is
    before = {p.name: p.read_bytes() for p in (killed / "metrics.json", killed / "retriever.pt", killed / "codes.npz")}
    assert _outcome(capsys, *command[1:])[0] == 0
    assert {p: (killed / p).read_bytes() for p in before} == before


def test_recipe_keys_the_retriever_never_reads_do_not_make_another_experiment(tiny_retriever_recipe, tmp_path, capsys):
    from cva_rec.retrieval.retriever_run import claim_retriever_folder, load_retriever_recipe

    recipe = tiny_retriever_recipe

    run = tmp_path / "grdr"
    cfg = load_retriever_recipe(recipe)
    with claim_retriever_folder(run, cfg) as claim:
        claim.commit_config()  # a run of this config started here (and stopped before metrics.json)
        first = claim.config_id
    unread = ["model.hidden_size=32", "loss.name=inbatch_softmax", "eval.topk=[5, 10]", "train.lr=0.01", "train.epochs=3",
              "train.batch_size=64", "item_encoder.name=mlp", "warmup.id_epochs=2"]
    other = load_retriever_recipe(recipe, [*unread, "train.resume=true"])
    with claim_retriever_folder(run, other) as claim:  # resumed under a recipe changed only where it never reads
        assert claim.config_id == first and claim.resume
    for key, value, shown in (("retriever.lr", "0.01", "retriever.lr 0.001 -> 0.01"),
                              ("dataset.max_seq_length", "20", "dataset.max_seq_length 10 -> 20"),
                              ("content.max_frames", "1", "content.max_frames None -> 1"),
                              ("train.seed", "4", "train.seed 3 -> 4")):
        code, err = _outcome(capsys, "train-retriever", "-c", str(recipe), "--out", str(run), "--set", "train.resume=true",
                             "--set", f"{key}={value}")
        assert code == 2 and f"holds the config of a run of another config (config differs: {shown})" in err, err
