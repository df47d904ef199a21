"""Benchmarks: scripts that print ratios measured side by side in one run (never timed unit tests).

Run one with ``cva-rec bench NAME`` (names in :mod:`cva_rec.cli.bench`) or
``python -m cva_rec.benchmarks.<module>``. They ship inside the package, so an installed wheel runs
them too. The inputs they default to (``data/``, ``recipes/``, ``../shared/data``) are those of the
source checkout when the package runs from one, else of the working directory. What they write goes to
``runs/bench/<name>/`` under the working directory (:func:`bench_output`), never into the package or the
source checkout unless the user names such a path (``--out docs/...`` to refresh a published table).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["project_root", "bench_output"]


def project_root() -> Path:
    """The source checkout holding this package, or (installed from a wheel) the working directory."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "setup.cfg").is_file() and (checkout / "recipes").is_dir() else Path.cwd()


def bench_output(name: str, *parts: str) -> Path:
    """The default output of bench ``name``: ``runs/bench/<name>/<parts>`` under the working directory,
    absolute (a bench that changes directory still writes there)."""
    return Path.cwd().joinpath("runs", "bench", name, *parts)
