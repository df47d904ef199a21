"""A requeued SLURM job runs the same command again: it continues its run folder (from the newer of
last.ckpt and Lightning's hpc checkpoint) instead of being refused. SLURM itself is not available here:
its environment variables and Lightning's detection are stood in for."""
from __future__ import annotations

import json
import os

from tests.robustness.test_run_folders import settings, tiny_data  # noqa: F401  (fixture)


def test_resume_takes_the_newer_of_last_and_hpc(tmp_path):
    from cva_rec.training.trainer import resume_checkpoint

    ckpts = tmp_path / "checkpoints"
    assert resume_checkpoint(tmp_path) is None
    ckpts.mkdir()
    (ckpts / "last.ckpt").write_bytes(b"a")
    assert resume_checkpoint(tmp_path) == str(ckpts / "last.ckpt")
    for n, when in ((1, 1000), (2, 3000)):
        (ckpts / f"hpc_ckpt_{n}.ckpt").write_bytes(b"h")
        os.utime(ckpts / f"hpc_ckpt_{n}.ckpt", (when, when))
    os.utime(ckpts / "last.ckpt", (2000, 2000))
    assert resume_checkpoint(tmp_path) == str(ckpts / "hpc_ckpt_2.ckpt")  # the requeue signal came after the epoch
    os.utime(ckpts / "last.ckpt", (4000, 4000))
    assert resume_checkpoint(tmp_path) == str(ckpts / "last.ckpt")  # an epoch ended after it


def test_slurm_environment_with_auto_requeue_under_srun(monkeypatch):
    from lightning.fabric.plugins.environments import SLURMEnvironment

    from cva_rec.training.trainer import cluster_plugins

    assert cluster_plugins() == [] or isinstance(cluster_plugins()[0], SLURMEnvironment)
    monkeypatch.setattr(SLURMEnvironment, "detect", staticmethod(lambda: True))
    (env,) = cluster_plugins()
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue


def test_a_requeued_job_continues_its_run(tiny_data, tmp_path, monkeypatch):  # noqa: F811
    from cva_rec.cli.main import main

    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert main(["train", "--no-progress", *settings(tiny_data, tmp_path)]) == 0
    again = ["train", "--no-progress", *settings(tiny_data, tmp_path, "train.epochs=2")]
    assert main(again) == 2  # outside a requeued job: refused (the folder holds a run)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # what SLURM sets in a requeued job
    assert main(again) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2  # continued from the first run's last.ckpt, not started again
