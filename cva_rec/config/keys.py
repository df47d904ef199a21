"""Typed config keys: each key of a recipe declares its default, meaning, type and range once.

``Key.check(value, where)`` returns the value (ints widened to float for float keys) or raises a
one-line :class:`ConfigError` naming the key, what it must be and what it got. The schema in
:mod:`cva_rec.config.schema` and the component catalog in :mod:`cva_rec.config.components` are built from the
constructors below (``integer``, ``number``, ``flag``, ``text``, ``choice``, ``listof``, ``anything``).

Plain dataclasses rather than pydantic: the checks are a few comparisons, the messages must be
one line in our own words, and docs/config.md is generated from the same objects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Tuple

from cva_rec.errors import ConfigError

_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "list": "a list"}


@dataclass(frozen=True)
class Key:
    default: Any
    meaning: str
    kind: str = "any"  # int | float | bool | str | list | any
    low: Optional[float] = None  # value must be > low (>= when low_inclusive)
    low_inclusive: bool = True
    high: Optional[float] = None  # value must be < high (<= when high_inclusive)
    high_inclusive: bool = True
    choices: Optional[Tuple[Any, ...]] = None
    nullable: bool = False
    items: Optional["Key"] = None  # for lists: the spec every element must meet
    min_items: int = 0
    #: False for keys that do not change what a run computes (train.resume, output.*): they are
    #: left out of the run folder's config identity
    identity: bool = True
    #: extra rule on the (type-checked) value: returns an error text or None
    rule: Optional[Callable[[Any], Optional[str]]] = None

    def check(self, value: Any, where: str) -> Any:
        if value is None:
            if self.nullable or (self.kind == "any" and self.choices is None):
                return None
            raise ConfigError(f"{where} must be {self.describe()}, got null")
        value = self._typed(value, where)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, self.choices))}; got {value!r}")
        if self.kind in ("int", "float"):
            self._in_range(value, where)
        if self.kind == "list":
            if len(value) < self.min_items:
                raise ConfigError(f"{where} must have at least {self.min_items} element(s), got {value!r}")
            if self.items is not None:
                value = [self.items.check(v, _element(where, i)) for i, v in enumerate(value)]
        if self.rule is not None:
            problem = self.rule(value)
            if problem:
                raise ConfigError(f"{where} {problem}, got {value!r}")
        return value

    def _typed(self, value: Any, where: str) -> Any:
        kind = self.kind
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "list": isinstance(value, (list, tuple)),
        }.get(kind, True)
        if not ok:
            raise ConfigError(f"{where} must be {self.describe()}, got {value!r} ({_type_word(value)})")
        if kind == "float":
            value = float(value)
            if math.isnan(value) or (math.isinf(value) and (self.low is not None or self.high is not None)):
                raise ConfigError(f"{where} must be {self.describe()}, got {value!r}")
        return list(value) if kind == "list" else value

    def _in_range(self, value: float, where: str) -> None:
        bad_low = self.low is not None and (value < self.low if self.low_inclusive else value <= self.low)
        bad_high = self.high is not None and (value > self.high if self.high_inclusive else value >= self.high)
        if bad_low or bad_high:
            raise ConfigError(f"{where} must be {self.describe()}, got {value!r}")

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        text = _KIND_WORDS.get(self.kind, "a value")
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>=' if self.low_inclusive else '>'} {_num(self.low)}")
        if self.high is not None:
            bounds.append(f"{'<=' if self.high_inclusive else '<'} {_num(self.high)}")
        if bounds:
            text += " " + " and ".join(bounds)
        if self.kind == "list" and self.items is not None:
            text += f" of {self.items.describe()}"
        return text + (" or null" if self.nullable else "")

    def but(self, **changes) -> "Key":
        """This key with some fields changed (e.g. another default)."""
        return replace(self, **changes)


def _element(where: str, i: int) -> str:
    """``model.dilations (NextItNet)`` -> ``model.dilations[1] (NextItNet)``."""
    name, sep, rest = where.partition(" (")
    return f"{name}[{i}]{sep}{rest}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _type_word(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


# -- constructors that read like the schema ---------------------------------------------------------------
def integer(default, meaning, *, min=None, max=None, nullable=False, **kw) -> Key:
    return Key(default, meaning, "int", low=min, high=max, nullable=nullable, **kw)


def number(default, meaning, *, gt=None, ge=None, lt=None, le=None, nullable=False, **kw) -> Key:
    """A float key; ``gt``/``ge`` and ``lt``/``le`` give an open or closed bound."""
    low, low_inc = (gt, False) if gt is not None else (ge, True)
    high, high_inc = (lt, False) if lt is not None else (le, True)
    return Key(default, meaning, "float", low=low, low_inclusive=low_inc, high=high, high_inclusive=high_inc,
               nullable=nullable, **kw)


def fraction(default, meaning, **kw) -> Key:
    return number(default, meaning, ge=0.0, le=1.0, **kw)


def flag(default, meaning, **kw) -> Key:
    return Key(default, meaning, "bool", **kw)


def text(default, meaning, *, nullable=False, **kw) -> Key:
    return Key(default, meaning, "str", nullable=nullable, **kw)


def choice(default, meaning, choices, *, nullable=False, **kw) -> Key:
    return Key(default, meaning, "any", choices=tuple(choices), nullable=nullable, **kw)


def listof(default, meaning, items: Optional[Key] = None, *, min_items=0, **kw) -> Key:
    return Key(default, meaning, "list", items=items, min_items=min_items, **kw)


def anything(default, meaning, **kw) -> Key:
    return Key(default, meaning, "any", **kw)
