"""The package's shape: no import cycles, layers pointing one way, a small root.

The graph counts every ``import`` statement in a module, also those inside functions: a lazy import
hides a cycle from the interpreter, not from a reader.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cva_rec", "data_prep")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            found[_module_name(path)] = path
    return found


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports (a package's face counts as the package)."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    # a package face importing its own submodules is how packages work, not a cycle
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".") and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# (importer prefix, forbidden import prefix, why)
FORBIDDEN = [
    ("cva_rec", "data_prep", "the library never imports the offline pipeline (it plugs into the CLI by entry point)"),
    ("cva_rec.config", "cva_rec.", "configuration imports nothing it configures"),
    ("cva_rec.encoders", "cva_rec.training", "encoders do not know how they are trained"),
    ("cva_rec.encoders", "cva_rec.warmup", "warm-up reaches encoders through a protocol, not the reverse"),
    ("cva_rec.data", "cva_rec.training", "data does not know how it is trained on"),
    ("cva_rec.data", "cva_rec.encoders", "data does not know item encoders"),
    ("cva_rec.features", "cva_rec.training", "the feature store does not know training"),
    ("cva_rec.semantic_ids", "cva_rec.retrieval", "codes come before the retriever built on them"),
    ("cva_rec.backbones", "cva_rec.training", "backbones do not know the training loop"),
    ("cva_rec.training", "cva_rec.cli", "the CLI sits on top"),
    ("cva_rec.training", "cva_rec.report", "report reads what training writes"),
    ("cva_rec.training", "cva_rec.benchmarks", "benchmarks sit on top"),
]
ALLOWED_FROM_CONFIG = ("cva_rec.config", "cva_rec.errors", "cva_rec.registry", "cva_rec.io")


@pytest.mark.parametrize("importer,forbidden,why", FORBIDDEN)
def test_layers_point_one_way(importer, forbidden, why):
    bad = []
    for name, targets in import_graph().items():
        if name != importer and not name.startswith(importer + "."):
            continue
        for t in targets:
            if importer == "cva_rec.config" and t.startswith(ALLOWED_FROM_CONFIG):
                continue
            if t == forbidden or t.startswith(forbidden if forbidden.endswith(".") else forbidden + ".") or t == forbidden.rstrip("."):
                bad.append(f"{name} -> {t}")
    assert not bad, f"{why}: " + ", ".join(sorted(bad))


def test_package_root_is_small():
    root_modules = sorted(p.stem for p in (ROOT / "cva_rec").glob("*.py") if p.stem != "__init__")
    # foundations every layer uses; everything else lives in a package named by its idea
    assert root_modules == ["compat", "errors", "fingerprints", "heap", "io", "plain_progress", "registry"]


def test_every_package_face_declares_its_public_api():
    missing = [str(p.relative_to(ROOT)) for p in (ROOT / "cva_rec").glob("*/__init__.py")
               if "__all__" not in p.read_text(encoding="utf-8")]
    assert not missing, "package faces without __all__: " + ", ".join(missing)


def test_every_name_a_package_face_exports_resolves():
    import importlib

    stale = []
    for p in sorted((ROOT / "cva_rec").glob("*/__init__.py")):
        face = importlib.import_module(f"cva_rec.{p.parent.name}")
        stale += [f"cva_rec.{p.parent.name}.{name}" for name in face.__all__ if not hasattr(face, name)]
    assert not stale, "exported but not importable: " + ", ".join(stale)
