"""The layering the README's code map promises, read from the import statements (none run).

Import cycles: every ``import``/``from … import`` of a project module, resolved to the module
file (``from pkg import sub`` → ``pkg.sub`` when that is a module, else ``pkg``); relative
imports resolved; ``if TYPE_CHECKING:`` blocks skipped. A submodule import does not count as an
import of its parent package (else every package that re-exports its submodules would be a
cycle). Two graphs: import time and all imports (function-level ones too); neither may hold a
cycle through loop/, semgan/train/ or store/. ``python tests/test_architecture.py`` lists every
cycle in the tree.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("loop", "semgan", "store", "annotate")
GUARDED = ("loop", "semgan.train", "store")  # no cycle may pass through these


def module_files(packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name → file, for every .py file of the packages."""
    found = {}
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts).removesuffix(".__init__")] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(nodes, deferred: bool) -> list[tuple[ast.stmt, bool]]:
    """(import statement, whether it runs only when a function is called), recursively."""
    found = []
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append((node, deferred))
        elif isinstance(node, ast.If) and _is_type_checking(node):
            found += _import_nodes(node.orelse, deferred)
        else:
            inner = deferred or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            found += _import_nodes(ast.iter_child_nodes(node), inner)
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` loads: itself or its longest existing prefix."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _targets(node: ast.stmt, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        return {t for alias in node.names if (t := _resolve(alias.name, modules))}
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join([*base, node.module] if node.module else base)
    else:
        prefix = node.module or ""
    targets = set()
    for alias in node.names:
        sub = f"{prefix}.{alias.name}"
        target = sub if sub in modules else _resolve(prefix, modules)
        if target:
            targets.add(target)
    return targets


def import_graph(include_deferred: bool, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module → the project modules it imports (at import time, or also inside functions)."""
    modules = module_files(packages)
    graph = {}
    for module, path in modules.items():
        deps = set()
        for node, deferred in _import_nodes(ast.parse(path.read_text()).body, False):
            if include_deferred or not deferred:
                deps |= _targets(node, module, path.name == "__init__.py", modules)
        graph[module] = deps - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in graph:
                continue
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle inside a component: a → b → … → a (shortest from its first module)."""
    members, start = set(component), component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for dep in sorted(graph[node] & members):
                if dep == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if dep not in previous:
                    previous[dep] = node
                    nxt.append(dep)
        frontier = nxt
    return component


def _guarded(component: list[str]) -> bool:
    return any(m == g or m.startswith(g + ".") for m in component for g in GUARDED)



def imports(package: str) -> dict[str, set[str]]:
    """Module → every module it imports anywhere in its body (imports inside functions too)."""
    found = {}
    for path in (REPO / package).rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        found[name] = deps
    return found


def test_the_store_needs_no_torch_and_knows_nothing_of_the_loop_or_the_ui() -> None:
    offending = {module: sorted(d for d in deps if d.split(".")[0] in ("torch", "loop", "annotate"))
                 for module, deps in imports("store").items()}
    assert {m: d for m, d in offending.items() if d} == {}
    # What it takes from semgan (the pair-folder format) must not pull torch in either.
    code = "import sys, store, store.pair_export; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_the_model_library_knows_nothing_of_the_store_the_loop_or_the_ui() -> None:
    offending = {module: sorted(d for d in deps if d.split(".")[0] in ("store", "loop", "annotate", "gradio"))
                 for module, deps in imports("semgan").items()}
    assert {m: d for m, d in offending.items() if d} == {}


def test_no_import_time_cycle_through_loop_train_or_store() -> None:
    graph = import_graph(include_deferred=False)
    assert [cycle_path(graph, c) for c in cycles(graph) if _guarded(c)] == []


def test_no_cycle_through_loop_train_or_store_even_via_function_level_imports() -> None:
    graph = import_graph(include_deferred=True)
    assert [cycle_path(graph, c) for c in cycles(graph) if _guarded(c)] == []


def test_the_graph_sees_relative_deferred_and_submodule_imports(tmp_path: Path) -> None:
    tree = ast.parse("from . import b\nfrom .c import x\ndef f():\n    import pkg.d\n"
                     "if TYPE_CHECKING:\n    import pkg.e\n")
    modules = {name: tmp_path for name in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.e")}
    found = {(t, deferred) for node, deferred in _import_nodes(tree.body, False)
             for t in _targets(node, "pkg.a", False, modules)}
    assert found == {("pkg.b", False), ("pkg.c", False), ("pkg.d", True)}


def test_the_cycle_finder_finds_a_cycle_and_its_path() -> None:
    graph = {"a": {"b"}, "b": {"c", "a"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycle_path(graph, ["a", "b", "c"]) == ["a", "b", "a"]


if __name__ == "__main__":
    for deferred in (False, True):
        graph = import_graph(include_deferred=deferred)
        print("with function-level imports:" if deferred else "at import time:")
        for component in cycles(graph):
            print("  " + " → ".join(cycle_path(graph, component)), f"({len(component)} modules)")
