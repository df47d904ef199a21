"""Make recbole==1.2.1 importable and usable on today's numpy / torch / setuptools.

Applied once, the moment RecBole is first imported: ``cva_rec/__init__.py`` calls :func:`install`,
which puts a finder in front of ``sys.meta_path`` that applies the shims when the name ``recbole``
is looked up (or applies them at once if RecBole is already imported). So ``import cva_rec`` (and
``import cva_rec.config.schema``) costs neither torch nor numpy, and code that never touches RecBole (the
offline ``data_prep`` pipeline) runs without the shims. Each shim fixes one known upstream breakage
(no RecBole release fixes them yet):

* numpy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``; RecBole's
  ``Config.compatibility_settings`` and data code still reference them.
* torch >= 2.6 made ``torch.load(weights_only=True)`` the default; RecBole's own
  checkpoints hold its ``Config`` object and numpy state, so its ``Trainer`` cannot
  reload them. We re-enable full unpickling *only* for calls made from RecBole's own
  trainer code (its own trusted checkpoints), not globally.
* ``recbole.quick_start`` imports ``ray.tune`` at module import; ray is optional and
  fails on current setuptools. A placeholder module is installed only when the real
  import fails, so an installed, working ray is left alone.
"""
from __future__ import annotations

import functools
import importlib
import sys
import types

_APPLIED = False


def _numpy_aliases() -> None:
    import numpy as np

    for alias, target in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if alias not in np.__dict__:
            setattr(np, alias, getattr(np, target))


def _scoped_torch_load() -> None:
    """Let RecBole's trainer load its own checkpoints (which pickle its Config)."""
    import torch

    if getattr(torch.load, "_cva_rec_scoped", False):
        return
    original = torch.load

    @functools.wraps(original)
    def load(*args, **kwargs):
        if "weights_only" not in kwargs:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("recbole.trainer"):
                kwargs["weights_only"] = False
        return original(*args, **kwargs)

    load._cva_rec_scoped = True  # type: ignore[attr-defined]
    torch.load = load


def _ray_tune_placeholder() -> None:
    try:
        importlib.import_module("ray.tune")
        return
    except Exception:  # ray missing or broken: RecBole only needs the name at import time
        pass
    ray = types.ModuleType("ray")
    tune = types.ModuleType("ray.tune")

    def _unavailable(*_a, **_k):
        raise ImportError("ray[tune] is not installed; RecBole's hyper-parameter tuning is unavailable")

    def _getattr(name: str):
        if name.startswith("__"):  # inspect/pickle probe dunders: behave like a normal module
            raise AttributeError(name)
        return _unavailable

    tune.__getattr__ = _getattr  # type: ignore[attr-defined]
    ray.tune = tune  # type: ignore[attr-defined]
    sys.modules.setdefault("ray", ray)
    sys.modules["ray.tune"] = tune


def _quiet_pandas_futurewarnings() -> None:
    # RecBole 1.2.1 uses chained in-place fillna; pandas 2 warns on every dataset load.
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\..*")


class _ShimsBeforeRecBole:
    """A ``sys.meta_path`` finder that finds nothing: looking up ``recbole`` applies the shims first."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] == "recbole":
            uninstall()
            apply()
        return None  # the ordinary finders import the module


_FINDER = _ShimsBeforeRecBole()


def install() -> None:
    """Apply the shims now if RecBole is already imported, else right before it is."""
    if _APPLIED:
        return
    if "recbole" in sys.modules:
        apply()
    elif _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    _quiet_pandas_futurewarnings()
    _numpy_aliases()
    _scoped_torch_load()
    _ray_tune_placeholder()
    _APPLIED = True
