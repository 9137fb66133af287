"""The shape of the code, read from the source with `ast` (nothing is imported): no import circle in core/,
cltui/ or presets/, an engine that never imports a face or a UI library, and faces that stop runs through
the engine rather than by signalling processes themselves.

An import circle means a module can see another half-initialised (ImportError or AttributeError depending on
which one is imported first) and that neither can be understood or tested alone. Imports inside functions
count (they only defer the circle); imports under `if TYPE_CHECKING:` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "cltui", "presets")
UI_LIBRARIES = ("cltui", "textual", "textual_plotext", "plotext", "typer", "rich")


# --- the import graph ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (the deepest one that exists when it is a project module)
    where: str  # path:line
    type_checking: bool  # under `if TYPE_CHECKING:` (never runs)


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of `packages` under `root` by dotted name (a package by its __init__.py)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Collector(ast.NodeVisitor):
    """(module, line, under TYPE_CHECKING) for every import statement, at any depth."""

    def __init__(self, module: str, is_package: bool, known: set[str]):
        self.module, self.known = module, known
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, int, bool]] = []
        self.type_checking = False

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            before, self.type_checking = self.type_checking, True
            for child in node.body:
                self.visit(child)
            self.type_checking = before
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self.type_checking))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            if node.level - 1 > len(parts) - 1:
                raise AssertionError(f"{self.module}:{node.lineno}: relative import beyond the top package")
            base = ".".join(parts[: len(parts) - (node.level - 1)])
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            # `from x import y` imports the module x.y when there is one, else takes a name from x.
            self.found.append((submodule if submodule in self.known else base, node.lineno, self.type_checking))


def _resolve(name: str, known: set[str]) -> str:
    """A project module's dotted name cut to the deepest module that exists (import a.b.c of a missing c
    still runs a.b); any other name unchanged."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return name


def collect_imports(root: Path, packages: tuple[str, ...]) -> tuple[set[str], list[Import]]:
    files = module_files(root, packages)
    known = set(files)
    imports: list[Import] = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _Collector(module, path.name == "__init__.py", known)
        collector.visit(tree)
        for name, line, type_checking in collector.found:
            imports.append(Import(module, _resolve(name, known), f"{path.relative_to(root)}:{line}", type_checking))
    return known, imports


def import_graph(known: set[str], imports: list[Import]) -> dict[str, dict[str, str]]:
    """module -> {project module it imports at run time: where (the first such import)}."""
    graph: dict[str, dict[str, str]] = {module: {} for module in sorted(known)}
    for imp in imports:
        if imp.target in known and not imp.type_checking:
            graph[imp.source].setdefault(imp.target, imp.where)
    return graph


def strongly_connected(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Tarjan's components (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def shortest_cycle(graph: dict[str, dict[str, str]], start: str, within: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside `within` (breadth first, neighbours in name order)."""
    previous: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in within:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in seen:
                    seen.add(child)
                    previous[child] = node
                    following.append(child)
        frontier = following
    return []


def import_cycles(graph: dict[str, dict[str, str]]) -> list[str]:
    """One line per distinct shortest cycle through each module of each circle, with where each import is:
    'a -> b -> a   (a/x.py:3, b/y.py:7)'."""
    lines: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for component in strongly_connected(graph):
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        for module in component:
            cycle = shortest_cycle(graph, module, set(component))
            ring = cycle[:-1]
            turn = ring.index(min(ring))
            key = tuple(ring[turn:] + ring[:turn])
            if key in seen:
                continue
            seen.add(key)
            loop = [*key, key[0]]
            where = ", ".join(graph[a][b] for a, b in zip(loop, loop[1:]))
            lines.append(f"{' -> '.join(loop)}   ({where})")
    return lines


@pytest.fixture(scope="module")
def project() -> tuple[set[str], list[Import]]:
    return collect_imports(ROOT, PACKAGES)


# --- the checker itself, on a small package with a known circle ---------------------------------------------


def test_the_checker_finds_a_circle_through_relative_and_submodule_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")  # a submodule by `from package import module`
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")  # deferred, relative, two levels up
    (pkg / "c.py").write_text("import pkg.a\n\ndef g(): pass\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
                              "else:\n    import pkg.e\n")
    (pkg / "e.py").write_text("from pkg.d import *\n")
    (pkg / "f.py").write_text("if TYPE_CHECKING:\n    import pkg.f\n")  # never runs: not a self-loop

    known, imports = collect_imports(tmp_path, ("pkg",))
    graph = import_graph(known, imports)
    assert graph["pkg.a"] == {"pkg.sub.b": "pkg/a.py:1"}
    assert graph["pkg.sub.b"] == {"pkg.c": "pkg/sub/b.py:2"}
    assert graph["pkg.d"] == {"pkg.e": "pkg/d.py:5"}  # the TYPE_CHECKING import of pkg.a is left out
    assert import_cycles(graph) == [
        "pkg.a -> pkg.sub.b -> pkg.c -> pkg.a   (pkg/a.py:1, pkg/sub/b.py:2, pkg/c.py:1)",
        "pkg.d -> pkg.e -> pkg.d   (pkg/d.py:5, pkg/e.py:1)",
    ]


# --- the project --------------------------------------------------------------------------------------------


def test_the_checker_sees_the_project(project):
    """Guards the tests below against passing on an empty graph: every package is walked and the imports
    everyone knows about are found."""
    known, imports = project
    graph = import_graph(known, imports)
    assert {"core.schema.params", "core.schema.presets", "cltui.cli.main", "cltui.tui.screens.compose", "presets"} <= known
    assert "core.schema.presets" in graph["cltui.cli.main"]
    assert "core.schema.params" in graph["cltui.tui.screens.compose"]
    assert sum(len(targets) for targets in graph.values()) > 50


def test_no_import_circle_in_core_cltui_or_presets(project):
    cycles = import_cycles(import_graph(*project))
    assert not cycles, "import circles (each import's file:line in brackets):\n" + "\n".join(cycles)


def test_the_engine_imports_no_face_and_no_ui_library(project):
    """core/ is the engine: the faces (cltui) import it, never the other way round, not even for type hints;
    and it pulls in no UI library (a worker or a script using core stays free of them)."""
    _, imports = project
    offending = [f"{imp.where}: {imp.source} imports {imp.target}" for imp in imports
                 if imp.source.split(".")[0] == "core" and imp.target.split(".")[0] in UI_LIBRARIES]
    assert not offending, "\n".join(offending)


# --- what the faces leave to the engine ---------------------------------------------------------------------


def _signal_uses(path: Path) -> list[str]:
    """Where a file sends a signal itself: calls os.kill / os.killpg, or names SIGTERM / SIGKILL (signal.SIGTERM,
    signal.Signals.SIGKILL, `from signal import SIGTERM`). Comments and strings do not count."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute):
            if node.attr in ("kill", "killpg") and isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{path.relative_to(ROOT)}:{line}: os.{node.attr}")
            elif node.attr in ("SIGTERM", "SIGKILL"):
                found.append(f"{path.relative_to(ROOT)}:{line}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "signal"):
            for alias in node.names:
                if alias.name in ("kill", "killpg", "SIGTERM", "SIGKILL", "*"):
                    found.append(f"{path.relative_to(ROOT)}:{line}: from {node.module} import {alias.name}")
    return found


def test_the_faces_never_signal_a_process_themselves():
    """Stopping or killing a worker is the engine's job (core/runs/worker.py's handles: it knows the run's
    process and records how the run ended); a face that sends SIGTERM or SIGKILL to a pid can hit a
    recycled pid or leave a run recorded as running."""
    files = sorted((ROOT / "cltui").rglob("*.py"))
    assert len(files) > 10
    uses = [use for path in files for use in _signal_uses(path)]
    assert not uses, "signals sent from cltui/ (use the worker's stop/kill):\n" + "\n".join(uses)


def test_the_compose_form_does_not_parse_text_with_re(project):
    """The compose form reads the engine's typed errors (ConfigError.field, pydantic's locations), not
    the wording of its messages: cltui/tui/screens/compose.py does not import re, at any depth."""
    _, imports = project
    uses = [imp.where for imp in imports if imp.source == "cltui.tui.screens.compose" and imp.target.split(".")[0] == "re"]
    assert any(imp.source == "cltui.tui.screens.compose" for imp in imports)  # the file was read
    assert not uses, f"cltui/tui/screens/compose.py imports re at {', '.join(uses)}"
