"""Results tables and plots from run directories."""
from importlib import import_module

_LAZY = {"build_report": "cva_rec.report.build", "scan_runs": "cva_rec.report.collect", "group_runs": "cva_rec.report.collect"}

__all__ = sorted(_LAZY)


def __getattr__(name):  # names load on first use: importing one submodule does not import the others
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
