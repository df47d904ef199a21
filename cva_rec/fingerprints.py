"""Content fingerprints of files and folders: sha256, computed once and remembered.

:func:`file_digest` is the sha256 of one file. Hashing a large feature store takes minutes, so
the digest is remembered in a small cache keyed by the file's absolute path, size, ``mtime_ns``
and inode: a file that keeps all four is not read again, one that changed any of them is
hashed anew. The cache lives under the user's cache folder (``$CVA_REC_CACHE_DIR``, else
``$XDG_CACHE_HOME/cva_rec``, else ``~/.cache/cva_rec``), never beside the artifact: a run only
reads its inputs (read-only data folders work the same), and a cache that cannot be written
just means hashing again. A file modified less than :data:`RACY_SECONDS` ago is not
remembered: its clock tick might still be shared by a later write of the same size.

:func:`fingerprint_files` joins several files (folders are walked) into one fingerprint
``{"sha256", "bytes", "files"}``: the sha256 of each file's relative name, size and digest,
so two copies of an artifact in different places have the same fingerprint and any changed,
added, removed or renamed file changes it.

:func:`value_digest` hashes what a file *holds* (nested dicts / lists of arrays, tensors and plain
values): single-file artifacts (semantic codes, a tokenizer) record it inside themselves when written
and compare it when read, so an array edited and saved back with the rest is caught.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

from cva_rec.io import atomic_write_json, file_sha256

#: a file changed this recently is hashed but not remembered (same-tick writes go unseen in mtime)
RACY_SECONDS = 2.0
#: file names never part of a folder's fingerprint (temporary files of atomic writes, lock files)
IGNORED_SUFFIXES = (".tmp", ".lock")


def cache_dir() -> Path:
    """Where digests are remembered (see the module text)."""
    explicit = os.environ.get("CVA_REC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cva_rec"


def _cache_file(folder: Path) -> Path:
    key = hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return cache_dir() / "hashes" / f"{key}.json"


def _read_cache(path: Path) -> Dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stamp(st: os.stat_result) -> List[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def file_digest(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file, read again only when its size, mtime or inode changed."""
    path = Path(os.path.abspath(path))
    st = path.stat()
    cache = _cache_file(path.parent)
    entries = _read_cache(cache)
    hit = entries.get(path.name)
    if isinstance(hit, dict) and hit.get("stamp") == _stamp(st) and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    digest = file_sha256(path)
    if time.time_ns() - st.st_mtime_ns > RACY_SECONDS * 1e9 and path.stat().st_mtime_ns == st.st_mtime_ns:
        entries = _read_cache(cache)  # another process may have added entries meanwhile
        entries[path.name] = {"stamp": _stamp(st), "sha256": digest}
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(cache, entries)
        except OSError:
            pass  # no writable cache folder: the next run hashes again, nothing else changes
    return digest


def artifact_files(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> List[Tuple[str, Path]]:
    """``(name, file)`` for every file of ``paths``, sorted by name: a file is named by its path inside
    ``root`` (default: its file name), a folder's files by their path inside it (temporary and lock
    files left out)."""
    out: List[Tuple[str, Path]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.endswith(IGNORED_SUFFIXES))
            out += [(f.relative_to(p).as_posix(), f) for f in files]
        elif p.is_file():
            out.append((p.relative_to(root).as_posix() if root is not None else p.name, p))
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return sorted(out, key=lambda item: (item[0], str(item[1])))


def fingerprint_files(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> Dict[str, object]:
    """One fingerprint of the files in ``paths`` (files or folders; files named relative to ``root`` when
    given): ``{"sha256": hex, "bytes": total size, "files": count}``. Equal for equal contents wherever
    they live; digests are cached."""
    h = hashlib.sha256()
    total = count = 0
    for name, f in artifact_files(paths, root):
        size = f.stat().st_size
        h.update(f"{name}\t{size}\t{file_digest(f)}\n".encode("utf-8", "surrogateescape"))
        total += size
        count += 1
    return {"sha256": h.hexdigest(), "bytes": total, "files": count}


def value_digest(value: Any) -> str:
    """sha256 (hex) of nested dicts (by sorted key), lists / tuples, numpy arrays and torch tensors (dtype,
    shape and bytes) and plain JSON values: equal for equal contents, whatever container wrote them."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h, value: Any) -> None:
    import numpy as np

    if isinstance(value, dict):
        h.update(b"{")
        for key in sorted(value, key=str):
            _feed(h, str(key))
            _feed(h, value[key])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for item in value:
            _feed(h, item)
        h.update(b"]")
    elif hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        import torch

        t = value.detach().cpu().contiguous()
        _feed(h, (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy())
    elif isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        if arr.dtype.kind == "U":  # strings: by their UTF-8 text, not numpy's fixed-width storage
            _feed(h, arr.tolist())
            return
        h.update(f"array:{arr.dtype.str}:{list(arr.shape)}:".encode())
        h.update(arr.tobytes())
    else:
        h.update(json.dumps(value.item() if hasattr(value, "item") else value, sort_keys=True).encode("utf-8"))
        h.update(b";")


def short(fingerprint: object, length: int = 12) -> str:
    """The first ``length`` hex digits of a fingerprint (a dict from :func:`fingerprint_files` or its hash)."""
    digest = fingerprint.get("sha256") if isinstance(fingerprint, dict) else fingerprint
    return str(digest or "?")[:length]
