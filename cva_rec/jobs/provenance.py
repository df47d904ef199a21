"""Which input artifacts a run reads, and the content fingerprint of each.

A run's config names files by path (``content.store``, ``item_encoder.codes_path``); the same path
can hold other bytes tomorrow (a store re-extracted, codes re-tokenized). So every artifact a run
reads is recorded by *content*: :func:`fingerprint_artifacts` gives each one
``{"path", "sha256", "bytes", "files"}`` (:func:`cva_rec.fingerprints.fingerprint_files`, digests
remembered by size and mtime, so a large store is read once, not at every run). The run folder
keeps them in ``artifacts.json`` and refuses to resume or reuse a folder whose run read other bytes
(:mod:`cva_rec.jobs.run_folder`); ``metrics.json`` carries them under ``artifacts`` and ``cva-rec report``
shows their short hashes, so a table row can always be traced to the files behind it.

Artifacts that come from the config are found by :func:`config_artifacts` (per job: training,
``train-retriever``, ``tokenize``); a caller adds the ones it reads on its own (a warm-up stage's
seed checkpoint) by name. The jobs that evaluate a trained run (``evaluate``, ``retrieve``) record the
same fingerprints, of the checkpoint they loaded too, in their result files (:func:`evaluation_provenance`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence, Union

from cva_rec.fingerprints import fingerprint_files

#: per job, the config keys (``section.key``) that name an input artifact file or folder
ARTIFACT_KEYS = {
    "train": ("content.store", "item_encoder.codes_path"),
    "retriever": ("content.store", "retriever.codes_path"),
    "tokenize": ("tokenize.source",),
}
#: per job, the config keys that name a trained run folder it reads: its config.yaml and best checkpoint
RUN_FOLDER_KEYS = {"retriever": ("retriever.reranker",)}
RUN_FOLDER_FILES = ("config.yaml", "checkpoints/best.ckpt")
#: ``metrics.json`` / ``artifacts.json`` key and file name
ARTIFACTS_FILE = "artifacts.json"
UNREADABLE = "unreadable"

Paths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def _value(cfg: Mapping[str, Any], name: str) -> Any:
    sec, key = name.split(".", 1)
    values = cfg.get(sec)
    return values.get(key) if isinstance(values, Mapping) else None


def config_artifacts(cfg: Mapping[str, Any], job: str = "train") -> Dict[str, Any]:
    """``section.key`` -> path for every artifact the ``job``'s config names (unset keys left out); a run
    folder it reads -> :class:`RunFiles` (the files read from it)."""
    out: Dict[str, Any] = {name: Path(_value(cfg, name)) for name in ARTIFACT_KEYS.get(job, ()) if _value(cfg, name)}
    for name in RUN_FOLDER_KEYS.get(job, ()):
        if _value(cfg, name):
            out[name] = RunFiles(Path(_value(cfg, name)), RUN_FOLDER_FILES)
    return out


class RunFiles(NamedTuple):
    """Some files of a folder, named by their path inside it (a trained run: its config and checkpoint)."""

    folder: Path
    names: Sequence[str]


def fingerprint_artifacts(artifacts: Mapping[str, Optional[Paths]]) -> Dict[str, Dict[str, Any]]:
    """name -> ``{"path", "sha256", "bytes", "files"}``; an artifact that does not exist (yet) gets
    ``sha256: None`` (the step that reads it reports it missing, in its own words)."""
    out: Dict[str, Dict[str, Any]] = {}
    for name, paths in sorted(artifacts.items()):
        if paths is None:
            continue
        if isinstance(paths, RunFiles):
            many, root, shown = [paths.folder / n for n in paths.names], paths.folder, str(paths.folder)
        else:
            many = [Path(p) for p in paths] if isinstance(paths, (list, tuple)) else [Path(paths)]
            root, shown = None, ", ".join(str(p) for p in many)
        if not all(p.exists() for p in many):
            out[name] = {"path": shown, "sha256": None}
            continue
        out[name] = {"path": shown, **fingerprint_files(many, root)}
    return out


def evaluation_provenance(cfg: Mapping[str, Any], run_dir: Path, checkpoint: Path, overrides: Sequence[str] = (),
                          more: Optional[Mapping[str, Optional[Paths]]] = None) -> Dict[str, Any]:
    """What an evaluation of a trained run (``evaluate``, ``retrieve``) records beside its numbers, so that
    they trace to the config and files behind them: ``config_id`` of the config evaluated (the run's, with the
    ``overrides``), ``run_config_id`` (of the run folder's ``config.yaml``: its ``metrics.json`` value), the
    overrides, and ``artifacts``: the fingerprints of the checkpoint, of the store / codes the config names and
    of ``more`` (name -> path, e.g. a retriever run's files)."""
    from cva_rec.config.identity import config_id
    from cva_rec.config.schema import load_config

    files = {**config_artifacts(cfg), "checkpoint": Path(checkpoint), **(more or {})}
    return {"config_id": config_id(cfg), "run_config_id": config_id(load_config(Path(run_dir) / "config.yaml")),
            "overrides": list(overrides), "artifacts": fingerprint_artifacts(files)}


def artifact_identity(fingerprints: Mapping[str, Mapping[str, Any]]) -> Dict[str, Optional[str]]:
    """name -> sha256: what makes two runs' inputs the same (the path is not part of it)."""
    return {name: fp.get("sha256") if isinstance(fp, Mapping) else None for name, fp in sorted(fingerprints.items())}


def changed_artifacts(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]], most: int = 3) -> list:
    """``name sha256 abc.. -> def..`` for every artifact whose content differs (or that one side lacks)."""
    a, b = artifact_identity(old), artifact_identity(new)
    out = [f"{name} {_short(a.get(name))} -> {_short(b.get(name))}" for name in sorted(set(a) | set(b))
           if a.get(name) != b.get(name)]
    return out[:most] + ([f"... ({len(out) - most} more)"] if len(out) > most else [])


def recorded_artifacts(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The fingerprints a run folder's ``artifacts.json`` records (None: a folder from before they were
    recorded); an unreadable file records an entry that differs from any real one."""
    unreadable = {ARTIFACTS_FILE: {"sha256": UNREADABLE}}
    try:
        old = json.loads((Path(run_dir) / ARTIFACTS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return unreadable
    return old if isinstance(old, dict) else unreadable


def folder_changes(run_dir: Path, cfg: Mapping[str, Any], job: str = "train") -> list:
    """What changed in the artifacts ``cfg`` names since the folder's run read them ([] when nothing did,
    or the folder records none); the artifacts a job adds on its own (a warm-up seed) are not looked at."""
    old = recorded_artifacts(run_dir)
    if old is None:
        return []
    new = fingerprint_artifacts(config_artifacts(cfg, job))
    return changed_artifacts({k: v for k, v in old.items() if k in new or k == ARTIFACTS_FILE}, new)


def _short(digest: Optional[str]) -> str:
    if digest == UNREADABLE:
        return "unreadable"
    return f"sha256 {digest[:12]}" if digest else "<none>"
