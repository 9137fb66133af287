"""The shape of the code. The architecture itself is written as import contracts in pyproject.toml
(`lint-imports`, a gate of .ci/run): faces above the engine, an engine without UI libraries, torch only in the
engine, methods that do not import one another, no import circle. Here: that the gate really fails a change
that breaks a contract, and what no contract can say (the faces stop runs through the engine, never by
signalling processes themselves)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


# --- the contracts are a gate ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    """The packages and pyproject.toml, copied: a change to them never touches the checkout."""
    root = tmp_path_factory.mktemp("tree")
    for package in ("core", "cltui", "presets"):
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)})


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="lint-imports is not installed (pip install -e '.[test]')")
@pytest.mark.parametrize("where, line, contract", [
    ("core/runs/metrics.py", "import textual", "the engine imports no UI library"),
    ("core/schema/limits.py", "import torch", "never import torch"),
    ("core/methods/ewc.py", "from core.methods import lwf", "methods do not import one another"),
    ("core/runs/store.py", "import cltui.cli.common", "faces (cltui) sit above the engine"),
    ("cltui/tui/screens/compose.py", "import re", "the compose form reads the engine's typed errors"),
])
def test_the_import_contracts_fail_a_change_that_breaks_them(tree_copy, where, line, contract):
    assert lint_imports(tree_copy).returncode == 0  # the tree as it is keeps every contract
    path = tree_copy / where
    original = path.read_text()
    path.write_text(original + f"\n{line}  # a deliberate violation\n")
    try:
        result = lint_imports(tree_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    broken = result.stdout[result.stdout.index("Broken contracts"):]
    assert contract in broken, result.stdout


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
    """Stopping or killing a worker is the engine's job (core/launch/worker.py's handles: it knows the run's
    process and records how the run ended); a face that sends SIGTERM or SIGKILL to a pid can hit a
    recycled pid or leave a run recorded as running."""
    files = sorted((ROOT / "cltui").rglob("*.py"))
    assert len(files) > 10
    uses = [use for path in files for use in _signal_uses(path)]
    assert not uses, "signals sent from cltui/ (use the worker's stop/kill):\n" + "\n".join(uses)
