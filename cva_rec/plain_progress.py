"""Progress for logs: plain, flushed lines at a bounded rate when the progress stream is not a terminal.

Under nohup, SLURM or CI a redrawn bar (tqdm's ``\\r``) reaches the log file only when it ends, so a
long job looks dead. :func:`progress_bar` gives a tqdm bar on a terminal and :class:`ProgressLines`
elsewhere; both take ``update(n)``, ``set_postfix(...)`` and ``close()``. A line is printed when
``CVA_REC_PROGRESS_SECONDS`` (default 30) have passed since the last one, or at each further 5% of the
work but not sooner than a tenth of that interval after the last line, and once at the end (not for work
that took less than that tenth and printed nothing):

    extract text: 1200/9000 item (13%), 41.2 item/s, ETA 3m09s

Lines go to stderr (beside the log messages), so a command's stdout (a JSON result, a table) stays clean.
The Lightning side (training, evaluation) is :mod:`cva_rec.training.progress`.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Optional, TypeVar, Union

T = TypeVar("T")
Fields = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]], None]
#: the fraction of the work between two lines (besides the time interval)
STEP_FRACTION = 0.05


def line_interval_seconds() -> float:
    """Seconds between two plain lines (``CVA_REC_PROGRESS_SECONDS``, default 30)."""
    try:
        return max(0.0, float(os.environ.get("CVA_REC_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def progress_stream():
    return sys.stderr


def plain_lines_wanted(stream=None) -> bool:
    """True when progress goes to a file or pipe (nohup, SLURM, CI), not a terminal."""
    stream = progress_stream() if stream is None else stream
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # closed or not a file: no terminal either
        return True


def format_seconds(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def format_fields(fields: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items() if v is not None)


class ProgressLines:
    """Plain progress lines for one piece of work of ``total`` units (None: unknown)."""

    def __init__(self, what: str, total: Optional[float] = None, unit: str = "it", initial: int = 0,
                 every_s: Optional[float] = None, stream=None):
        self.what, self.unit = what, unit
        self.total = total if total and total != float("inf") else None
        self.n = self.start_n = int(initial)
        self.every_s = line_interval_seconds() if every_s is None else every_s
        self.stream = progress_stream() if stream is None else stream
        self.t0 = self.last_t = time.monotonic()
        self.next_fraction = STEP_FRACTION
        self.postfix: Dict[str, Any] = {}
        self.fields: Fields = None
        self.closed = False
        self.lines = 0

    def update(self, n: int = 1, fields: Fields = None) -> None:
        """Count ``n`` more units; ``fields`` (a mapping, or a function giving one: evaluated only when a
        line is printed) are shown after the rate."""
        self.n += n
        self.fields = fields if fields is not None else self.fields  # the final line shows the last ones too
        now = time.monotonic()
        since = now - self.last_t
        fraction = self.n / self.total if self.total else None
        if fraction is not None and fraction >= 1:
            return  # all done: the final line (close) says so
        due = since >= self.every_s or (fraction is not None and fraction >= self.next_fraction and since >= self.every_s / 10)
        if due:
            self.print(fields)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:  # tqdm's signature
        self.postfix = {**dict(ordered_dict or {}), **kwargs}

    def print(self, fields: Fields = None, done: bool = False) -> None:
        now = time.monotonic()
        elapsed = now - self.t0
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n} {self.unit}"]
        extra = {**self.postfix, **dict((fields() if callable(fields) else fields) or {})}
        if extra:
            parts.append(format_fields(extra))
        parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.3g} s/{self.unit}")
        if done:
            parts.append(f"took {format_seconds(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {format_seconds((self.total - self.n) / rate)}")
        self.stream.write(f"{self.what}: {', '.join(parts)}\n")
        self.stream.flush()
        self.lines += 1
        self.last_t = now
        if self.total:
            while self.next_fraction <= self.n / self.total:
                self.next_fraction += STEP_FRACTION

    def close(self, fields: Fields = None) -> None:
        """The final line (once); none for work that printed nothing and took less than a tenth of the interval."""
        if not self.closed:
            self.closed = True
            if self.lines or time.monotonic() - self.t0 >= self.every_s / 10:
                self.print(self.fields if fields is None else fields, done=True)

    def __enter__(self) -> "ProgressLines":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()


def progress_bar(total: Optional[float] = None, desc: str = "", unit: str = "it", initial: int = 0, disable: bool = False):
    """A tqdm bar on a terminal, :class:`ProgressLines` off one, nothing when ``disable``; used as tqdm is
    (``update``, ``set_postfix``, ``close``, a context manager)."""
    if disable:
        return _NoProgress()
    if plain_lines_wanted():
        return ProgressLines(desc, total, unit, initial=initial)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial)


def progress_iter(items: Iterable[T], total: Optional[int] = None, desc: str = "", unit: str = "it",
                  disable: bool = False) -> Iterator[T]:
    """``items``, with :func:`progress_bar` counting them."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = progress_bar(total, desc, unit, disable=disable)
    for item in items:
        yield item
        bar.update(1)
    bar.close()  # not when the loop stopped early: a final line would claim it finished


class _NoProgress:
    def update(self, n: int = 1, fields: Fields = None) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass
