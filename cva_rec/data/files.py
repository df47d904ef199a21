"""Pre-flight check of RecBole atomic files, before RecBole reads them.

RecBole assumes well-formed files: a header without ``:type`` ends in "not enough values to
unpack", a missing user column in a bare ``KeyError: 'user_id'``, a binary file in a
``UnicodeDecodeError``, and NaN timestamps train silently with an undefined item order. Here
each of those is one :class:`~cva_rec.errors.DataError` line naming the file, the column and
what was expected. Only what RecBole will read is checked (the header, and the user, item and
time columns of the ``.inter`` file), with pandas' C parser: about a second for ml-1m.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple

from cva_rec.errors import DataError

#: RecBole 1.2.1's field types (recbole.utils.enum_type.FeatureType)
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
_SNIFF_BYTES = 1 << 16


def read_header(path: str | os.PathLike, kind: str = "atomic file") -> List[Tuple[str, str]]:
    """The ``[(name, type), ...]`` of an atomic file's first line; one DataError line for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{kind} {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"cannot read {kind} {path}: {exc.strerror or exc}") from None
    if not head.strip():
        raise DataError(f"{kind} {path} is empty: expected a tab-separated header such as 'user_id:token\\titem_id:token\\ttimestamp:float'")
    if b"\x00" in head:
        raise DataError(f"{kind} {path} is not a text file (it holds NUL bytes): atomic files are tab-separated UTF-8 text")
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        line = first.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{kind} {path} is not UTF-8 text (byte {exc.start} of its header): atomic files are tab-separated UTF-8 text") from None
    columns = []
    for col in line.split("\t"):
        name, sep, ftype = col.partition(":")
        if not sep or not name:
            raise DataError(f"{kind} {path}: header column {col!r} is not 'name:type' (e.g. user_id:token); "
                            f"RecBole needs a type for every column: one of {', '.join(FIELD_TYPES)}")
        if ftype not in FIELD_TYPES:
            raise DataError(f"{kind} {path}: column {name!r} has type {ftype!r}; RecBole knows {', '.join(FIELD_TYPES)}")
        columns.append((name, ftype))
    names = [n for n, _ in columns]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise DataError(f"{kind} {path}: header names {dups} more than once")
    return columns


def check_utf8(path: str | os.PathLike, kind: str, chunk: int = 16 << 20) -> None:
    """The whole file decodes as UTF-8 (streamed: C speed, constant memory), else one line naming the line."""
    import codecs

    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                line = lines_before + block.count(b"\n", 0, max(exc.start, 0)) + 1
                raise DataError(f"{kind} {path} is not UTF-8 text (line {line}): atomic files are tab-separated UTF-8 text") from None
            if not block:
                return
            lines_before += block.count(b"\n")


#: an interaction row is a user, an item, a time and a few more columns: far below this. pandas' C
#: parser sizes its buffers by the longest line (a 200 MB line asked for 1.2 TiB)
MAX_LINE_BYTES = 1 << 20


def check_line_lengths(path: str | os.PathLike, kind: str, limit: int = MAX_LINE_BYTES, chunk: int = 16 << 20) -> None:
    """Every line of ``path`` is at most ``limit`` bytes (streamed, constant memory), else one DataError line."""
    import numpy as np

    path = Path(path)
    pos = line_start = 0
    line_no = 1
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + pos
            if len(ends):
                starts = np.concatenate([[line_start], ends[:-1] + 1])
                over = np.flatnonzero(ends - starts > limit)
                if len(over):
                    raise DataError(_long_line(path, kind, line_no + int(over[0]), int(ends[over[0]] - starts[over[0]]), limit))
                line_start, line_no = int(ends[-1]) + 1, line_no + len(ends)
            pos += len(block)
            if pos - line_start > limit:
                raise DataError(_long_line(path, kind, line_no, pos - line_start, limit, at_least=True))


def _long_line(path: Path, kind: str, line: int, size: int, limit: int, at_least: bool = False) -> str:
    return (f"{kind} {path}: line {line} is {'at least ' if at_least else ''}{size:,} bytes long; rows of an atomic file "
            f"are at most {limit:,} bytes (a missing newline, or not an interaction file?)")


def check_inter_file(path: str | os.PathLike, user_field: str, item_field: str, time_field: str) -> int:
    """Check the columns RecBole will load from an ``.inter`` file; returns the number of interactions."""
    import numpy as np
    import pandas as pd

    path = Path(path)
    columns = dict(read_header(path, "interaction file"))
    check_line_lengths(path, "interaction file")
    check_utf8(path, "interaction file")
    for key, field in (("dataset.user_field", user_field), ("dataset.item_field", item_field), ("dataset.time_field", time_field)):
        if field not in columns:
            raise DataError(f"interaction file {path} has no {field!r} column ({key}); its columns are {sorted(columns)}")
    if columns[time_field] != "float":
        raise DataError(f"interaction file {path}: the time column {time_field!r} has type {columns[time_field]!r}, "
                        f"expected float (the order of a user's items is sorted by it)")
    time_col = f"{time_field}:float"
    try:  # only the time column: RecBole reads the rest itself, and these are the values it trusts blindly
        times = pd.read_csv(path, sep="\t", usecols=[time_col], dtype={time_col: "float64"}, encoding="utf-8")[time_col]
    except UnicodeDecodeError as exc:
        raise DataError(f"interaction file {path} is not UTF-8 text ({exc.reason} at byte {exc.start} of a chunk)") from None
    except (ValueError, pd.errors.ParserError):  # a non-numeric time, a ragged row: find the row as text
        times = _times_as_text(path, time_col)
    if len(times) == 0:
        raise DataError(f"interaction file {path} has a header but no interactions")
    values = times.to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(bad.argmax())
        raise DataError(f"interaction file {path}: {int(bad.sum())} of {len(times)} rows have a missing or non-numeric "
                        f"{time_field!r} (first at line {first + 2}); a user's item order would be undefined: "
                        f"fix or drop those rows")
    check_exact_times(values, f"interaction file {path}", time_field)
    return len(times)


#: float64 holds every integer up to 2^53 exactly; beyond it neighbouring integers share one value
EXACT_TIME_LIMIT = 2.0**53


def check_exact_times(times, where: str, time_field: str, first_line: Optional[int] = 2) -> None:
    """Each user's order is a sort on the float64 time: refuse times where float64 is not exact.

    ``first_line``: the file line of ``times[0]`` (2 after the header; None when rows were dropped before)."""
    import numpy as np

    huge = np.abs(times) >= EXACT_TIME_LIMIT
    if huge.any():
        first = int(huge.argmax())
        at = f"line {first + first_line}: " if first_line is not None else ""
        raise DataError(f"{where}: {int(huge.sum())} rows have a {time_field!r} of magnitude >= 2^53 (first {at}"
                        f"{times[first]:.17g}); float64 cannot tell neighbouring integers apart there, "
                        f"so the order of a user's items would not be exact: store the times in coarser units "
                        f"(seconds or milliseconds)")


def _times_as_text(path: Path, time_col: str):
    import pandas as pd

    try:
        raw = pd.read_csv(path, sep="\t", usecols=[time_col], dtype=str, keep_default_na=False, encoding="utf-8")[time_col]
    except (ValueError, pd.errors.ParserError) as exc:  # ragged rows, bad quoting
        detail = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        raise DataError(f"interaction file {path} cannot be parsed as tab-separated rows ({detail})") from None
    return pd.to_numeric(raw.str.strip(), errors="coerce")


def check_dataset_files(cfg: Mapping[str, Any], data_path: str | os.PathLike) -> None:
    """The atomic files of ``cfg["dataset"]`` under ``data_path``, checked before RecBole reads them."""
    ds = cfg["dataset"]
    folder = Path(data_path) / ds["name"]
    check_inter_file(folder / f"{ds['name']}.inter", ds["user_field"], ds["item_field"], ds["time_field"])
