"""A tiny name -> factory registry, so config strings pick implementations.

Used for item encoders, losses, backbones, frame encoders and samplers. Unknown names
raise :class:`ConfigError` listing the known ones and the closest match.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Generic, Iterator, Optional, TypeVar

from cva_rec.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, on_register: Optional[Callable[[str, Any], None]] = None):
        """``on_register(name, obj)`` runs before an entry is added (e.g. to tie it to its declaration
        in :mod:`cva_rec.config.components`); an exception from it refuses the entry."""
        self.kind = kind
        self._entries: Dict[str, T] = {}
        self._on_register = on_register

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``."""

        def _add(o: T) -> T:
            key = name.lower()
            if key in self._entries and not overwrite and self._entries[key] is not o:
                raise ConfigError(f"{self.kind} {name!r} is already registered")
            if self._on_register is not None:
                self._on_register(name, o)
            self._entries[key] = o
            return o

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> T:
        key = str(name).lower()
        if key not in self._entries:
            known = sorted(self._entries)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {self.kind} {name!r}{hint}; known: {', '.join(known)}")
        return self._entries[key]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return str(name).lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def closest(key: str, options) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def lazy_exports(package: str, table: Dict[str, str]) -> Callable[[str], Any]:
    """A package face's module ``__getattr__`` (PEP 562): ``table`` maps each public name to the module
    that defines it, imported on first use, so importing one submodule of a heavy package (torch,
    RecBole) does not import all the others."""
    from importlib import import_module

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
