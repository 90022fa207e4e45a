"""The layering the README's code map promises, read from the import statements (none run)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle among the graph's own modules (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph[node]:
            if dep not in graph:
                continue
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_loop_has_no_import_cycle_even_through_function_level_imports() -> None:
    assert cycles(imports("loop")) == []


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


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
