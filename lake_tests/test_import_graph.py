"""The shape of the code, read from its imports with ``ast`` (nothing is imported or run).

- Imports run one way: ``lake_assets`` (the Dagster layer and the CLI) uses ``lake_resources`` (the plain
  library), never the other way round, whether at module level or inside a function.
- No import cycle between modules, counting the imports that run when a module is loaded (module and
  class bodies, not function bodies, not ``if TYPE_CHECKING:`` blocks).
- No module of either package is over ``MAX_LINES`` lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lake_tests.conftest import REPO_ROOT

PACKAGES = ("lake_resources", "lake_assets")
MAX_LINES = 500


def _module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the two packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _module_files()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.Module, load_time_only: bool):
    """Import statements of a module; with ``load_time_only``, those that run when it is imported."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if load_time_only:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.If) and _is_type_checking(node):
                stack.extend(node.orelse)
                continue
        stack.extend(ast.iter_child_nodes(node))


def _targets(name: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement names (``from pkg import sub`` names ``pkg.sub`` when it is one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
    return subs if len(subs) == len(node.names) else [base, *subs]


def import_graph(load_time_only: bool) -> dict[str, dict[str, int]]:
    """module -> {imported module of the two packages: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, int] = {}
        for node in _import_nodes(tree, load_time_only):
            for target in _targets(name, node):
                if target.split(".")[0] in PACKAGES and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in graph:
                continue
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_library_never_imports_the_dagster_layer():
    upward = [f"{MODULES[name].relative_to(REPO_ROOT)}:{line} imports {target}"
              for name, edges in import_graph(load_time_only=False).items() if name.startswith("lake_resources")
              for target, line in edges.items() if target.startswith("lake_assets")]
    assert upward == [], "lake_resources must not import lake_assets:\n" + "\n".join(upward)


def test_no_import_cycles_between_modules():
    graph = import_graph(load_time_only=True)
    found = cycles(graph)
    detail = ["; ".join(f"{a} -> {b} (line {graph[a][b]})" for a in cycle for b in cycle if b in graph[a])
              for cycle in found]
    assert found == [], "import cycles:\n" + "\n".join(detail)


def test_the_cycle_finder_finds_a_cycle_and_an_upward_import():
    # The checks above pass only if they can fail: a two-module cycle and a three-module one.
    graph = {"a": {"b": 1}, "b": {"a": 2}, "c": {"d": 1}, "d": {"e": 1}, "e": {"c": 1}, "f": {"a": 1}}
    assert cycles(graph) == [["a", "b"], ["c", "d", "e"]]
    tree = ast.parse("import x\nif TYPE_CHECKING:\n    import y\ndef f():\n    import lake_assets.cli\n")
    assert [n.names[0].name for n in _import_nodes(tree, load_time_only=True)] == ["x"]
    assert sorted(n.names[0].name for n in _import_nodes(tree, load_time_only=False)) == ["lake_assets.cli", "x", "y"]


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_the_size_limit(package):
    over = {str(path.relative_to(REPO_ROOT)): n for name, path in MODULES.items()
            if name.split(".")[0] == package and (n := _line_count(path)) > MAX_LINES}
    assert over == {}, f"modules over {MAX_LINES} lines (split them): {over}"
