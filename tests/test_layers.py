"""The package's shape holds: no import cycle among deeparch modules, and no deeparch import hidden
inside a function (the import-linter contracts in pyproject.toml check the layers themselves)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[1] / "deeparch"
# An import inside a function is allowed only to load a heavy optional dependency late, and
# says so on its line or the line above: "# late import: <why>".
LATE_MARKER = "late import:"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def module_graph() -> dict[str, set[str]]:
    # grimp reads every import statement, inside functions too.
    graph = grimp.build_graph("deeparch")
    return {
        module: {m for m in graph.find_modules_directly_imported_by(module) if m != module}
        for module in graph.modules
    }


def test_strongly_connected_finds_a_planted_cycle():
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(planted) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_deeparch_modules():
    graph = module_graph()
    assert len(graph) > 50  # the whole package was read
    # A package imports its submodules (its __init__ re-exports them); a submodule importing its
    # own package's __init__ would close a cycle, and is reported like any other.
    assert strongly_connected(graph) == []


def imports_inside_functions(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []

    def late(lineno: int) -> bool:
        return any(LATE_MARKER in lines[i] for i in (lineno - 1, lineno - 2) if i >= 0)

    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom):
                names = [inner.module or ""]
            elif isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            else:
                continue
            if any(name.split(".")[0] == "deeparch" for name in names) and not late(inner.lineno):
                found.append(f"{path.relative_to(root)}:{inner.lineno}")
    return sorted(set(found))


def test_the_import_finder_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "deeparch" / "x.py"
    module.parent.mkdir()
    module.write_text(
        "def f():\n    from deeparch.models import get_arch\n"
        "def g():\n    # late import: torchvision is large and optional\n    import deeparch.y\n"
    )
    assert imports_inside_functions(module, tmp_path) == ["deeparch/x.py:2"]


def test_no_deeparch_import_inside_a_function():
    found = [
        hit for path in sorted(PACKAGE.rglob("*.py")) for hit in imports_inside_functions(path)
    ]
    assert found == []
