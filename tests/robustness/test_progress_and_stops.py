"""Off a terminal (nohup, SLURM, CI) a training run prints plain progress lines while it trains, and a
SIGTERM / Ctrl+C ends it with exit 143 / 130 and one line naming what is saved and the command that resumes.

Each test runs ``cva-rec train`` on ml-100k as a separate process with stdout and stderr in one file, as
``nohup`` does."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: a line of the first epoch's training, e.g. "epoch 1/3 train: 12/95 step (13%), loss 7.3, 2.6 step/s, ETA 31s"
FIRST_EPOCH_STEP = re.compile(r"^epoch 1/\d+ train: (\d+)/(\d+) step \(\d+%\), loss [0-9.]+, [0-9.]+ step/s, ETA \S+$", re.M)


def start_train(tmp_path: Path, *extra: str):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: {name: SASRec}\nitem_encoder: {name: id}\n")
    argv = ["train", "-c", str(recipe)]
    for s in ("dataset.max_seq_length=10", "train.batch_size=256", "train.early_stopping_patience=0",
              "eval.popularity_buckets=0", f"output.dir={tmp_path / 'runs'}", "output.name=run", *extra):
        argv += ["--set", s]
    log = tmp_path / "nohup.out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CVA_REC_PROGRESS_SECONDS": "1"}
    with open(log, "w") as fh:
        # SIGINT at its default (a background shell may start children with it ignored)
        proc = subprocess.Popen([sys.executable, "-m", "cva_rec.cli.main", *argv], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=tmp_path,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, log, argv


def wait_for(proc, log: Path, pattern: re.Pattern, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        match = pattern.search(log.read_text())
        if match or proc.poll() is not None:
            return match
        time.sleep(0.2)
    return None


def test_progress_lines_while_the_first_epoch_trains(tmp_path):
    proc, log, _ = start_train(tmp_path, "train.epochs=1", "train.limit_train_batches=40")
    try:
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    steps = [int(m.group(1)) for m in FIRST_EPOCH_STEP.finditer(text)]
    assert steps and all(0 < s < 40 for s in steps), text[-3000:]  # lines while the epoch runs, not at its end
    assert all(int(m.group(2)) == 40 for m in FIRST_EPOCH_STEP.finditer(text))
    # in order: steps, the epoch's summary, its validation, the test, the JSON result
    summary = text.index("epoch 1/1 train: 40/40 step (100%)")
    assert FIRST_EPOCH_STEP.search(text).start() < summary < text.index("epoch 1/1 valid: hr@10") < text.index("test: hr@10")
    assert "\r" not in text  # no redrawn bar in the log


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_exits_nonzero_with_the_resume_command(tmp_path, signum, code):
    proc, log, argv = start_train(tmp_path, "train.epochs=3")
    try:
        assert wait_for(proc, log, FIRST_EPOCH_STEP), log.read_text()[-3000:]
        proc.send_signal(signum)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert rc == code, text[-3000:]
    assert "Traceback" not in text and "Received SIGTERM" not in text
    last = text.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert re.match(rf"cva-rec train: stopped by {name} during epoch 1/3, step \d+/\d+; saved: nothing yet \(no epoch finished\); "
                    r"resume: cva-rec train ", last), last
    resume = shlex.split(last.split("; resume: ", 1)[1])
    assert resume == ["cva-rec", *argv, "--set", "train.resume=true"]
    run = tmp_path / "runs" / "run"
    assert (run / "config.yaml").is_file() and not (run / "metrics.json").exists()
