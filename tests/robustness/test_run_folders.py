"""Run folders: one writer at a time, one config per folder, nothing mixed up or lost.

A tiny dataset (60 users) keeps each training run to a second or two; the refusals are checked
table-driven on copies of one finished run folder (exit 2, one line, folder bytes unchanged), and
two real ``cva-rec train`` processes race for one folder.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.robustness.conftest import cva_rec_process, folder_hash, write_tiny


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """60 users x 8-14 time-ordered interactions over 40 items, as RecBole atomic files."""
    return write_tiny(tmp_path_factory.mktemp("data"))


def settings(tiny_data, out_dir, *extra):
    s = [f"dataset.name=tiny", f"dataset.data_path={tiny_data}", "dataset.max_seq_length=5", "dataset.min_user_interactions=3",
         "train.epochs=1", "train.batch_size=64", "train.early_stopping_patience=0", "eval.popularity_buckets=0",
         "model.hidden_size=8", "model.n_layers=1", f"output.dir={out_dir}", "output.name=run", *extra]
    return ["-c", str(tiny_data / "recipe.yaml"), *(a for x in s for a in ("--set", x))]


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory):
    """One finished run folder (trained once per module); tests work on copies of it."""
    from cva_rec.cli.main import main

    out = tmp_path_factory.mktemp("finished")
    assert main(["train", "--no-progress", *settings(tiny_data, out)]) == 0
    run = out / "run"
    assert (run / "metrics.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    return run


@pytest.fixture
def copy_of(finished_run, tmp_path):
    def make() -> Path:
        dst = tmp_path / "out" / "run"
        shutil.copytree(finished_run, dst)
        return dst

    return make


def _holder_script(run_dir: Path) -> str:
    return ("import sys; from cva_rec.config.schema import load_config; from cva_rec.jobs.run_folder import claim_run_folder; "
            f"cfg = load_config({str(run_dir / 'config.yaml')!r}, ['train.resume=true']); "
            f"claim = claim_run_folder({str(run_dir)!r}, cfg); print('locked', flush=True); sys.stdin.read()")


# (name, how the folder is prepared, extra --set / flags, fragment of the one-line refusal)
REFUSALS = [
    ("other config", None, ["train.lr=1e-4"], "holds a finished run of another config (config differs: train.lr 0.001 -> 0.0001)"),
    ("resume with other config", None, ["train.resume=true", "train.lr=1e-4"], "resume needs the same config"),
    ("resume with other hidden_size", None, ["train.resume=true", "model.hidden_size=16"], "model.hidden_size 8 -> 16"),
    ("same config, no resume", None, [], "already holds a finished run of this config; --set train.resume=true continues it, --overwrite starts it again"),
    ("metrics without config", "drop_config", [], "holds run files (metrics.json / checkpoints) but no config.yaml"),
    ("unreadable config", "garble_config", [], "its config.yaml is not a valid config here"),
    ("killed before metrics", "drop_metrics", ["train.lr=1e-4"], "holds an unfinished run of another config"),
]


@pytest.mark.parametrize("name, prepare, extra, fragment", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_reusing_a_run_folder_is_refused_and_changes_nothing(cli, tiny_data, copy_of, name, prepare, extra, fragment):
    run = copy_of()
    if prepare == "drop_config":
        (run / "config.yaml").unlink()
    elif prepare == "garble_config":
        (run / "config.yaml").write_text("train: {lr: -1}\n")
    elif prepare == "drop_metrics":
        (run / "metrics.json").unlink()
    before = folder_hash(run.parent)
    cli("train", "--no-progress", *settings(tiny_data, run.parent, *extra)).assert_one_line_error(fragment)
    assert folder_hash(run.parent) == before


def test_a_held_folder_refuses_a_second_writer_naming_the_holder(cli, tiny_data, copy_of):
    run = copy_of()
    holder = subprocess.Popen([sys.executable, "-c", _holder_script(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = folder_hash(run)
        out = cli("train", "--no-progress", *settings(tiny_data, run.parent, "train.resume=true"))
        out.assert_one_line_error(f"is in use by pid {holder.pid} on ")
        assert "wait for it to finish" in out.err and folder_hash(run) == before
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the lock of the killed holder: the folder can be claimed again
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.run_folder import claim_run_folder

    cfg = load_config(run / "config.yaml", ["train.resume=true"])
    with claim_run_folder(run, cfg) as claim:
        assert json.loads((run / ".lock").read_text())["pid"] == os.getpid() and claim.resume


def test_resume_of_the_same_config_and_overwrite_keep_other_files(cli, tiny_data, copy_of):
    run = copy_of()
    (run / "my_notes.txt").write_text("mine")
    old_metrics = json.loads((run / "metrics.json").read_text())
    # resume: same config, and a resumed run may be given more epochs; it is then the 2-epoch experiment
    assert cli("train", "--no-progress", *settings(tiny_data, run.parent, "train.resume=true", "train.epochs=2")).code == 0
    resumed = json.loads((run / "metrics.json").read_text())
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.run_folder import config_id

    assert resumed["config_id"] == config_id(load_config(run / "config.yaml")) != old_metrics["config_id"]
    assert resumed["epochs_trained"] == 2
    # overwrite with another config: the old run is replaced, the user's file stays
    assert cli("train", "--no-progress", "--overwrite", *settings(tiny_data, run.parent, "train.lr=1e-4")).code == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    new = json.loads((run / "metrics.json").read_text())
    assert cfg["train"]["lr"] == 1e-4 and new["config_id"] != old_metrics["config_id"]
    assert (run / "my_notes.txt").read_text() == "mine"


def test_killed_overwrite_never_leaves_old_metrics_beside_the_new_config(tiny_data, copy_of):
    """Kill an overwriting run the moment its config.yaml appears: the old metrics.json is already gone,
    so `sweep` sees an unfinished run, not a finished one."""
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.run_folder import config_id
    from cva_rec.jobs.sweep import SweepRun

    run = copy_of()
    old_id = json.loads((run / "metrics.json").read_text())["config_id"]
    # 30 epochs keep the new run alive long enough for this loop to see its config on a busy machine
    proc = cva_rec_process(["train", "--no-progress", "--overwrite",
                            *settings(tiny_data, run.parent, "train.lr=1e-4", "train.epochs=30")])
    seen_new_config = False
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            text = (run / "config.yaml").read_text() if (run / "config.yaml").is_file() else ""
            if "lr: 0.0001" in text:  # config first, metrics second: the run only moves forward
                seen_new_config = True
                metrics = run / "metrics.json"
                assert not metrics.is_file() or json.loads(metrics.read_text())["config_id"] != old_id
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seen_new_config or proc.returncode == 0, proc.stderr.read()
    cfg = load_config(run / "config.yaml")
    if (run / "metrics.json").is_file():  # the new run finished before the kill landed: its own metrics
        assert json.loads((run / "metrics.json").read_text())["config_id"] == config_id(cfg)
    else:
        assert not SweepRun("run", [], None, run, cfg).finished


def test_a_lock_taken_but_not_yet_named_is_refused_in_one_line(cli, tiny_data, copy_of):
    """The window between a winner's flock and its writing its name (its config checks run there): the
    second writer is refused with one line that says the folder is in use, and nothing changes."""
    from cva_rec.jobs.run_folder import LOCK_FILE

    run = copy_of()
    (run / LOCK_FILE).write_text("")
    script = ("import fcntl, sys; fh = open(sys.argv[1], 'a+'); fcntl.flock(fh, fcntl.LOCK_EX); "
              "print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", script, str(run / LOCK_FILE)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = folder_hash(run)
        out = cli("train", "--no-progress", *settings(tiny_data, run.parent, "train.resume=true"))
        out.assert_one_line_error("is in use by another process (its lock file names no holder yet)")
        assert folder_hash(run) == before
    finally:
        holder.kill()
        holder.wait()


def test_two_real_processes_on_one_folder(tiny_data, tmp_path):
    """Two `cva-rec train` processes started together on one run folder: one trains, the other is
    refused with one line, and the folder holds the winner's config beside the winner's metrics."""
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.run_folder import config_id

    out = tmp_path / "out"
    a = cva_rec_process(["train", "--no-progress", *settings(tiny_data, out, "train.lr=1e-3")])
    b = cva_rec_process(["train", "--no-progress", *settings(tiny_data, out, "train.lr=2e-3")])
    results = []
    for p in (a, b):
        stdout, stderr = p.communicate(timeout=300)
        results.append((p.returncode, stdout, stderr))
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    lines = [ln for ln in loser[2].splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in loser[2], loser[2]
    # The loser may arrive while the winner holds the lock but has not yet named itself in it (its config
    # checks run between the two), so "in use by another process" is as right as "in use by pid ...".
    assert "is in use by" in lines[0] or "another config" in lines[0], lines[0]
    run = out / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config_id"] == config_id(load_config(run / "config.yaml"))


def test_a_run_folder_symlinked_out_of_output_dir_is_refused(cli, tiny_data, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "run").symlink_to(elsewhere, target_is_directory=True)
    before = folder_hash(tmp_path)
    cli("train", "--no-progress", *settings(tiny_data, out)).assert_one_line_error("is outside output.dir")
    assert folder_hash(tmp_path) == before and not any(elsewhere.iterdir())


def test_a_run_that_fails_before_training_leaves_no_run_folder(cli, tiny_data, tmp_path):
    """The folder is claimed before the data is read; a run that fails there removes what claiming made."""
    out = tmp_path / "out"
    result = cli("train", "--no-progress", *settings(tiny_data, out, "dataset.name=missing_dataset"))
    result.assert_one_line_error("missing_dataset")
    assert not out.exists()


@pytest.mark.parametrize("setting", ["train.strategy=nonsense", "train.accelerator=tpu"])
def test_hardware_settings_lightning_refuses_are_one_line_and_leave_no_folder(cli, tiny_data, tmp_path, setting):
    out = tmp_path / "out"
    cli("train", "--no-progress", *settings(tiny_data, out, setting)).assert_one_line_error("Lightning refused the train.* settings")
    assert not out.exists()


def test_a_plain_file_as_run_dir_is_one_line_and_unchanged(cli, tiny_data, tmp_path):
    target = tmp_path / "not_a_folder"
    target.write_text("my data")
    cli("train", "--no-progress", *settings(tiny_data, tmp_path / "out"), "--run-dir", str(target)).assert_one_line_error(
        f"cannot create run folder {target}")
    assert target.read_text() == "my data"


def test_refusals_name_the_calling_commands_way_out(tmp_path):
    """`cva-rec warmup` has neither --run-dir nor --overwrite: its refusals say what it can do."""
    from cva_rec.config.schema import dump_config, load_config
    from cva_rec.errors import RunFolderError
    from cva_rec.jobs.run_folder import claim_run_folder

    run = tmp_path / "warmup"
    run.mkdir()
    dump_config(load_config(None, ["train.lr=0.01"]), run / "config.yaml")
    (run / "metrics.json").write_text("{}")
    with pytest.raises(RunFolderError) as err:
        claim_run_folder(run, load_config(None), resume=True, elsewhere="another output.name", replace_flag=None)
    message = str(err.value)
    assert "train.lr 0.01 -> 0.001" in message and "choose another output.name or delete the folder to start again" in message
    assert "--overwrite" not in message and "--run-dir" not in message


def test_an_encoder_option_at_its_default_is_the_same_config():
    """``compose: concat`` written out and left unset are one config (a folder made before an option
    existed keeps its identity); another value is a difference named with the default it replaces."""
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.run_folder import config_id, differences

    base = ["item_encoder.name=lucid", "item_encoder.codes_path=codes.npz"]
    unset, written, other = (load_config(None, base + extra) for extra in ([], ["item_encoder.compose=concat"],
                                                                          ["item_encoder.compose=sum"]))
    assert config_id(unset) == config_id(written) != config_id(other)
    assert differences(unset, other) == ["item_encoder.compose 'concat' (default) -> 'sum'"]
    assert differences(other, unset) == ["item_encoder.compose 'sum' -> 'concat' (default)"]


# -- every process checks: rank variables, a launch's ranks ---------------------------------------
@pytest.mark.parametrize("variable", ["RANK", "LOCAL_RANK", "SLURM_PROCID"])
def test_a_rank_variable_left_in_a_single_process_never_skips_the_checks(cli, tiny_data, copy_of, monkeypatch, variable):
    """`RANK=1 cva-rec train` (one process, no launch) on a finished folder of another config: refused."""
    for name in ("WORLD_SIZE", "SLURM_NTASKS", "CVA_REC_LAUNCH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "1")
    run = copy_of()
    before = folder_hash(run.parent)
    cli("train", "--no-progress", *settings(tiny_data, run.parent, "train.lr=1e-4")).assert_one_line_error(
        "holds a finished run of another config (config differs: train.lr 0.001 -> 0.0001)")
    assert folder_hash(run.parent) == before


def test_a_non_zero_rank_that_names_no_launch_is_refused(cli, tiny_data, copy_of, monkeypatch):
    for name in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "CVA_REC_LAUNCH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    run = copy_of()
    (run / "metrics.json").unlink()  # an unfinished run: resuming it would train
    before = folder_hash(run.parent)
    cli("train", "--no-progress", *settings(tiny_data, run.parent, "train.resume=true")).assert_one_line_error(
        "RANK=1 WORLD_SIZE=2 make this process a non-zero rank of a distributed launch, but no launcher names the launch")
    assert folder_hash(run.parent) == before


def test_a_non_zero_rank_joins_only_the_folder_its_own_rank_0_holds(copy_of, monkeypatch):
    """Rank 0 (this process) holds the folder; a rank of its launch joins, a rank of another launch or
    with another config is refused (with one line; here seen as the exception's last line)."""
    from cva_rec.config.schema import load_config
    from cva_rec.jobs.run_folder import LAUNCH_VARIABLE, claim_run_folder

    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "SLURM_NTASKS", "SLURM_PROCID", LAUNCH_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(LAUNCH_VARIABLE, "")  # restored after the test: the claim below exports its token
    run = copy_of()
    (run / "metrics.json").unlink()
    cfg = load_config(run / "config.yaml", ["train.resume=true"])
    script = ("import sys; from cva_rec.config.schema import load_config; import cva_rec.jobs.run_folder as rf; "
              "rf.LAUNCH_WAIT_SECONDS = 1; "
              f"cfg = load_config({str(run / 'config.yaml')!r}, ['train.resume=true'] + sys.argv[1:]); "
              f"claim = rf.claim_run_folder({str(run)!r}, cfg); print('joined', claim.primary)")

    def rank_1(launch: str, *overrides: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_RANK": "1", LAUNCH_VARIABLE: launch}
        return subprocess.run([sys.executable, "-c", script, *overrides], env=env, text=True, capture_output=True, timeout=120)

    with claim_run_folder(run, cfg):
        token = os.environ[LAUNCH_VARIABLE]
        joined = rank_1(token)
        assert joined.returncode == 0 and joined.stdout.strip() == "joined False", joined.stderr
        other = rank_1("another-launch")
        assert "is not held by rank 0 of this launch after 1 s" in other.stderr.strip().splitlines()[-1]
        other_config = rank_1(token, "train.lr=0.01")  # the folder's config check runs in every rank
        assert "holds an unfinished run of another config" in other_config.stderr.strip().splitlines()[-1]


# -- a finished run is never rewritten by a resume ----------------------------------------------------
def test_resume_of_a_finished_run_leaves_it_byte_identical(cli, tiny_data, copy_of, caplog):
    run = copy_of()
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["train_epoch_seconds"]) == 1
    before = folder_hash(run / "checkpoints"), (run / "metrics.json").read_bytes(), (run / "config.yaml").read_bytes()
    with caplog.at_level("WARNING", logger="cva_rec"):
        result = cli("train", "--no-progress", *settings(tiny_data, run.parent, "train.resume=true"))
    assert result.code == 0, result.err
    assert "holds a finished run of this config (train.epochs=1): nothing to train, left as it is" in caplog.text
    assert (folder_hash(run / "checkpoints"), (run / "metrics.json").read_bytes(), (run / "config.yaml").read_bytes()) == before
    # more epochs continue it; the epoch timings of the first run survive the resume
    assert cli("train", "--no-progress", *settings(tiny_data, run.parent, "train.resume=true", "train.epochs=2")).code == 0
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["epochs_trained"] == 2 and resumed["train_epoch_seconds"][0] == metrics["train_epoch_seconds"][0]
    assert len(resumed["train_epoch_seconds"]) == 2


def test_sweep_checks_each_folder_when_its_run_starts(tiny_data, tmp_path, monkeypatch):
    """While run 1 trains, another process finishes run 2's folder under another config, and run 3's under
    the grid's own: run 2 is reported as failed (not as this grid's), run 3 is skipped, nothing is rewritten."""
    from cva_rec.config.schema import dump_config
    from cva_rec.jobs.sweep import load_grid, run_sweep

    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({"base": str(tiny_data / "recipe.yaml"),
                                         "fixed": [x for x in settings(tiny_data, tmp_path)[2:] if x != "--set"
                                                   and not x.startswith("output.")],
                                         "grid": {"train.seed": [1, 2, 3]}}))
    out = tmp_path / "out"
    trained = []

    def other_process_meanwhile(run, progress):
        trained.append(run.name)
        run.run_dir.mkdir(parents=True)
        (run.run_dir / "metrics.json").write_text('{"test": {}}')  # this run: trained (a stand-in)
        for later, lr in ((runs[1], 0.05), (runs[2], None)):  # what another process wrote meanwhile
            later.run_dir.mkdir(parents=True)
            cfg = {**later.config, "train": {**later.config["train"], "lr": lr or later.config["train"]["lr"]}}
            dump_config(cfg, later.run_dir / "config.yaml")
            (later.run_dir / "metrics.json").write_text('{"test": {}}')
        return 0

    grid = load_grid(grid_file)
    from cva_rec.jobs.sweep import expand

    runs = expand(grid, out)
    monkeypatch.setattr("cva_rec.jobs.sweep.train_in_subprocess", other_process_meanwhile)
    monkeypatch.setattr("cva_rec.jobs.sweep.expand", lambda g, o: runs)
    lines = []
    result = run_sweep(grid, out, printer=lines.append)
    assert trained == ["s1"] and result.skipped == ["s3"] and [name for name, _ in result.failed] == ["s2"]
    assert "holds a run of another config than the grid gives it (train.lr 0.05 -> 0.001)" in result.failed[0][1]
    assert (runs[1].run_dir / "metrics.json").read_text() == '{"test": {}}'
    assert any(line.startswith("[2/3] s2: FAILED (its folder holds a run of another config") for line in lines)


# -- no write leaves the run folder: symlinks inside it are refused or replaced, never written through --
def _link_out(run: Path, name: str, elsewhere: Path) -> None:
    """Move ``run/name`` to ``elsewhere/name`` and leave a symlink to it in its place."""
    elsewhere.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run / name), str(elsewhere / name))
    (run / name).symlink_to(elsewhere / name, target_is_directory=(elsewhere / name).is_dir())


@pytest.mark.parametrize("name", ["checkpoints", "tb", "metrics.json", "config.yaml"])
def test_a_symlink_in_a_run_folder_is_refused_and_replaced_by_overwrite(cli, tiny_data, copy_of, tmp_path, name):
    run = copy_of()
    elsewhere = tmp_path / "elsewhere"
    _link_out(run, name, elsewhere)
    if name != "metrics.json":
        (run / "metrics.json").unlink()  # an unfinished run: resume would train (with 2 epochs, a finished one too)
    target = folder_hash(elsewhere)
    before = folder_hash(run)
    cli("train", "--no-progress", *settings(tiny_data, run.parent, "train.resume=true", "train.epochs=2")).assert_one_line_error(
        f"{name} is a symlink to {elsewhere / name}")
    assert folder_hash(run) == before and folder_hash(elsewhere) == target
    # --overwrite replaces the link (never what it points to) by the run's own file or folder
    assert cli("train", "--no-progress", "--overwrite", *settings(tiny_data, run.parent)).code == 0
    assert not (run / name).is_symlink() and (run / name).exists() and folder_hash(elsewhere) == target
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "metrics.json").is_file()


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(cli, tiny_data, copy_of, tmp_path):
    run = copy_of()
    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    (run / ".lock").unlink()
    (run / ".lock").symlink_to(precious)
    cli("train", "--no-progress", "--overwrite", *settings(tiny_data, run.parent)).assert_one_line_error(
        ".lock is a symlink")
    assert precious.read_text() == "mine" and (run / "metrics.json").is_file()


def test_overwrite_removes_only_what_a_run_writes(cli, tiny_data, copy_of):
    run = copy_of()
    (run / "checkpoints" / "my_notes.txt").write_text("mine")
    (run / "tb" / "my_plot.png").write_bytes(b"png")
    assert cli("train", "--no-progress", "--overwrite", *settings(tiny_data, run.parent, "train.lr=1e-4")).code == 0
    assert (run / "checkpoints" / "my_notes.txt").read_text() == "mine" and (run / "tb" / "my_plot.png").read_bytes() == b"png"
    assert json.loads((run / "metrics.json").read_text())["config_id"] != ""
    # a folder of the user's files where metrics.json belongs is never deleted
    (run / "metrics.json").unlink()
    (run / "metrics.json").mkdir()
    (run / "metrics.json" / "mine.txt").write_text("mine")
    before = folder_hash(run.parent)
    cli("train", "--no-progress", "--overwrite", *settings(tiny_data, run.parent)).assert_one_line_error(
        "metrics.json is a folder, not a file a run writes")
    assert folder_hash(run.parent) == before


# -- leftover temporaries: the next writer removes its own kind, nothing else ---------------------------
def test_temporaries_left_by_a_killed_writer_are_removed_by_the_next_writer(cli, tiny_data, copy_of):
    import tempfile

    run = copy_of()
    # what a SIGKILL in the middle of cva_rec.io's atomic writes leaves (its own naming: mkstemp beside the target)
    left = [Path(tempfile.mkstemp(prefix=".best.ckpt.", suffix=".tmp", dir=run / "checkpoints")[1]),
            Path(tempfile.mkstemp(prefix=".last.ckpt.", suffix=".tmp", dir=run / "checkpoints")[1]),
            Path(tempfile.mkstemp(prefix=".metrics.json.", suffix=".tmp", dir=run)[1])]
    mine = [run / ".notes.txt.abcdefgh.tmp", run / "checkpoints" / "draft.tmp", run / ".best.ckpt.tmp"]
    for path in mine:
        path.write_text("mine")
    metrics = (run / "metrics.json").read_bytes()
    assert cli("train", "--no-progress", *settings(tiny_data, run.parent, "train.resume=true")).code == 0
    assert not any(path.exists() for path in left)
    assert all(path.read_text() == "mine" for path in mine) and (run / "metrics.json").read_bytes() == metrics


def test_evaluate_never_writes_its_logs_through_a_symlink(cli, copy_of, tmp_path):
    run = copy_of()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "eval").symlink_to(elsewhere, target_is_directory=True)
    before = folder_hash(run)
    cli("evaluate", str(run), "--no-progress").assert_one_line_error("eval is a symlink to")
    assert folder_hash(run) == before and not any(elsewhere.iterdir())


def test_a_sweep_run_folder_linked_out_of_the_sweep_is_refused(tiny_data, tmp_path):
    from cva_rec.jobs.sweep import load_grid, run_sweep

    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({"base": str(tiny_data / "recipe.yaml"), "grid": {"train.seed": [1]}}))
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "s1").symlink_to(elsewhere, target_is_directory=True)
    result = run_sweep(load_grid(grid_file), out, printer=lambda line: None)
    assert [name for name, _ in result.failed] == ["s1"] and "leads out of" in result.failed[0][1]
    assert not any(elsewhere.iterdir())


def test_a_warmup_folder_linked_out_of_output_dir_is_refused(cli, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "w").symlink_to(elsewhere, target_is_directory=True)
    (tmp_path / "codes.npz").write_bytes(b"")  # never read: the folder is refused first
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "ml100k" / "lucid_warmup.yaml"
    cli("warmup", "--no-progress", "-c", str(recipe), "--set", f"item_encoder.codes_path={tmp_path / 'codes.npz'}",
        "--set", f"output.dir={out}", "--set", "output.name=w").assert_one_line_error("is outside output.dir")
    assert not any(elsewhere.iterdir())
