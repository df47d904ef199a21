"""Full disks, read-only folders, missing permissions: one line naming the path and what was needed,
nothing half-written, and ``evaluate`` works on a read-only run folder (writing elsewhere).

In-process tests fail the OS calls on purpose (monkeypatched ``os.fsync`` / ``posix_fallocate`` /
``disk_usage``). End-to-end tests run ``cva-rec`` in its own mount namespace on a real, tiny tmpfs
(disk full) or a read-only bind mount (read-only folder; chmod does not stop root), and skip with
the reason when this machine cannot create one.
"""
from __future__ import annotations

import errno
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import cva_rec.io as cio
from cva_rec.errors import FileSystemError
from cva_rec.features import FeatureStoreWriter
from cva_rec.data.dataset import bundled_data_path
from tests.conftest import REPO, small_overrides
from tests.robustness.conftest import Outcome, folder_hash

ITEMS = bundled_data_path() / "ml-100k" / "ml-100k.item"
RECIPE = str(REPO / "recipes" / "ml100k" / "sasrec_id.yaml")


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


# -- in process: the OS refuses in the middle of a write -------------------------------------------
def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    cio.atomic_write_json(target, {"old": 1})
    before = folder_hash(tmp_path)
    monkeypatch.setattr(cio.os, "fsync", _enospc)
    with pytest.raises(FileSystemError) as info:
        cio.atomic_write_json(target, {"new": 2})
    assert str(info.value) == f"no space left on the device (or quota) while writing {target}: free some space or write elsewhere"
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert folder_hash(tmp_path) == before  # old file intact, no temporary left


def test_checkpoint_write_on_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from cva_rec.training.checkpoint_io import AtomicCheckpointIO

    ckpt_io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "best.ckpt"
    ckpt_io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 0}, path)
    before = folder_hash(tmp_path)
    monkeypatch.setattr(cio.os, "fsync", _enospc)  # the new bytes are written, then the disk refuses
    with pytest.raises(FileSystemError, match="no space left .*best.ckpt"):
        ckpt_io.save_checkpoint({"state_dict": {"w": torch.zeros(1000)}, "epoch": 1}, path)
    assert folder_hash(tmp_path) == before
    assert ckpt_io.load_checkpoint(path)["epoch"] == 0


def test_store_refuses_before_sizing_its_memory_maps_when_space_is_short(tmp_path, monkeypatch):
    monkeypatch.setattr(cio.shutil, "disk_usage", lambda p: SimpleNamespace(total=10 << 30, used=10 << 30, free=1 << 20))
    with pytest.raises(FileSystemError, match=r"not enough free space for the feature store .*needs 3.1 MB, 1.0 MB free"):
        FeatureStoreWriter(tmp_path / "store", [f"i{k}" for k in range(1000)], 4, 384)
    assert list(tmp_path.iterdir()) == []  # no .partial, no temporary folder


def test_store_preallocation_failure_leaves_nothing(tmp_path, monkeypatch):
    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this platform")
    import cva_rec.features.store as store_module

    monkeypatch.setattr(store_module.os, "posix_fallocate", _enospc)
    with pytest.raises(FileSystemError, match="no space left"):
        FeatureStoreWriter(tmp_path / "store", ["a", "b"], 2, 3)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_named_with_what_was_needed(tmp_path, monkeypatch):
    def refuse(*_a, **_k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(cio.tempfile, "mkstemp", refuse)
    with pytest.raises(FileSystemError, match=f"permission denied writing {tmp_path / 'x.json'}: needs write access"):
        cio.atomic_write_json(tmp_path / "x.json", {})
    with pytest.raises(FileSystemError, match="is not writable .*pass --out DIR"):
        cio.ensure_writable(tmp_path, "evaluate writes its results there: pass --out DIR")


# -- end to end: a real tiny disk, a real read-only folder --------------------------------------------
def _namespace() -> tuple:
    """(unshare command, '') when a private mount namespace with mount works here (as root: `unshare -m`;
    otherwise a user namespace, `unshare -rm`), else ((), the reason to skip)."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return (), "needs Linux with unshare(1)"
    reason = ""
    for prefix in (("unshare", "-m"), ("unshare", "-rm")):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return prefix, ""
        reason = probe.stderr.strip()[:120]
    return (), f"cannot create a private mount namespace here: {reason}"


UNSHARE, NO_NAMESPACE = _namespace()
needs_namespace = pytest.mark.skipif(bool(NO_NAMESPACE), reason=NO_NAMESPACE or "ok")


def run_in_namespace(setup: str, args: list, timeout: int = 600) -> Outcome:
    """``cva-rec ARGS`` after ``setup`` (mount commands) in a private mount namespace."""
    cli = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "cva_rec.cli.main", *args])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([*UNSHARE, "sh", "-c", f"{setup} && exec {cli}"], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def read_only(folder: Path) -> str:
    q = shlex.quote(str(folder))
    return f"mount --bind {q} {q} && mount -o remount,bind,ro {q}"


@needs_namespace
def test_extract_text_on_a_tiny_disk_is_refused_before_writing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    result = run_in_namespace(f"mount -t tmpfs -o size=1m tmpfs {disk}", ["extract-text", "--items", str(ITEMS), "--out", str(disk / "store")])
    result.assert_one_line_error("not enough free space for the feature store")
    assert list(disk.iterdir()) == []  # the namespace's tmpfs is gone; the folder below it was never written


@needs_namespace
def test_training_on_a_disk_that_fills_up_keeps_whole_checkpoints(tmp_path):
    """3 MB: config and best.ckpt (2.5 MB) fit, last.ckpt does not. One line, no truncated checkpoint."""
    disk = tmp_path / "disk"
    disk.mkdir()
    keep = tmp_path / "kept"
    runs = disk / "runs"
    args = ["train", "-c", RECIPE, "--no-progress", *[x for o in small_overrides(runs, "train.epochs=2", "train.limit_train_batches=3",
                                                                                     "eval.popularity_buckets=0") for x in ("--set", o)]]
    cli = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "cva_rec.cli.main", *args])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    script = (f"mount -t tmpfs -o size=3m tmpfs {disk} && {cli}; rc=$?; cp -r {disk}/. {keep}/; exit $rc")
    keep.mkdir()
    proc = subprocess.run([*UNSHARE, "sh", "-c", script], capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    Outcome(proc.returncode, proc.stdout, proc.stderr).assert_one_line_error("no space left on the device (or quota) while writing")
    ckpts = list(keep.rglob("*.ckpt"))
    assert ckpts, "best.ckpt fitted on the disk"
    for c in ckpts:  # every checkpoint on disk is whole
        assert "state_dict" in torch.load(c, map_location="cpu", weights_only=True)
    assert not [p for p in keep.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, ml100k_subset):
    """A run on ml-100k's users 1-100: each evaluate below is a process that loads the run's dataset again."""
    from cva_rec.config.schema import load_config
    from cva_rec.training.run import run_experiment
    from tests.conftest import ML100K_SUBSET

    root = tmp_path_factory.mktemp("finished")
    cfg = load_config(None, small_overrides(root, f"dataset.name={ML100K_SUBSET}", f"dataset.data_path={ml100k_subset}",
                                            "train.limit_train_batches=3", "eval.popularity_buckets=0"))
    run_experiment(cfg, root / "run", enable_progress_bar=False)
    return root / "run"


@needs_namespace
def test_evaluate_on_a_read_only_run_folder(tmp_path, finished_run):
    before = folder_hash(finished_run)
    refused = run_in_namespace(read_only(finished_run), ["evaluate", str(finished_run), "--no-progress"])
    refused.assert_one_line_error(f"{finished_run} is not writable (read-only file system); evaluate writes its results "
                                  f"there: pass --out DIR")
    out = tmp_path / "elsewhere"
    done = run_in_namespace(read_only(finished_run), ["evaluate", str(finished_run), "--out", str(out), "--no-progress"])
    assert done.code == 0, done.err
    assert (out / "eval_test_best.json").is_file()
    assert folder_hash(finished_run) == before


@needs_namespace
def test_commands_writing_into_a_read_only_folder_are_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    before = folder_hash(ro)
    text = run_in_namespace(read_only(ro), ["extract-text", "--items", str(ITEMS), "--out", str(ro / "store")])
    text.assert_one_line_error("read-only file system")
    train = run_in_namespace(read_only(ro), ["train", "-c", RECIPE, "--no-progress", "--set", f"output.dir={ro / 'runs'}"])
    train.assert_one_line_error("Read-only file system")
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32))
    tokens = run_in_namespace(read_only(ro), ["tokenize", str(vectors), "--out", str(ro / "codes"), "--levels", "2", "--codes", "4"])
    tokens.assert_one_line_error(f"{ro / 'codes'} is not writable (read-only file system)")
    assert folder_hash(ro) == before


def test_a_plain_file_where_a_folder_is_expected_is_one_line(tmp_path, cli):
    """`--out` of tokenize / prep-frames is a folder; a file there is one line and stays as it was."""
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32))
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_text("not a video\n")
    plain = tmp_path / "plain"
    plain.write_text("mine\n")
    before = folder_hash(tmp_path)
    cli("tokenize", str(vectors), "--out", str(plain), "--levels", "2", "--codes", "4").assert_one_line_error(
        f"{plain} already exists and is not a folder cva_rec can use")
    cli("prep-frames", "--videos", str(videos), "--out", str(plain)).assert_one_line_error(f"{plain} already exists")
    assert folder_hash(tmp_path) == before
