"""YAML as people write recipes: ``1e-4`` and ``3E-4`` are numbers, and every file means one thing.

PyYAML implements YAML 1.1, whose float pattern needs a dot and a signed exponent, so ``lr: 1e-4``
loads as the *string* "1e-4" (YAML 1.2 reads it as a float). :class:`RecipeLoader` adds one
implicit resolver for the 1.2 forms; everything else is PyYAML's safe loader, with two refusals:

* a key given twice in one mapping (PyYAML silently keeps the last one, so ``lr`` written twice
  trains with whichever came second): :class:`AmbiguousYamlError` naming the key and both lines;
* aliases that expand to more than :data:`MAX_EXPANDED_NODES` nodes ("billion laughs": nine nested
  anchors of ten aliases each load as shared objects but are 10^9 values to anyone walking them)
  or that contain themselves (``&a [*a]``).

Every recipe, ``--set`` value and sweep grid is read through :func:`load_yaml`.
"""
from __future__ import annotations

import re
from typing import IO, Any, Dict, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: a recipe or grid has tens to hundreds of values; aliases may repeat some, not multiply them a billionfold
MAX_EXPANDED_NODES = 100_000


class AmbiguousYamlError(yaml.YAMLError):
    """A YAML document that PyYAML would load, but not as its author meant (repeated key, alias bomb)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, None


class RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` + exponent floats without a dot or sign (``1e-4``, ``3E-4``, ``2e5``, ``.5e-3``),
    refusing repeated keys and alias bombs (module docstring)."""

    def compose_document(self) -> Node:
        node = super().compose_document()
        _check_node(node)
        return node


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _check_node(root: Node) -> None:
    """One walk over the composed graph (each node once, so aliases cost nothing here): repeated keys,
    expanded size, cycles."""
    sizes: Dict[int, int] = {}
    open_nodes: set = set()

    def walk(node: Node, path: str) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise AmbiguousYamlError(f"{path or 'the document'} (line {_line(node)}) is an alias of a value that contains it "
                                     f"(a recursive alias)")
        open_nodes.add(id(node))
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(walk(child, f"{path}[{i}]") for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            first_line: Dict[tuple, int] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    name = (key.tag, key.value)
                    if name in first_line:
                        where = f"{path}.{key.value}" if path else key.value
                        raise AmbiguousYamlError(f"key {where!r} is given twice (lines {first_line[name]} and {_line(key)}); "
                                                 f"keep one of them")
                    first_line[name] = _line(key)
                child = (f"{path}.{key.value}" if path else str(key.value)) if isinstance(key, ScalarNode) else path
                size += walk(key, path) + walk(value, child)
        open_nodes.discard(id(node))
        if size > MAX_EXPANDED_NODES:
            raise AmbiguousYamlError(f"{path or 'the document'} (line {_line(node)}) expands to more than {MAX_EXPANDED_NODES} "
                                     f"values through its aliases (&anchor / *alias); write the values out instead")
        sizes[id(node)] = size
        return size

    walk(root, "")


def load_yaml(source: Union[str, IO]) -> Any:
    """``yaml.safe_load`` with :class:`RecipeLoader` (may raise ``yaml.YAMLError``)."""
    return yaml.load(source, Loader=RecipeLoader)  # noqa: S506 (a SafeLoader subclass)
