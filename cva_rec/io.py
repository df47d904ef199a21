"""Every file cva_rec writes, and every file a user can hand it, goes through this module.

Writing (:func:`atomic_create`, :func:`atomic_write` and its wrappers): the bytes go to a temporary file with a unique
name in the target's own folder, the file is fsync'ed, ``os.replace`` puts it in place and the
folder is fsync'ed. A reader sees the old file or the new one, never half of one; a crash or a
full disk leaves the old file and no temporary behind. Folders are published the same way
(:func:`publish_dir`: a complete temporary folder renamed into place).

Reading (:func:`load_torch_file`, :func:`load_numpy`): ``torch.load(weights_only=True)`` and
``numpy.load(allow_pickle=False)``, always: a file someone hands over (a checkpoint for
``evaluate --checkpoint``, a ``best.ckpt`` in a shared run folder, a warmup seed, a tokenizer,
codes, a feature store, a cache) is data, never code. The one exception is RecBole's own
trainer reloading its own checkpoints, scoped in :mod:`cva_rec.compat`. A test greps the
package for any other ``torch.load`` / ``np.load``.

File-system failures (disk full, read-only folder, missing permission) become
:class:`~cva_rec.errors.FileSystemError`: one line naming the path and what was needed.
Caches that must detect their own damage record their files in a manifest
(:func:`write_manifest` / :func:`manifest_problem`). See docs/reliability.md.
"""
from __future__ import annotations

import contextlib
import errno as _errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from cva_rec.errors import CheckpointError, CvaRecError, FileSystemError

# errno values that mean "the file system refused", as opposed to a bug or a bad path name
FILE_SYSTEM_ERRNOS = {_errno.ENOSPC, _errno.EDQUOT, _errno.EROFS, _errno.EACCES, _errno.EPERM, _errno.EFBIG}
# ... and, for the CLI's last line of defence, paths of the wrong kind a user typed
PATH_ERRNOS = FILE_SYSTEM_ERRNOS | {_errno.ENOENT, _errno.EEXIST, _errno.ENOTDIR, _errno.EISDIR, _errno.ENAMETOOLONG, _errno.ELOOP}


# -- file-system errors as one line ---------------------------------------------------------------
def describe_os_error(exc: OSError, path: str | os.PathLike | None = None, action: str = "writing") -> str:
    """One line: what failed, on which path, and what would be needed."""
    where = str(path if path is not None else (exc.filename or "a file"))
    code = exc.errno
    if code in (_errno.ENOSPC, _errno.EDQUOT):
        return f"no space left on the device (or quota) while {action} {where}: free some space or write elsewhere"
    if code == _errno.EROFS:
        return f"{where} is on a read-only file system; {action} it needs a writable folder (write elsewhere, e.g. --out)"
    if code in (_errno.EACCES, _errno.EPERM):
        return f"permission denied {action} {where}: needs {'read' if action == 'reading' else 'write'} access"
    if code == _errno.EFBIG:
        return f"file too large while {action} {where} (file-size limit of this process or file system)"
    if code == _errno.ENOTDIR:
        return f"{where}: part of this path is a file, not a folder"
    if code == _errno.EEXIST:
        return f"{where} already exists and is not a folder cva_rec can use; choose another path"
    if code == _errno.EISDIR:
        return f"{where} is a folder; a file was expected"
    if code == _errno.ENOENT:
        return f"{where} does not exist"
    return f"{action} {where} failed: {exc.strerror or exc}"


def file_system_error(exc: OSError, path: str | os.PathLike | None = None, action: str = "writing") -> FileSystemError:
    return FileSystemError(describe_os_error(exc, path, action), exc.errno, str(path) if path is not None else exc.filename)


@contextlib.contextmanager
def file_system_errors(path: str | os.PathLike, action: str = "writing") -> Iterator[None]:
    """Turn a refusing file system (``FILE_SYSTEM_ERRNOS``) inside the block into a FileSystemError."""
    try:
        yield
    except CvaRecError:
        raise
    except OSError as exc:
        if exc.errno in FILE_SYSTEM_ERRNOS:
            raise file_system_error(exc, path, action) from None
        raise


def check_free_space(folder: str | os.PathLike, needed_bytes: int, what: str) -> None:
    """Refuse before writing ``needed_bytes`` into ``folder`` when the disk cannot hold them.

    A memory map over a sparse file that the disk cannot back dies with SIGBUS on the first
    page write; this check (and the preallocation in the feature store) makes that one line.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed_bytes > free:
        raise FileSystemError(
            f"not enough free space for {what} in {folder}: needs {needed_bytes / 1e6:,.1f} MB, "
            f"{free / 1e6:,.1f} MB free; free some space or write elsewhere",
            _errno.ENOSPC, str(folder))


def ensure_writable(folder: str | os.PathLike, why: str) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it, before any work is done."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if exc.errno not in FILE_SYSTEM_ERRNOS:
            raise
        reason = {_errno.EROFS: "read-only file system", _errno.ENOSPC: "no space left"}.get(exc.errno, "permission denied")
        raise FileSystemError(f"{folder} is not writable ({reason}); {why}", exc.errno, str(folder)) from None
    return folder


# -- atomic writes ------------------------------------------------------------------------------
_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:  # read once: os.umask can only be read by setting it
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return _UMASK


def _new_file_mode() -> int:
    """Permissions an ordinary ``open(path, "w")`` would give (mkstemp makes 0600 files)."""
    return 0o666 & ~_umask()


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename itself is done
        pass
    finally:
        os.close(fd)


def atomic_create(path: str | os.PathLike, create: Callable[[Path], None]) -> Path:
    """``create(tmp)`` makes the file at a unique temporary path beside ``path``; it is then fsync'ed,
    renamed into place and the folder fsync'ed. Any failure removes the temporary and leaves ``path``
    as it was. The replaced file keeps its permissions; a new file gets the usual umask ones.
    (Writers that need a file name, such as memory maps, call this directly.)
    """
    path = Path(path)
    with file_system_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    try:
        with file_system_errors(path):
            create(Path(tmp))
            with open(tmp, "rb") as fh:  # fsync flushes the file's data whichever descriptor asks
                os.fsync(fh.fileno())
            try:
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)
            except FileNotFoundError:
                os.chmod(tmp, _new_file_mode())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


#: the names :func:`atomic_create` gives its temporaries: ``.<target name>.<mkstemp's 8 characters>.tmp``
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def temp_target(name: str) -> str | None:
    """The file a temporary of :func:`atomic_create` was to become (None: not such a temporary)."""
    match = _TEMP_NAME.match(name)
    return match.group("target") if match else None


def remove_stale_temps(folder: str | os.PathLike, targets: Iterable[str]) -> list[Path]:
    """Remove what :func:`atomic_create` left in ``folder`` when its writer was killed before its cleanup
    ran (SIGKILL, power loss): its temporaries for the file names matching ``targets`` (glob patterns such
    as ``*.ckpt``), nothing else. Only the folder's one writer may call this (a run folder's lock holder):
    another writer's temporary in flight would look the same. Returns what was removed."""
    import fnmatch

    folder, patterns = Path(folder), tuple(targets)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        target = temp_target(entry.name)
        if target is None or not any(fnmatch.fnmatchcase(target, p) for p in patterns):
            continue
        if entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "w") -> Path:
    """Call ``write(fh)`` on the temporary file of :func:`atomic_create`; ``mode`` "w" (UTF-8 text) or "wb"."""
    def create(tmp: Path) -> None:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            write(fh)

    return atomic_create(path, create)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data), mode="wb")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, sort_keys: bool = False, ensure_ascii: bool = True) -> Path:
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`atomic_write`: a crash never leaves a half-written checkpoint."""
    import io

    import torch

    # serialised in memory first: torch's zip writer turns a failed write (disk full) into a vague
    # RuntimeError; written as bytes, the OS error (and so a one-line FileSystemError) comes through
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda fh: fh.write(buffer.getbuffer()), mode="wb")


def atomic_numpy_save(path: str | os.PathLike, array) -> Path:
    """``numpy.save`` (a plain ``.npy``, no pickled objects) through :func:`atomic_write`."""
    import numpy as np

    return atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False), mode="wb")


def make_temp_dir(near: str | os.PathLike) -> Path:
    """A new, uniquely named folder beside ``near`` (same file system, so it can be renamed onto it)."""
    near = Path(near)
    with file_system_errors(near.parent):
        near.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{near.name}.", suffix=".tmp", dir=near.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
    return tmp


def publish_dir(tmp: str | os.PathLike, path: str | os.PathLike, *, replace: bool = False) -> Path:
    """Rename the complete folder ``tmp`` to ``path`` in one step.

    ``replace=True``: an existing ``path`` is first moved aside under a unique name, then
    deleted once the new folder is in place (the caller decides what may be replaced).
    Without it an existing ``path`` raises ``FileExistsError`` (another process published first).
    """
    tmp, path = Path(tmp), Path(path)
    for name in os.listdir(tmp):  # the files' data are durable before the folder is published
        f = tmp / name
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(tmp)
    old = None
    with file_system_errors(path):
        if replace and path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.rename(path, old / "x")
        try:
            os.rename(tmp, path)
        except OSError as exc:
            if exc.errno in (_errno.ENOTEMPTY, _errno.EEXIST):
                raise FileExistsError(_errno.EEXIST, "already published", str(path)) from None
            raise
        fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _one_line(exc: BaseException, limit: int = 160) -> str:
    return " ".join(str(exc).split())[:limit]


# -- checksums: caches that detect their own damage ----------------------------------------------
MANIFEST = "manifest.json"


def file_sha256(path: str | os.PathLike, chunk: int = 8 << 20) -> str:
    """sha256 of a file (source hashes in store metadata, cache manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: str | os.PathLike, names, *, checksum: bool = True) -> None:
    """Record each file's size (and sha256) in ``folder/manifest.json``; call before publishing the folder."""
    folder = Path(folder)
    manifest = {n: {"bytes": (folder / n).stat().st_size, **({"sha256": file_sha256(folder / n)} if checksum else {})}
                for n in names}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def manifest_problem(folder: str | os.PathLike, names) -> str | None:
    """Why the files in ``folder`` no longer match their manifest (None: intact)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        for n in names:
            size = (folder / n).stat().st_size
            if size != manifest[n]["bytes"]:
                return f"{n} has {size} bytes, {manifest[n]['bytes']} were written"
            if "sha256" in manifest[n] and file_sha256(folder / n) != manifest[n]["sha256"]:
                return f"{n} does not match its checksum"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"no valid {MANIFEST} ({type(exc).__name__})"
    return None


# -- safe loading -------------------------------------------------------------------------------
def load_torch_file(path: str | os.PathLike, what: str) -> Any:
    """``torch.load(weights_only=True)`` on CPU: tensors and plain containers only, never code.

    A missing, unreadable, truncated or code-carrying file is a one-line ``CheckpointError``
    naming ``what``.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    _check_zip_crcs(path, what)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        wanted = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if wanted:  # weights_only refused a global: the file asks for code (or an object) to be built
            raise CheckpointError(f"{what} {path} holds more than tensors and plain values (it asks for "
                                  f"{wanted.group(1)}); refused to load it: only weights are read, never code") from None
        detail = str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{what} {path} is unreadable as a weights-only file ({detail[:120]}); "
                              f"only tensors and plain values are loaded, never code") from None
    except OSError as exc:
        if exc.errno in FILE_SYSTEM_ERRNOS:
            raise file_system_error(exc, path, "reading") from None
        raise CheckpointError(f"{what} {path} is unreadable ({type(exc).__name__}: {_one_line(exc)})") from None
    except Exception as exc:  # truncated zip, random bytes, wrong magic number
        raise CheckpointError(f"{what} {path} is unreadable ({type(exc).__name__}: {_one_line(exc)})") from None


def _check_zip_crcs(path: Path, what: str) -> None:
    """A torch zip whose members fail their recorded CRC-32 is refused: torch does not check them, so
    a flipped bit in a tensor's bytes would load as another weight, silently."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return  # not a zip (or its directory is gone): torch.load says what it is
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except OSError as exc:
        if exc.errno in FILE_SYSTEM_ERRNOS:
            raise file_system_error(exc, path, "reading") from None
        raise CheckpointError(f"{what} {path} is unreadable ({type(exc).__name__}: {_one_line(exc)})") from None
    except Exception as exc:  # BadZipFile, a damaged header, a bad compressed stream
        raise CheckpointError(f"{what} {path} is a damaged archive ({type(exc).__name__}: {_one_line(exc)})") from None
    if bad is not None:
        raise CheckpointError(f"{what} {path} is damaged: its member {bad} fails its CRC-32 check (bytes changed after "
                              "it was written); refused rather than loading other weights")


def _declared_bytes(fh) -> tuple[int, int]:
    """(bytes the array declares, header length) of the ``.npy`` stream ``fh`` positioned at its start."""
    import numpy as np
    from numpy.lib import format as npy

    version = npy.read_magic(fh)
    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, _, dtype = read_header(fh)
    return int(np.prod(shape, dtype=object)) * dtype.itemsize, fh.tell()


def _check_declared_sizes(path: Path, what: str, error: type[CvaRecError]) -> None:
    """Before numpy allocates: each array's declared size fits the bytes its file (or zip member) holds,
    and an ``.npz``'s members, decompressed, fit the available memory (a small archive can expand a
    thousandfold)."""
    import zipfile

    from cva_rec.heap import available_memory

    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"PK\x03\x04"):  # .npz
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".npy")]
            expanded = sum(m.file_size for m in members)
            available = available_memory()
            if available is not None and expanded > available:
                raise error(f"{path}: {what} expands to {expanded / 2**30:,.1f} GiB when decompressed, but "
                            f"{available / 2**30:,.1f} GiB of memory are available; refused to load it")
            for m in members:
                with archive.open(m) as fh:
                    declared, header = _declared_bytes(fh)
                if declared > m.file_size - header:
                    raise error(f"{path}: {what} member {m.filename} declares {declared:,} bytes but holds "
                                f"{max(m.file_size - header, 0):,}; refused to load it")
        return
    if magic != b"\x93NUMPY":
        return  # numpy's own error names what it is
    with open(path, "rb") as fh:
        declared, header = _declared_bytes(fh)
    if declared > path.stat().st_size - header:
        raise error(f"{path}: {what} declares {declared:,} bytes but the file holds {path.stat().st_size - header:,} "
                    f"(truncated or damaged); refused to load it")


def load_numpy(path: str | os.PathLike, what: str, *, mmap_mode: str | None = None,
               error: type[CvaRecError] = CheckpointError):
    """``numpy.load(allow_pickle=False)``: a ``.npy`` array (optionally memory-mapped) or an ``.npz`` archive.

    Object arrays (which would need pickle), bad headers and truncated files raise ``error``
    with one line naming ``what``.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        if mmap_mode is None:  # a memory map allocates nothing; a read allocates what the headers declare
            _check_declared_sizes(path, what, error)
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except CvaRecError:
        raise
    except OSError as exc:
        if exc.errno in FILE_SYSTEM_ERRNOS:
            raise file_system_error(exc, path, "reading") from None
        raise error(f"{path}: unreadable or truncated {what} ({_one_line(exc)})") from None
    except Exception as exc:  # object arrays (pickle refused), a header numpy cannot parse, too short for its shape
        raise error(f"{path}: unreadable or truncated {what} ({type(exc).__name__}: {_one_line(exc)})") from None
