"""Results tables and plots from run directories."""
from cva_rec.registry import lazy_exports

_LAZY = {"build_report": "cva_rec.report.build", "scan_runs": "cva_rec.report.collect", "group_runs": "cva_rec.report.collect"}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)  # names load on first use
