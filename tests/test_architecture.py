"""Dependencies point one way: no import cycles between project modules, and each layer imports only
what it may. Every import counts, including those inside functions and `if TYPE_CHECKING:` blocks."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "models", "indexer", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Module name → file, for every .py file under the project's packages."""
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _imported_names(path: Path, module: str) -> Iterator[str]:
    """Every dotted name an import statement in the file names, relative imports resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield from (f"{base}.{alias.name}" for alias in node.names)


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules this module imports: `from a.b import c` is an edge to a.b.c when that is a
    module, else to a.b; `import a.b.c` is an edge to a.b.c."""
    found = set()
    for name in _imported_names(path, module):
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def external_imports_of(path: Path) -> set[str]:
    """Top-level names of everything the file imports (project packages included)."""
    return {name.split(".")[0] for name in _imported_names(path, _module_name(path)) if name}


def import_graph() -> dict[str, set[str]]:
    known = project_modules()
    return {module: imports_of(module, path, known) for module, path in known.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_graph_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from models.encoder import Encoder\n"
        "def f() -> None:\n    import models.registry\n    from models.joint import model\n"
    )
    known = {name: ROOT for name in ("models", "models.encoder", "models.registry", "models.joint.model")}
    assert imports_of("m", source, known) == {"models.encoder", "models.registry", "models.joint.model"}
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


FORBIDDEN = {
    "models": {"app", "indexer", "cli", "sqlalchemy", "fastapi", "starlette", "alembic"},
    "app.storage": {"fastapi", "starlette"},
    "app": {"indexer", "cli"},
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_what_they_may(layer: str) -> None:
    bad = [
        f"{module} imports {name}"
        for module, path in project_modules().items()
        if module == layer or module.startswith(f"{layer}.")
        for name in sorted(external_imports_of(path) & FORBIDDEN[layer])
    ]
    assert not bad, bad


def test_the_model_library_never_imports_training() -> None:
    """models/training/ uses the library (as open_clip_train uses open_clip), never the reverse."""
    graph = import_graph()
    bad = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.startswith("models") and not module.startswith("models.training")
        for target in sorted(targets)
        if target.startswith("models.training")
    ]
    assert not bad, bad
