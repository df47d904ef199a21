"""A run folder is owned by one writer and holds the runs of one config.

:func:`claim_run_folder` is what ``run_experiment`` (and ``cva-rec warmup``) does before it writes
anything into a run folder:

1. **Lock.** It takes an exclusive ``fcntl.flock`` on ``<run_dir>/.lock`` for as long as the
   process writes the folder, and records the holder (pid, host, command, start time) in that
   file. A second writer is refused with one line naming the holder. The kernel releases the
   lock when the holder exits, however it exits, so a killed run never leaves a stale lock.
2. **Identity.** The folder's ``config.yaml`` says which config it holds; the config's identity
   (:func:`config_id`, also recorded in ``metrics.json``) is a hash of the resolved config without
   the keys that do not change what the run computes (``train.resume``, ``train.num_workers``,
   ``output.*``, ...: ``Key(identity=False)`` in :mod:`cva_rec.config.schema`), the rule of
   :mod:`cva_rec.config.identity` that sweeps, Optuna and ``report`` apply too. It is recomputed from
   the folder's ``config.yaml`` through the loader, so keys added to the schema later (with their
   defaults) do not make an old folder look different. The input artifacts the run reads (feature
   store, codes, a warm-up seed: :mod:`cva_rec.jobs.provenance`) are part of the identity by content:
   the folder's ``artifacts.json`` records their fingerprints, and the same path holding other bytes
   is another experiment (a folder written before fingerprints were recorded is compared by config
   only). A folder holding a run is reused only to resume the *same* config on the same artifacts
   (``--set train.resume=true``; a resumed run may be given more epochs,
   :data:`~cva_rec.config.identity.RESUME_MAY_CHANGE`) or when the caller asked to overwrite it.
3. **Commit.** ``config.yaml`` is written by :meth:`RunClaim.commit_config`, called once every
   check (data, content, model) has passed, right before training. When overwriting, the old
   ``metrics.json`` is removed first, then the old checkpoints and logs, then ``artifacts.json`` and
   the new config are written: whatever moment a run is killed at, the folder never shows a new config beside an
   old ``metrics.json`` (which ``sweep`` would take for a finished run). A run that fails before
   the commit removes what claiming created (the lock file, folders that did not exist).

A resume of a finished run that asks for no more epochs than it was trained for has nothing to
train: the claim says so (:attr:`RunClaim.nothing_to_train`) and the run is left byte for byte as it
is (a sweep that meets a run another process has just finished must not rewrite it).

In a DDP job only the primary process (global rank 0) claims the folder; the other ranks run the same
checks, then join the folder only when its lock is held by rank 0 of their own launch
(:mod:`cva_rec.jobs.launch`); rank variables left in the environment of a single process change nothing.

Every job that writes a run folder claims it here: training, warm-up, ``train-retriever`` and
``tokenize`` (``job`` names the schema its ``config.yaml`` is read back with, :data:`cva_rec.config.schema.JOBS`).
A job that writes ``metrics.json`` from its claim does it with :meth:`RunClaim.write_metrics`. The jobs that
read a trained run and write their results beside it (``evaluate``, ``retrieve``) hold the same lock while
they write (:func:`results_lock`): they neither interleave with a training run of the folder nor with each other.
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import fnmatch
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from cva_rec.config.identity import RESUME_MAY_CHANGE, config_id, config_identity, differences  # noqa: F401 (re-exported)
from cva_rec.errors import ConfigError, RunFolderError
from cva_rec.jobs.launch import (LAUNCH_VARIABLE, claim_token, is_primary_process, launch_token,  # noqa: F401 (re-exported)
                                 process_alive, rank_description)

LOCK_FILE = ".lock"
CONFIG_FILE = "config.yaml"
#: every tested user's target and rank (cva_rec.training.per_user_file), written just before metrics.json
PER_USER_FILE = "per_user_test.npz"
#: what a run writes; removed (metrics first) when a run is overwritten. Other files are left alone.
RUN_OUTPUTS = ("metrics.json", PER_USER_FILE, "checkpoints", "tb")
#: the files of a run inside its output folders (glob patterns): the only ones an overwrite removes there
OWN_FILES = {"checkpoints": ("*.ckpt",), "tb": ("events.out.tfevents.*", "hparams.yaml")}
#: files the folder's writer writes through cva_rec.io, by subfolder: their temporaries left by a killed
#: writer are removed by the next one (it holds the lock, so no other writer's temporary is in flight)
WRITTEN_FILES = {".": (CONFIG_FILE, "metrics.json", "artifacts.json", PER_USER_FILE, "seed.pt", "stages.json", "stages.md"),
                 "checkpoints": ("*.ckpt",)}
#: how long a non-zero rank waits for rank 0 of its launch to claim the folder
LAUNCH_WAIT_SECONDS = 120.0


@dataclass
class RunClaim:
    """A claimed run folder: the lock is held until :meth:`release` (or the ``with`` block ends)."""

    run_dir: Path
    cfg: Mapping[str, Any]
    resume: bool
    overwrite: bool
    ignore: Tuple[str, ...] = ()
    #: how the refusal messages name the way out, in the calling command's own words
    elsewhere: str = "another output.name / --run-dir"
    replace_flag: Optional[str] = "--overwrite"  # None: the command cannot replace a run
    primary: bool = True
    #: the schema the folder's config.yaml is read back with (cva_rec.config.schema.JOBS)
    job: str = "train"
    #: how the refusal of a finished run of the same config names the way to continue it (None: no way)
    resume_hint: Optional[str] = "--set train.resume=true continues it"
    #: a resume of a finished run with no more epochs to train: the caller leaves the folder as it is
    nothing_to_train: bool = False
    #: fingerprints of the input artifacts (:func:`cva_rec.jobs.provenance.fingerprint_artifacts`)
    artifacts: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    _fh: Any = field(default=None, repr=False)
    #: what claiming created (folders, the lock file): removed again when the run fails before
    #: commit_config, so a run that never started leaves no trace
    _created: List[Path] = field(default_factory=list, repr=False)
    _committed: bool = field(default=False, repr=False)

    @property
    def config_id(self) -> str:
        return config_id(self.cfg, self.ignore)

    def commit_config(self) -> None:
        """Clear an overwritten run (metrics first), then write ``config.yaml``; call once every check passed."""
        if not self.primary:
            return
        if self.overwrite:
            for name in RUN_OUTPUTS:
                _remove_output(self.run_dir / name)
        from cva_rec.config.schema import dump_config
        from cva_rec.io import atomic_write_json
        from cva_rec.jobs.provenance import ARTIFACTS_FILE

        atomic_write_json(self.run_dir / ARTIFACTS_FILE, self.artifacts, sort_keys=True)
        dump_config(self.cfg, self.run_dir / CONFIG_FILE)
        self._committed = True

    def write_metrics(self, metrics: Mapping[str, Any]) -> dict:
        """Write ``metrics.json`` (atomically, last: it marks the run finished) with the config identity.
        The one place a claimed job's metrics.json is written: what it records about the run's own
        files belongs here."""
        from cva_rec.io import atomic_write_json

        out = {**metrics, "config_id": self.config_id, "artifacts": self.artifacts}
        if self.primary:
            atomic_write_json(self.run_dir / "metrics.json", out)
        return out

    def release(self) -> None:
        if self._fh is not None:
            try:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> "RunClaim":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None and not self._committed:
            self._undo()
        self.release()

    def _undo(self) -> None:
        """Remove what the claim created (while still holding the lock): lock file, then empty folders."""
        for path in self._created:
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError:
                pass  # not empty (someone else's files) or already gone: leave it


def run_folder_of(cfg: Mapping[str, Any], run_dir: Optional[str | os.PathLike] = None) -> Path:
    """``run_dir`` when given (``--run-dir``: any place the user names), else ``output.dir/<run name>``,
    which must stay inside ``output.dir`` (also through symlinks)."""
    if run_dir is not None:
        return Path(run_dir)
    from cva_rec.config.schema import run_name

    return folder_inside(Path(cfg["output"]["dir"]), run_name(cfg))


def folder_inside(parent: Path, name: str, what: str = "output.dir") -> Path:
    """``parent/name``, refused when it resolves outside ``parent`` (a ``..`` or a symlink leading out)."""
    path = parent / name
    if parent.resolve() not in path.resolve().parents:
        raise RunFolderError(f"run folder {path} is outside {what} {parent} (it resolves to {path.resolve()}; a run "
                             "writes only inside it: output.name must name a folder inside it, not a link out)")
    return path


def claim_run_folder(run_dir: str | os.PathLike, cfg: Mapping[str, Any], *, overwrite: bool = False,
                     resume: Optional[bool] = None, ignore: Iterable[str] = (),
                     elsewhere: str = "another output.name / --run-dir", replace_flag: Optional[str] = "--overwrite",
                     job: str = "train", resume_hint: Optional[str] = "--set train.resume=true continues it",
                     inputs: Optional[Mapping[str, Any]] = None) -> RunClaim:
    """Lock ``run_dir`` and check that ``cfg`` may write it (see the module docstring).

    ``resume`` defaults to ``cfg['train']['resume']``; ``ignore``: more ``section.key`` left out of
    the identity (e.g. ``warmup.stages``: a warmup may be continued with more stages); ``elsewhere`` and
    ``replace_flag`` name the calling command's way out in its refusals; ``job`` names the schema the
    folder's ``config.yaml`` is read back with, ``resume_hint`` the way to continue a finished run; ``inputs``:
    name -> path of artifacts the job reads besides those its config names (fingerprinted with them). Raises :class:`RunFolderError`
    (a folder in use, or holding another config / a run that would be lost) before anything is written.
    """
    run_dir = Path(run_dir)
    resume = bool(cfg["train"]["resume"]) if resume is None else resume
    from cva_rec.config.schema import job_of
    from cva_rec.jobs.provenance import config_artifacts, fingerprint_artifacts

    ignore = (*ignore, *job_of(job).unread())  # keys the job never reads are no part of what its folder holds

    more = {"job": job, "resume_hint": resume_hint,
            "artifacts": fingerprint_artifacts({**config_artifacts(cfg, job), **(inputs or {})})}
    if not is_primary_process():
        claim = RunClaim(run_dir, cfg, resume, overwrite, tuple(ignore), elsewhere, replace_flag, primary=False, **more)
        _check_reuse(claim)  # the same checks as rank 0, on the same files: the same verdict
        if not claim.nothing_to_train:
            _join_launch(claim)
        return claim
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"cannot create run folder {run_dir}: {exc.strerror or exc} (training writes its run folder)") from None
    if not (run_dir / LOCK_FILE).exists():
        created.insert(0, run_dir / LOCK_FILE)
    try:
        fh = _lock(run_dir, elsewhere)
    except BaseException:
        RunClaim(run_dir, cfg, resume, overwrite, _created=created)._undo()
        raise
    claim = RunClaim(run_dir, cfg, resume, overwrite, tuple(ignore), elsewhere, replace_flag, _fh=fh, _created=created, **more)
    try:
        _check_entries(claim)
        _check_reuse(claim)
        _record_holder(fh, claim.config_id)
        _remove_stale_temps(run_dir)
    except BaseException:
        claim.__exit__(*sys.exc_info())
        raise
    return claim


def _lock(run_dir: Path, elsewhere: str):
    path = run_dir / LOCK_FILE
    try:  # never through a symlink: the holder's record would overwrite whatever it points to
        fh = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666), "r+")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunFolderError(_symlink_refusal(run_dir, LOCK_FILE, "remove the link")) from None
        raise RunFolderError(f"cannot create the lock file {path}: {exc.strerror or exc} "
                             "(the job that writes the folder needs write access to it)") from None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunFolderError(f"run folder {run_dir} is in use by {_holder(path)}; wait for it to finish "
                                 f"or choose {elsewhere}") from None
        raise RunFolderError(f"cannot lock run folder {run_dir}: {exc.strerror or exc} (the file system "
                             "must support flock)") from None
    return fh


@contextmanager
def results_lock(folder: str | os.PathLike, cfg: Mapping[str, Any], elsewhere: str) -> Iterator[None]:
    """Hold ``folder``'s lock while a job that reads a trained run writes its results there (``evaluate``:
    ``eval/`` and ``eval_*.json``; ``retrieve``: ``retrieve_*.json``): a training run or another evaluation
    writing the same folder is refused with one line naming its holder and ``elsewhere``, the way out.
    ``cfg``: the config evaluated (its identity is recorded with the holder). In a DDP launch only the
    primary process holds it (the others write nothing there)."""
    if not is_primary_process():
        yield
        return
    fh = _lock(Path(folder), elsewhere)
    try:
        _record_holder(fh, config_id(cfg))
        yield
    finally:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        finally:
            fh.close()


def _record_holder(fh, config_identity: str) -> None:
    """Name this process, its launch and its config in the lock file (after the checks passed: a refused
    run changes nothing)."""
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300],
              "since": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
              "launch": claim_token(), "config_id": config_identity}
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps(holder) + "\n")
    fh.flush()


def _join_launch(claim: RunClaim) -> None:
    """A non-zero rank: wait until rank 0 of this launch holds the folder with this config (rank 0 claims
    it before it starts the other ranks, or, under torchrun / SLURM, at about the same time)."""
    run_dir, ranks = claim.run_dir, rank_description()
    token = launch_token()
    if token is None:
        raise RunFolderError(f"{ranks} make this process a non-zero rank of a distributed launch, but no launcher "
                             f"names the launch (no {LAUNCH_VARIABLE}, torchrun or SLURM variables), so it cannot "
                             f"check that rank 0 holds run folder {run_dir}; unset those variables to run one process")
    deadline = time.monotonic() + LAUNCH_WAIT_SECONDS
    while True:
        holder = _holder_record(run_dir / LOCK_FILE)
        if holder.get("launch") == token and process_alive(holder):
            break
        if time.monotonic() > deadline:
            raise RunFolderError(f"run folder {run_dir} is not held by rank 0 of this launch after {LAUNCH_WAIT_SECONDS:.0f} s "
                                 f"({ranks}, launch {token}); a non-zero rank writes nothing without it")
        time.sleep(0.2)
    if holder.get("config_id") != claim.config_id:
        raise RunFolderError(f"run folder {run_dir} is held by rank 0 of this launch with config {holder.get('config_id')}, "
                             f"this rank has {claim.config_id}; every rank must run the same config")


def _holder_record(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text())
        return f"pid {h['pid']} on {h['host']} since {h['since']} ({h['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its lock file names no holder yet)"


def _check_reuse(claim: RunClaim) -> None:
    run_dir, cfg = claim.run_dir, claim.cfg
    if claim.overwrite:
        return  # the old run is removed by commit_config, once the new one is ready to start
    flag = claim.replace_flag
    replace = f"pass {flag} to replace it" if flag else "delete the folder to start again"
    has_outputs = (run_dir / "metrics.json").exists() or any((run_dir / "checkpoints").glob("*.ckpt"))
    prior = run_dir / CONFIG_FILE
    if not prior.is_file():
        if has_outputs:
            raise RunFolderError(f"run folder {run_dir} holds run files (metrics.json / checkpoints) but no {CONFIG_FILE}; "
                                 f"choose {claim.elsewhere} or {replace}")
        return
    old, problem = _read_prior(prior, claim.job)
    # resuming continues the same run, possibly for more epochs
    ignore = (*claim.ignore, *RESUME_MAY_CHANGE) if claim.resume else claim.ignore
    same = old is not None and config_id(old, ignore) == config_id(cfg, ignore)
    what = "a finished run" if (run_dir / "metrics.json").exists() else "an unfinished run" if has_outputs else "the config of a run"
    changed = _changed_artifacts(run_dir, claim) if same and has_outputs else []
    if changed:
        raise RunFolderError(f"run folder {run_dir} holds {what} of this config on other input files, another experiment "
                             f"({'; '.join(changed)}); " + ("resume needs the same files; " if claim.resume else "")
                             + f"choose {claim.elsewhere} or {replace}")
    if same:
        finished = (run_dir / "metrics.json").exists()
        if claim.resume and finished and _nothing_more(claim.job, cfg, old):
            claim.nothing_to_train = True  # a resume never rewrites a finished run; more epochs continue it
            return
        if claim.resume or not has_outputs:
            return
        again = f"{flag} starts it again" if flag else "deleting the folder starts it again"
        raise RunFolderError(f"run folder {run_dir} already holds {what} of this config; "
                             + (f"{claim.resume_hint}, {again}" if claim.resume_hint else again))
    why = problem or "config differs: " + "; ".join(differences(old, cfg, ignore))
    raise RunFolderError(f"run folder {run_dir} holds {what} of another config ({why}); "
                         + ("resume needs the same config; " if claim.resume and claim.resume_hint else "")
                         + f"choose {claim.elsewhere} or {replace}")


def _nothing_more(job: str, cfg: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether a resume of a finished run of the same config has nothing left to train: a training run
    asked for no more epochs; a retriever always (its whole schedule is part of its identity)."""
    if job == "train":
        return int(cfg["train"]["epochs"]) <= int(old["train"]["epochs"])
    return job == "retriever"


def _changed_artifacts(run_dir: Path, claim: RunClaim) -> List[str]:
    """The input artifacts whose content differs from the folder's run ([] when the folder records none)."""
    from cva_rec.jobs.provenance import changed_artifacts, recorded_artifacts

    old = recorded_artifacts(run_dir)  # None: a folder from before fingerprints were recorded
    return [] if old is None else changed_artifacts(old, claim.artifacts)


def _read_prior(path: Path, job: str = "train"):
    from cva_rec.config.schema import load_config

    try:
        return load_config(path, job=job), None
    except ConfigError as exc:
        return None, f"its {CONFIG_FILE} is not a valid config here: {exc}"


def _check_entries(claim: RunClaim) -> None:
    """Nothing a run writes may lead out of its folder or be of another kind than the run writes: a
    symlink is refused (``--overwrite`` replaces the link itself, never its target), a folder where a
    file belongs (or the reverse) is refused even with ``--overwrite`` (it is not the run's to delete)."""
    run_dir = claim.run_dir
    for name in (CONFIG_FILE, *RUN_OUTPUTS):
        path = run_dir / name
        if path.is_symlink():
            if claim.overwrite:
                continue  # commit_config replaces the link
            way = f"pass {claim.replace_flag} to replace the link (its target is left alone)" if claim.replace_flag else \
                "remove the link"
            raise RunFolderError(_symlink_refusal(run_dir, name, way))
        folder = name in OWN_FILES
        if path.exists() and path.is_dir() != folder:
            raise RunFolderError(f"run folder {run_dir}: {name} is a {'folder' if path.is_dir() else 'file'}, not a "
                                 f"{'folder' if folder else 'file'} a run writes; move it away (cva_rec never removes "
                                 "what it did not write)")


def _symlink_refusal(run_dir: Path, name: str, way: str) -> str:
    return (f"run folder {run_dir}: {name} is a symlink to {os.readlink(run_dir / name)}; a run writes only inside its "
            f"folder, never through a link: {way}")


def _remove_output(path: Path) -> None:
    """Remove what a run wrote at ``path``: a file, a link (never what it points to), or the run's own
    files in one of its folders (the folder too once empty; a file of yours in it stays, and so does it)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        from cva_rec.io import temp_target

        patterns = OWN_FILES.get(path.name, ())
        for entry in os.scandir(path):
            name = temp_target(entry.name) or entry.name
            if entry.is_file(follow_symlinks=False) and any(fnmatch.fnmatchcase(name, p) for p in patterns):
                os.unlink(entry.path)
        try:
            path.rmdir()
        except OSError:
            pass  # not empty: files the run did not write


def _remove_stale_temps(run_dir: Path) -> None:
    """Temporaries of cva_rec.io's atomic writes that a killed writer left (only this writer's kind of
    files, and never inside a linked folder)."""
    from cva_rec.io import remove_stale_temps

    for sub, names in WRITTEN_FILES.items():
        folder = run_dir / sub
        if not folder.is_symlink():
            remove_stale_temps(folder, names)
