"""The line a stopped command prints: the signal, where, what is saved and the exact command that resumes."""
from __future__ import annotations

import shlex
import signal

from cva_rec.cli.main import build_parser, stop_line
from cva_rec.errors import Stopped


def line(argv, stop):
    return stop_line(build_parser().parse_args(argv), argv, stop)


def test_train_resumes_with_train_resume_and_without_overwrite():
    argv = ["train", "-c", "my recipe.yaml", "--overwrite", "--set", "train.epochs=5"]
    text = line(argv, Stopped(signal.SIGTERM, "during epoch 2/5, step 3/10", "runs/x/checkpoints/last.ckpt (1 epoch done)"))
    head, saved, resume = text.split("; ")
    assert head == "cva-rec train: stopped by SIGTERM during epoch 2/5, step 3/10"
    assert saved == "saved: runs/x/checkpoints/last.ckpt (1 epoch done)"
    assert shlex.split(resume.removeprefix("resume: ")) == ["cva-rec", "train", "-c", "my recipe.yaml", "--set", "train.epochs=5",
                                                              "--set", "train.resume=true"]


def test_warmup_resumes_with_the_same_command():
    argv = ["warmup", "-c", "recipes/ml1m/lucid_fluid.yaml", "--set", "warmup.stages=[id,slice]"]
    text = line(argv, Stopped(signal.SIGINT, "during epoch 1/20, step 7/90", "nothing yet (no epoch finished)"))
    assert text.startswith("cva-rec warmup: stopped by SIGINT during epoch 1/20")
    assert shlex.split(text.split("; resume: ")[1]) == ["cva-rec", *argv]


def test_a_command_without_resume_names_only_the_signal():
    assert line(["evaluate", "runs/x"], Stopped(signal.SIGTERM)) == "cva-rec evaluate: stopped by SIGTERM"


def test_a_second_sigterm_does_not_interrupt_the_cleanup():
    import pytest

    from cva_rec.cli import main as cli_main

    cli_main._STOPPING.clear()
    with pytest.raises(Stopped):
        cli_main._raise_stopped(signal.SIGTERM, None)
    assert cli_main._raise_stopped(signal.SIGTERM, None) is None  # ignored while the first one unwinds
    cli_main._STOPPING.clear()
