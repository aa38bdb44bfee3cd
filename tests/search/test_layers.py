"""Layers as a test: which package of the project may import which, and no import circles.

Every .py file of the project's packages is parsed with ast (nothing is imported or run), so an
import inside a function or under TYPE_CHECKING counts too. LAYERS is the one table of allowed
directions; docs/architecture.md ("Layers") copies it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import ROOT

# Package -> the project packages it may import (besides itself). Highest layer first.
LAYERS: dict[str, frozenset[str]] = {
    # The project: settings, URLs, WSGI, the dev stack; it wires the apps together.
    "searchsite": frozenset({"evaluation", "search", "documents", "worker", "common"}),
    # Offline evaluation of the ranking, and the judging controls it adds to the result page.
    "evaluation": frozenset({"search", "documents", "worker", "common"}),
    # Search, reranking and the search API: reads the library, sends work to the worker.
    "search": frozenset({"documents", "worker", "common"}),
    # The library: models, import, chunking, the full-text index.
    "documents": frozenset({"common"}),
    # Helpers with no app behind them (client address, rate counting, generic throttles, processes).
    "common": frozenset(),
    # The rerank worker, its typed contract (worker.protocol), the Celery app (worker.app) and the
    # worker's command line (worker.command): no Django models, no web code.
    "worker": frozenset(),
}
PACKAGES = tuple(LAYERS)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield module_name(path), path


MODULES = dict(project_files())


def imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Yield (project module imported, line) for every import statement of the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from search import views` imports the module search.views; `from search.x import f`, search.x.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in LAYERS:
                # The nearest enclosing module that exists (a.b.c where c is a function -> a.b).
                while name not in MODULES and "." in name:
                    name = name.rpartition(".")[0]
                yield name, node.lineno


GRAPH = {module: {name for name, _ in imported(module, path)} - {module} for module, path in MODULES.items()}


def test_every_package_imports_only_what_the_layer_table_allows():
    assert {m.split(".")[0] for m in MODULES} <= set(PACKAGES)
    wrong: dict[str, str] = {}
    for module, path in MODULES.items():
        own = module.split(".")[0]
        for name, line in imported(module, path):
            target = name.split(".")[0]
            if target != own and target not in LAYERS[own]:
                wrong.setdefault(f"{own} -> {name}", f"{path.relative_to(ROOT)}:{line} {own} -> {name}")
    assert list(wrong.values()) == [], "imports the layer table does not allow:\n" + "\n".join(wrong.values())


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_the_project_modules_import_one_another_without_circles():
    assert cycles(GRAPH) == []


def test_the_circle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# tests/: one folder per app (site: the searchsite project), faults/ for the faults that need
# processes of their own, browser/ for the pages in a real browser; helpers in support/, files in data/.
TEST_FOLDERS = {"site", "documents", "search", "evaluation", "worker", "faults", "browser", "support", "data"}


def test_tests_sit_in_the_known_folders_and_import_helpers_only_from_tests_support():
    tests = ROOT / "tests"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert folders <= TEST_FOLDERS, f"a test folder tests/README.md does not describe: {sorted(folders - TEST_FOLDERS)}"
    wrong = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith(".") or (name.split(".")[0] == "tests" and not name.startswith("tests.support")):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert wrong == [], "a test imports another test module (shared helpers go to tests/support/):\n" + "\n".join(wrong)
